"""`contimg config`: every effective value and where it came from."""

from __future__ import annotations

import click
from rich.table import Table

from contimg.cli.common import App, emit_json, json_option, pass_app
from contimg.config import sample_toml


@click.command("config")
@click.option("--sample", is_flag=True, help="Print a contimg.toml with every option and its default.")
@json_option
@pass_app
def command(app: App, sample: bool) -> None:
    """Show the effective configuration and the source of each value."""
    if sample:
        click.echo(sample_toml())
        return
    records = app.config().as_records()
    if app.json_output:
        emit_json(records)
    elif app.interactive:
        table = Table("key", "value", "source")
        for r in records:
            table.add_row(r["key"], str(r["value"]), r["source"])
        app.console.print(table)
    else:
        for r in records:
            click.echo(f"{r['key']}\t{r['value']}\t{r['source']}")
