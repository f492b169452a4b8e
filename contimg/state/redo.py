"""Redo a step for one subject: its job back to pending, its downstream jobs removed.

Used when a product was lost (an MS deleted by accident or pruned) or must be remade
with new settings.  One transaction per subject: the step's job is reset with a fresh
attempt budget and the jobs of the later steps of the same subject are deleted, so
completing the redone step enqueues them again (``complete`` only inserts missing
jobs).  Result rows (MS, images) are upserted by the steps, so nothing else changes
here; a running job (live lease) is never touched.
"""

from __future__ import annotations

import time
from typing import Sequence

from contimg.state.db import Database
from contimg.state.jobs import Job, add_event


def redo(db: Database, step: str, subject: str, *, downstream: Sequence[str] = (),
         now: float | None = None) -> tuple[str, Job | None]:
    """Returns (what happened, the reset job): 'reset', 'no-job' or 'running'."""
    now = now or time.time()
    steps = (step, *downstream)
    marks = ",".join("?" * len(steps))
    with db.transaction() as conn:
        busy = conn.execute(
            f"SELECT * FROM jobs WHERE subject = ? AND step IN ({marks}) AND state = 'running'"
            " AND lease_expires_at >= ?", (subject, *steps, now)).fetchone()
        if busy is not None:
            return "running", Job.from_row(busy)
        row = conn.execute(
            "UPDATE jobs SET state = 'pending', attempts = 0, next_attempt_at = 0,"
            " last_error = NULL, lease_owner = NULL, lease_expires_at = NULL, updated_at = ?"
            " WHERE step = ? AND subject = ? RETURNING *", (now, step, subject)).fetchone()
        if row is None:
            return "no-job", None
        if downstream:
            conn.execute(f"DELETE FROM jobs WHERE subject = ? AND step IN"
                         f" ({','.join('?' * len(downstream))})", (subject, *downstream))
        add_event(conn, "redo", f"{step} {subject} reset to pending by hand"
                  + (f"; {', '.join(downstream)} will follow" if downstream else ""),
                  step=step, subject=subject, now=now)
        return "reset", Job.from_row(row)
