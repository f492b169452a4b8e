"""TAB completion of IDs from the state database (read-only, never creates anything)."""

from __future__ import annotations

import os
from pathlib import Path

import click


def _home(ctx: click.Context) -> Path | None:
    c: click.Context | None = ctx
    while c is not None:
        if c.params.get("home"):
            return Path(c.params["home"])
        c = c.parent
    env = os.environ.get("CONTIMG_HOME")
    return Path(env) if env else Path("contimg-data")


def complete_ids(ctx: click.Context, param: click.Parameter, incomplete: str):
    """Subjects of the command's step that are not done (or job IDs for retry)."""
    from click.shell_completion import CompletionItem

    from contimg.state import Database, jobs

    home = _home(ctx)
    db_path = home / "state.sqlite3" if home else None
    if db_path is None or not db_path.is_file():
        return []
    step = ctx.params.get("step") or ctx.info_name
    try:
        db = Database(db_path, create=False, migrate=False, busy_timeout_ms=500)
        if ctx.info_name == "retry":
            rows = jobs.list_jobs(db, step=ctx.params.get("step"), states=("failed", "dead"))
            out = [CompletionItem(r.subject, help=f"{r.step} {r.state}") for r in rows]
        else:
            rows = jobs.list_jobs(db, step=step if step in (
                "convert", "calibrate", "image", "mosaic", "publish") else None)
            wanted = ("done",) if ctx.info_name == "redo" else ("pending", "failed", "dead")
            out = [CompletionItem(r.subject, help=f"{r.step} {r.state}") for r in rows
                   if r.state in wanted]
        db.close()
    except Exception:  # noqa: BLE001 - completion must never print a traceback
        return []
    seen: set[str] = set()
    return [c for c in out if c.value.startswith(incomplete)
            and not (c.value in seen or seen.add(c.value))]
