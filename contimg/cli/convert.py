"""`contimg convert`: subband files -> one Measurement Set per observation."""

from __future__ import annotations

import click

from contimg.cli.common import App, items_from, json_option, pass_app
from contimg.cli.progress import progress_reporter
from contimg.cli.stepcmd import run_and_render
from contimg.steps.convert import STEP, convert_one


@click.command("convert")
@click.argument("observations", nargs=-1)
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Convert at most N observations.")
@json_option
@pass_app
def command(app: App, observations: tuple[str, ...], limit: int | None) -> None:
    """Convert observations (IDs as arguments or on stdin; --all or a terminal: every pending one, oldest first)."""
    subjects = items_from(observations)
    with progress_reporter(app) as progress:
        run_and_render(app, STEP, convert_one, subjects, limit, progress=progress)
