"""`contimg list`: the IDs other commands take, one per line (for pipelines)."""

from __future__ import annotations

import click

from contimg.cli.common import App, emit_json, json_option, pass_app
from contimg.state import ingest as ingest_state, jobs, mosaics
from contimg.steps.registry import PIPELINE

KINDS = ("observations", "mosaics", "products", "jobs")


@click.command("list")
@click.argument("kind", type=click.Choice(KINDS))
@click.option("--state", "states", multiple=True,
              help="Only items in this state (repeatable), e.g. failed, done, published.")
@click.option("--step", type=click.Choice([s.name for s in PIPELINE]), default=None,
              help="jobs: only this step.")
@json_option
@pass_app
def command(app: App, kind: str, states: tuple[str, ...], step: str | None) -> None:
    """Print observation, mosaic, product IDs (or job subjects), oldest first.

    Plain output is one ID per line, ready for `| contimg redo image` or `| xargs -r`;
    --json gives the full records.
    """
    db = app.db()
    if kind == "observations":
        rows = ingest_state.observations(db, states=states)
    elif kind == "mosaics":
        rows = [m for m in mosaics.list_mosaics(db) if not states or m["state"] in states]
    elif kind == "products":
        rows = mosaics.list_products(db, states=states)
    else:
        bad = set(states) - set(jobs.STATES)
        if bad:
            raise click.BadParameter(f"{', '.join(sorted(bad))}: job states are "
                                     f"{', '.join(jobs.STATES)}", param_hint="--state")
        rows = [{"id": j.id, "step": j.step, "subject": j.subject, "state": j.state,
                 "attempts": j.attempts, "last_error": j.last_error}
                for j in jobs.list_jobs(db, step=step, states=states)]
    if app.json_output:
        emit_json(rows)
        return
    key = "subject" if kind == "jobs" else "id"
    for r in rows:
        click.echo(r[key])
