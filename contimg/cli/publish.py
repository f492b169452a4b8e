"""`contimg publish`: move finished, QA-passed products into the products root."""

from __future__ import annotations

import functools

import click

from contimg.cli.common import App, items_from, json_option, pass_app
from contimg.cli.stepcmd import run_and_render
from contimg.state import jobs, mosaics
from contimg.steps.publish import STEP, publish_one


@click.command("publish")
@click.argument("product_ids", nargs=-1)
@click.option("--limit", type=int, default=None, help="Publish at most N products.")
@click.option("--force", is_flag=True, help="Publish the named products even if QA did not pass.")
@json_option
@pass_app
def command(app: App, product_ids: tuple[str, ...], limit: int | None, force: bool) -> None:
    """Publish staged products (IDs as arguments or on stdin; default: all pending)."""
    subjects = items_from(product_ids)
    if force and not subjects:
        raise click.UsageError("--force needs product IDs")
    db = app.db()
    for pid in subjects:   # by name: also a held or dead product gets another go (P5)
        prod = mosaics.get_product(db, pid)
        if prod and prod["state"] in ("held", "failed") or force:
            jobs.reopen(db, STEP, pid)
            jobs.retry(db, ids=[j.id for j in [jobs.find(db, STEP, pid)] if j])
    do = functools.partial(publish_one, force=force)
    run_and_render(app, STEP, do, subjects, limit)
