"""`contimg ingest`: register complete subband files, form observations."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from contimg.cli.common import App, emit_json, items_from, json_option, pass_app, with_override
from contimg.steps.ingest import scan


@click.command("ingest")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--stdin", "from_stdin", is_flag=True, help="Read paths from stdin, one per line.")
@click.option("--min-subbands", type=int, default=None, expose_value=False,
              callback=with_override("ingest.min_subbands"),
              help="Subbands needed to proceed after the wait (default 12).")
@click.option("--wait", type=float, default=None, expose_value=False,
              callback=with_override("ingest.incomplete_wait_s"),
              help="Seconds to wait for missing subbands (default 900).")
@click.option("--settle", type=float, default=None, expose_value=False,
              callback=with_override("ingest.settle_s"),
              help="A file modified within this many seconds is left for the next scan.")
@json_option
@pass_app
def command(app: App, paths: tuple[Path, ...], from_stdin: bool) -> None:
    """Register subband files (incoming directory, PATHs, or stdin) and queue observations."""
    chosen = [Path(p) for p in items_from([str(p) for p in paths] + (["-"] if from_stdin else []))]
    report = scan(app.config(), app.db(), chosen or None)
    if app.json_output:
        emit_json(asdict(report))
        return
    for obs in report.observations:
        click.echo(f"{obs['id']}\t{obs['nsubbands']} subbands\t{obs['state']}"
                   + (f"\t{obs['reason']}" if obs["reason"] else ""))
    for path, error in report.quarantined:
        click.echo(f"quarantined\t{path}\t{error}", err=True)
    for obs_id, reason in report.incomplete:
        click.echo(f"incomplete\t{obs_id}\t{reason}", err=True)
    if app.config().verbosity > 0:
        for path, why in report.ignored:
            click.echo(f"ignored\t{path}\t{why}", err=True)
    if not (report.observations or report.quarantined or report.incomplete):
        click.echo(f"nothing new ({report.unchanged} files already known, "
                   f"{len(report.ignored)} ignored)", err=True)
