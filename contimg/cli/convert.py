"""`contimg convert`: subband files -> one Measurement Set per observation."""

from __future__ import annotations

import click

from contimg.cli.common import App, emit_json, exit_for, items_from, json_option, pass_app
from contimg.cli.progress import progress_reporter
from contimg.steps.convert import STEP, convert_one
from contimg.steps.runner import StepContext, make_owner, run_jobs


@click.command("convert")
@click.argument("observations", nargs=-1)
@click.option("--limit", type=int, default=None, help="Convert at most N observations.")
@json_option
@pass_app
def command(app: App, observations: tuple[str, ...], limit: int | None) -> None:
    """Convert observations (IDs as arguments or on stdin; default: all pending, oldest first)."""
    subjects = items_from(observations)
    with progress_reporter(app) as progress:
        ctx = StepContext(app.config(), app.db(), make_owner(), progress)
        outcomes = run_jobs(ctx, STEP, convert_one, subjects=subjects, limit=limit)
    if app.json_output:
        emit_json([o.__dict__ for o in outcomes])
    else:
        for o in outcomes:
            click.echo(f"{o.subject}\t{o.status}\t{o.message}")
        if not outcomes:
            click.echo("nothing to convert", err=True)
    exit_for(sum(o.failed for o in outcomes))
