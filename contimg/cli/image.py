"""`contimg image`: primary-beam-corrected images of calibrated observations."""

from __future__ import annotations

import click

from contimg.cli.common import App, items_from, json_option, pass_app, with_override
from contimg.cli.stepcmd import run_and_render


@click.command("image")
@click.argument("observations", nargs=-1)
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Image at most N observations.")
@click.option("--robust", type=float, default=None, expose_value=False,
              callback=with_override("image.robust"), help="Briggs robust (default 0).")
@click.option("--niter", type=int, default=None, expose_value=False,
              callback=with_override("image.niter"), help="Maximum CLEAN iterations.")
@json_option
@pass_app
def command(app: App, observations: tuple[str, ...], limit: int | None) -> None:
    """Image calibrated observations (IDs as arguments or on stdin; --all: every pending one)."""
    subjects = items_from(observations)   # empty input exits before the heavy imports
    from contimg.steps.image import STEP, image_one  # here: TAB completion stays fast

    run_and_render(app, STEP, image_one, subjects, limit, casa=True)
