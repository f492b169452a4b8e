"""The one contract every queued step follows, and the loop that drives it.

A step is a function ``do(ctx, job) -> Outcome`` for one claimed job.  The runner
claims (named subjects, or the oldest observation first), keeps the lease alive
from a background thread while the work runs, and turns exceptions into recorded
failures with backoff.  Steps commit their results with ``jobs.complete`` so the
result rows and the next step's job land in one transaction.
"""

from __future__ import annotations

import os
import socket
import threading
import traceback
import uuid
from pathlib import Path
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

from contimg.config import Config
from contimg.state import Database, Job, LeaseLost, jobs


class StepError(RuntimeError):
    """A failure the operator can act on; ``retryable`` False makes the job dead at once."""

    def __init__(self, message: str, *, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


@dataclass
class Outcome:
    subject: str
    status: str  # done | skipped | deferred | failed | dead | lost
    message: str
    data: dict = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status in ("failed", "dead")


@dataclass
class StepContext:
    config: Config
    db: Database
    owner: str
    progress: Callable[[str, float], None] | None = None
    trace: Callable[[str, str], None] | None = None  # (traceback text, subject); else stderr


def make_owner() -> str:
    """A lease owner name that is unique per process and claim session."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@contextmanager
def keep_lease(db_path, job: Job, lease_s: float) -> Iterator[threading.Event]:
    """Renew the lease every lease_s/3 while the body runs; sets ``lost`` if taken over."""
    stop, lost = threading.Event(), threading.Event()

    def renew_loop() -> None:
        own = Database(db_path, migrate=False)
        try:
            while not stop.wait(max(1.0, lease_s / 3)):
                if not jobs.renew(own, job, lease_s):
                    lost.set()
                    return
        finally:
            own.close()

    thread = threading.Thread(target=renew_loop, name=f"lease-{job.id}", daemon=True)
    thread.start()
    try:
        yield lost
    finally:
        stop.set()
        thread.join(timeout=10)


DoOne = Callable[[StepContext, Job], Outcome]


def run_jobs(ctx: StepContext, step: str, do: DoOne, *, subjects: Sequence[str] = (),
             limit: int | None = None) -> list[Outcome]:
    """Claim and run jobs of ``step``: the named subjects, or pending ones oldest first."""
    cfg = ctx.config
    outcomes: list[Outcome] = []
    queue = list(subjects)
    deferred: set[int] = set()  # deferred since the last job that got done: not retaken yet
    while limit is None or len(outcomes) < limit:
        if subjects:
            if not queue:
                break
            subject = queue.pop(0)
            job = jobs.claim(ctx.db, step, ctx.owner, cfg.jobs_lease_s, subject=subject)
            if job is None:
                outcomes.append(_not_claimable(ctx.db, step, subject))
                continue
        else:
            job = jobs.claim(ctx.db, step, ctx.owner, cfg.jobs_lease_s, exclude=sorted(deferred))
            if job is None:
                break
        outcome = run_one(ctx, job, do)
        outcomes.append(outcome)
        if outcome.status == "deferred":
            deferred.add(job.id)
        elif outcome.status == "done":
            deferred.clear()  # what they waited for may have just happened
    return outcomes


def run_one(ctx: StepContext, job: Job, do: DoOne) -> Outcome:
    """Run a claimed job here, renewing its lease meanwhile."""
    with keep_lease(ctx.db.path, job, ctx.config.jobs_lease_s):
        return run_step_body(ctx, job, do)


def run_step_body(ctx: StepContext, job: Job, do: DoOne) -> Outcome:
    """Run ``do`` and record any exception as the job's failure (lease kept by the caller)."""
    cfg = ctx.config
    try:
        return do(ctx, job)
    except LeaseLost as exc:
        return Outcome(job.subject, "lost", str(exc))
    except Exception as exc:  # recorded, never swallowed: the job carries the error
        retryable = getattr(exc, "retryable", True)
        if isinstance(exc, StepError):
            message = str(exc)
        else:  # unexpected: say where, briefly; the full traceback goes to the log
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            message = (f"{type(exc).__name__}: {exc} (at {Path(frame.filename).name}:{frame.lineno}"
                       f" in {frame.name})")
            if ctx.trace is not None:
                ctx.trace(traceback.format_exc(), job.subject)
            else:
                traceback.print_exc()
        try:
            state = jobs.fail(ctx.db, job, message, base_s=cfg.jobs_backoff_base_s,
                              max_s=cfg.jobs_backoff_max_s, retryable=retryable,
                              max_attempts=cfg.jobs_max_attempts)
        except LeaseLost as lost:
            return Outcome(job.subject, "lost", str(lost))
        return Outcome(job.subject, state, message)


def _not_claimable(db: Database, step: str, subject: str) -> Outcome:
    job = jobs.find(db, step, subject)
    if job is None:
        return Outcome(subject, "failed", f"no {step} job for {subject}: is it registered? "
                       "(see 'contimg status')")
    if job.state == "done":
        return Outcome(subject, "skipped", f"{step} already done for {subject}")
    if job.state == "running":
        return Outcome(subject, "skipped", f"{step} {subject} is running in {job.lease_owner}")
    if job.state == "dead":
        return Outcome(subject, "failed", f"{step} {subject} is dead ({job.last_error}); "
                       f"run 'contimg retry {job.id}'")
    return Outcome(subject, "skipped", f"{step} {subject} waits until its retry time "
                   f"({job.last_error})")
