"""`contimg init`: create a state directory (the one command that always may)."""

from __future__ import annotations

import click

from contimg.cli.common import App, emit_json, json_option, pass_app


@click.command("init")
@json_option
@pass_app
def command(app: App) -> None:
    """Create the state directory: state.sqlite3, incoming/, staging/, products/, logs/.

    Safe to repeat.  Other commands refuse a state directory that does not exist (a
    mistyped --home must not look like an empty pipeline), except `ingest` and `watch`
    when the incoming directory already exists.
    """
    cfg = app.config()
    existed = cfg.db_path.is_file()
    app.db()
    if app.json_output:
        emit_json({"home": str(cfg.home), "database": str(cfg.db_path), "created": not existed})
        return
    click.echo(f"{'using existing' if existed else 'created'} state directory {cfg.home}")
    if not existed:
        click.echo(f"  subband files are read from {cfg.incoming}; "
                   "'contimg config --sample' prints a configuration file to start from",
                   err=True)
