"""`contimg convert`: subband files -> one Measurement Set per observation."""

from __future__ import annotations

import click

from contimg.cli.common import App, items_from, json_option, pass_app
from contimg.cli.progress import progress_reporter
from contimg.cli.stepcmd import render, run_and_render


@click.command("convert")
@click.argument("observations", nargs=-1)
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Convert at most N observations.")
@json_option
@pass_app
def command(app: App, observations: tuple[str, ...], limit: int | None) -> None:
    """Convert observations to Measurement Sets, oldest first.

    IDs as arguments or on stdin; --all (or no stdin at all) for every pending one.
    """
    subjects = items_from(observations)   # empty input exits before the heavy imports
    from contimg.steps.convert import STEP, convert_one  # here: TAB completion stays fast

    with progress_reporter(app) as progress:
        outcomes = run_and_render(app, STEP, convert_one, subjects, limit, progress=progress,
                                  show=False)
    render(app, outcomes, "nothing to convert")   # after the bar is gone, never into it
