"""The live view of `contimg watch` on a terminal.

Steps in pipeline order; a product held by QA is counted as held, not done; a panel
lists what waits (deferred jobs with their reason, held products) next to what runs.
"""

from __future__ import annotations

import threading
import time

from contimg.cli.common import App
from contimg.cli.status import STATES, state_cells, steps_in_order


def snapshot(db) -> dict:
    """What the view shows, read from the database (cheap: counts and short lists)."""
    from contimg.state import jobs, mosaics

    counts = jobs.counts(db)
    held = mosaics.list_products(db, states=("held",))
    if held and "publish" in counts:
        moved = min(len(held), counts["publish"].get("done", 0))
        counts["publish"]["done"] -= moved
        counts["publish"]["held"] = moved
    waiting = [j for j in jobs.list_jobs(db, states=("pending",)) if j.last_error][:8]
    return {"counts": counts, "held": held[-8:], "waiting": waiting}


def render(watcher, snap: dict):
    from rich.console import Group
    from rich.table import Table

    title = "contimg watch" + (" (stopping)" if watcher.stopping else "")
    counts = Table("step", *STATES, "held", title=title)
    for step in steps_in_order(snap["counts"]):
        cells = dict(state_cells(snap["counts"][step]))
        counts.add_row(step, *(str(cells.get(s, 0)) for s in (*STATES, "held")))
    running = Table("step", "subject", "where", "seconds", title="running")
    for r in list(watcher.running.values()):
        proc = getattr(r.handle, "proc", None)
        where = f"pid {proc.pid}" if proc is not None else watcher.executor.name
        running.add_row(r.spec.name, r.job.subject, where, f"{time.time() - r.started:.0f}")
    waiting = Table("what", "step", "item", "why", title="waiting or held")
    for j in snap["waiting"]:
        waiting.add_row("waiting", j.step, j.subject, j.last_error or "")
    for p in snap["held"]:
        waiting.add_row("held", "publish", p["id"], p.get("reason") or "")
    recent = Table("recent events", show_header=True)
    for line in list(watcher.recent)[-8:]:
        recent.add_row(line)
    return Group(counts, running, waiting, recent)


def run_live(app: App, opts, install_signals) -> int:
    from rich.live import Live

    from contimg.ops.watch import Watcher
    from contimg.state import Database

    watcher = Watcher(app.config(), opts, emit=lambda line: None)
    install_signals(watcher)
    view_db = Database(app.config().db_path)
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(watcher.run()), daemon=True)
    with Live(render(watcher, snapshot(view_db)), console=app.console,
              refresh_per_second=2) as live:
        worker.start()
        while worker.is_alive():
            worker.join(timeout=1.0)
            live.update(render(watcher, snapshot(view_db)))
    view_db.close()
    return result[0] if result else 1
