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
@click.option("--list", "list_only", is_flag=True, help="List products: state, files, QA.")
@json_option
@pass_app
def command(app: App, product_ids: tuple[str, ...], limit: int | None, force: bool,
            list_only: bool) -> None:
    """Publish staged products (IDs as arguments or on stdin; default: all pending)."""
    if list_only:
        _list(app)
        return
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


LIST_FIGURES = ("noise_jy", "dynamic_range", "nsources", "n_negative", "false_detection_fraction",
                "radiometer_ratio", "warning")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _list(app: App) -> None:
    """Where each product is, with its QA summary (failed criteria named) and catalogue."""
    from pathlib import Path

    db = app.db()
    rows = []
    for p in mosaics.list_products(db):
        m = mosaics.get_mosaic(db, p["mosaic_id"]) or {}
        where = Path(p["published_dir"] or p["staged_dir"])
        files = {k: str(where / Path(v).name) for k, v in p["files"].items()}
        qa = m.get("qa") or {}
        figures = {k: qa.get(k) for k in LIST_FIGURES if qa.get(k) is not None}
        cat = qa.get("catalogue") or {}
        for k in ("recovery_fraction", "flux_ratio_median", "astrometric_offset_arcsec"):
            if cat.get(k) is not None:
                figures[k] = cat[k]
        rows.append({"id": p["id"], "state": p["state"], "dir": str(where), "files": files,
                     "qa_status": p["qa_status"], "validation_status": p["validation_status"],
                     "qa_failed": qa.get("failed") or [], "reason": p.get("reason"), "qa": figures})
    if app.json_output:
        from contimg.cli.common import emit_json

        emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['id']}\t{r['state']}\tQA {r['qa_status']}\t{r['dir']}")
        for f in r["qa_failed"]:
            click.echo(f"  QA failed: {f}")
        for name, path in r["files"].items():
            click.echo(f"  {name}: {path}")
        for k, v in r["qa"].items():
            click.echo(f"  {k}: {_fmt(v)}")
