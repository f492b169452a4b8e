"""`contimg mosaic`: form hourly groups of imaged observations and combine them."""

from __future__ import annotations

import click

from contimg.cli.common import (App, emit_json, exit_for, items_from, json_option, pass_app,
                                with_override)
from contimg.cli.stepcmd import run_and_render
from contimg.state import mosaics


@click.command("mosaic")
@click.argument("mosaic_ids", nargs=-1)
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Combine at most N mosaics.")
@click.option("--form-only", is_flag=True, help="Only form groups; do not combine.")
@click.option("--list", "list_only", is_flag=True, help="List mosaics and their members.")
@click.option("--mode", type=click.Choice(["tiles", "sliding"]), default=None, expose_value=False,
              callback=with_override("mosaic.mode"), help="Grouping mode (default tiles).")
@click.option("--n", "n", type=click.IntRange(1), default=None, expose_value=False,
              callback=with_override("mosaic.n"), help="Observations per mosaic (default 10).")
@click.option("--overlap", type=click.IntRange(0), default=None, expose_value=False,
              callback=with_override("mosaic.overlap"), help="Shared observations in sliding mode.")
@json_option
@pass_app
def command(app: App, mosaic_ids: tuple[str, ...], limit: int | None, form_only: bool,
            list_only: bool) -> None:
    """Form mosaic groups from imaged observations, then combine pending ones (or the IDs given)."""
    # empty input does nothing, not even forming groups; read it before the heavy imports
    subjects = [] if list_only or form_only else items_from(mosaic_ids)
    from contimg.steps.mosaic import STEP, form_groups, mosaic_one  # here: fast TAB completion

    if list_only:
        rows = mosaics.list_mosaics(app.db())
        if app.json_output:
            emit_json(rows)
        else:
            for m in rows:
                click.echo(f"{m['id']}\t{m['state']}\t{m['mode']}\t{len(m['members'])} members\t"
                           f"{m['members'][0]}..{m['members'][-1]}\tQA {m['qa_status']}")
        return
    report = form_groups(app.config(), app.db())
    for mid in report.formed:
        click.echo(f"formed\t{mid}", err=True)
    for note in report.notes:
        click.echo(f"note\t{note}", err=True)
    if form_only:
        if app.json_output:
            emit_json(report.__dict__)
        return
    outcomes = run_and_render(app, STEP, mosaic_one, subjects, limit, exit_now=False)
    if not outcomes and not subjects:
        _explain_waiting(app)
    exit_for(sum(o.failed for o in outcomes))


def _explain_waiting(app: App) -> None:
    """Nothing to combine: say how many imaged observations wait for a full group."""
    from contimg.ops.status import ungrouped_images

    waiting = ungrouped_images(app.db())
    if waiting:
        cfg = app.config()
        click.echo(f"{len(waiting)} imaged observation(s) wait for a group of mosaic.n = "
                   f"{cfg.mosaic_n} ({cfg.sources.get('mosaic.n')}); give --n {len(waiting)} "
                   "to combine what there is", err=True)
