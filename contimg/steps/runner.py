"""The loop that drives the queued steps, and what every step shares around its work.

A step (``contimg.steps.contract``) is prepare -> work -> record.  Here: claim jobs
(named subjects, or the oldest observation first), keep the lease alive from a
background thread, run the three parts in this process (``run_here``; `watch`
instead sends ``work`` to an executor), and turn exceptions into recorded failures
with backoff.  ``execute`` is the one place where work runs: it checks that every
output stays inside its root and holds the order's file lock meanwhile.
"""

from __future__ import annotations

import importlib
import os
import socket
import threading
import traceback
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterator, Sequence

from filelock import FileLock, Timeout

from contimg.config import Config
from contimg.paths import inside
from contimg.state import Database, Job, LeaseLost, jobs
from contimg.steps.contract import Decision, Outcome, Status, StepError, WorkOrder

__all__ = ["Decision", "Outcome", "Status", "StepError", "WorkOrder", "StepContext", "run_jobs",
           "run_here", "execute", "make_owner"]


@dataclass
class StepContext:
    config: Config
    db: Database
    owner: str
    progress: Callable[[str, float], None] | None = None
    trace: Callable[[str, str], None] | None = None  # (traceback text, subject); else stderr
    force: bool = False  # publish: also what QA held (an operator's explicit choice)


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
    try:
        return do(ctx, job)
    except Exception as exc:  # recorded, never swallowed: the job carries the error
        return record_failure(ctx, job, exc)


def step_module(step: str) -> ModuleType:
    """The module holding a step's prepare, work and record."""
    return importlib.import_module(f"contimg.steps.{step}")


def run_here(ctx: StepContext, job: Job, step: ModuleType) -> Outcome:
    """prepare -> work -> record, all in this process (hand-run subcommands, tests)."""
    order = step.prepare(ctx, job)
    if isinstance(order, Decision):
        return apply_decision(ctx, job, order)
    waiting = defer_unless_room(ctx, job, order)
    if waiting is not None:
        return waiting
    result = execute(order, ctx.progress)
    return step.record(ctx, job, order, result)


def execute(order: WorkOrder, progress: Callable[[str, float], None] | None = None) -> dict:
    """Run ``work`` for an order: outputs must resolve inside ``order.root``, and the
    order's lock is held meanwhile (a second writer of the same output waits its turn)."""
    for out in order.outputs:
        if not inside(Path(out), Path(order.root)):
            raise StepError(f"{out} resolves outside {order.root}; refusing to write there",
                            retryable=False)
    work = step_module(order.step).work
    if order.lock is None:
        return work(order, progress)
    Path(order.lock).parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(order.lock)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise StepError(f"{order.subject}: its output is being written by another process "
                        f"(lock {order.lock}); will retry") from None
    try:
        return work(order, progress)
    finally:
        lock.release()


def apply_decision(ctx: StepContext, job: Job, decision: Decision) -> Outcome:
    """Record what prepare decided when no work was needed, in one fenced transaction."""
    if decision.status == Status.DEFERRED:
        jobs.defer(ctx.db, job, decision.message, decision.recheck_s, record=decision.record)
    else:
        jobs.complete(ctx.db, job, record=decision.record, next_jobs=decision.next_jobs,
                      message=decision.message)
    return Outcome(job.subject, decision.status, decision.detail or decision.message)


def defer_unless_room(ctx: StepContext, job: Job, order: WorkOrder) -> Outcome | None:
    """None if the order's output fits on staging with the reserve; else defer the job."""
    from contimg.steps.diskspace import room_reason

    if not order.need_what:
        return None
    reason = room_reason(ctx.config, order.need_bytes, order.need_what)
    if reason is None:
        return None
    jobs.defer(ctx.db, job, reason, ctx.config.disk_recheck_s)
    return Outcome(job.subject, Status.DEFERRED, reason)


def record_failure(ctx: StepContext, job: Job, exc: BaseException) -> Outcome:
    """The job's failure, recorded with backoff (or dead); a lost lease is only reported."""
    if isinstance(exc, LeaseLost):
        return Outcome(job.subject, Status.LOST, str(exc))
    cfg = ctx.config
    retryable = getattr(exc, "retryable", True)
    message = describe(exc)
    if not isinstance(exc, StepError):  # unexpected: the full traceback goes to the log
        text = "".join(traceback.format_exception(exc))
        if ctx.trace is not None:
            ctx.trace(text, job.subject)
        else:
            print(text, end="", flush=True)
    try:
        state = jobs.fail(ctx.db, job, message, base_s=cfg.jobs_backoff_base_s,
                          max_s=cfg.jobs_backoff_max_s, retryable=retryable,
                          max_attempts=cfg.jobs_max_attempts, record=failure_record(job, message))
    except LeaseLost as lost:
        return Outcome(job.subject, Status.LOST, str(lost))
    return Outcome(job.subject, state, message)


def failure_record(job: Job, message: str):
    """The step's own rows to update with a failure (``record_failure(conn, job, state,
    message)`` in its module, e.g. publish marks its product), for ``jobs.fail(record=...)``."""
    hook = getattr(step_module(job.step), "record_failure", None)
    return None if hook is None else (lambda conn, state: hook(conn, job, state, message))


def describe(exc: BaseException) -> str:
    """One line: a StepError's own words; anything else with where it was raised."""
    if isinstance(exc, StepError):
        return str(exc)
    tb = traceback.extract_tb(exc.__traceback__)
    if not tb:
        return f"{type(exc).__name__}: {exc}"
    frame = tb[-1]
    return f"{type(exc).__name__}: {exc} (at {Path(frame.filename).name}:{frame.lineno} in {frame.name})"


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
