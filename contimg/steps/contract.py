"""The shape every queued step has, and the words its results are told in.

A step is three functions in one module:

- ``prepare(ctx, job) -> WorkOrder | Decision`` reads the state database and decides
  everything: inputs, output paths (from ``contimg.names``), options.  It writes
  nothing.  A ``Decision`` says no work is needed (skipped, deferred, held) and what
  to record for that.
- ``work(order, progress=None) -> dict`` touches files only, never the database,
  so it can run in a child process or on another host (a Dask worker) that mounts
  the same filesystem.  It is idempotent: outputs are staged and renamed into place,
  and outputs already in place are verified rather than redone.
- ``record(ctx, job, order, result) -> Outcome`` writes the result rows and the
  next jobs in one fenced transaction (``jobs.complete`` or ``jobs.defer``).

The runner (``contimg.steps.runner``) owns what is common: the file lock, path
containment and disk-space check around ``work``, lease renewal, and turning
exceptions into recorded failures.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, Sequence

from contimg.state import NextJob


class Status(str, Enum):
    """How a job ended, as every step, `watch` and `status` report it.

    done      the step did its work and recorded it; the next step is queued
    skipped   nothing to do (already done, or running elsewhere); state unchanged
    deferred  waiting for something (a calibration solution, disk space): back in
              the queue with its reason, attempts unchanged
    held      finished but not passed on (a product that failed QA stays in staging)
    failed    an error; retried after a backoff
    dead      an error that retrying cannot fix, or the last attempt failed
    lost      the lease was taken over by another process; this result was discarded
    """

    DONE = "done"
    SKIPPED = "skipped"
    DEFERRED = "deferred"
    HELD = "held"
    FAILED = "failed"
    DEAD = "dead"
    LOST = "lost"

    def __str__(self) -> str:  # prints as the bare word in tables and JSON
        return self.value


class StepError(RuntimeError):
    """A failure the operator can act on; ``retryable`` False makes the job dead at once."""

    def __init__(self, message: str, *, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable

    def __reduce__(self):  # crosses process boundaries (child workers, Dask) intact
        return (_rebuild_step_error, (str(self), self.retryable))


def _rebuild_step_error(message: str, retryable: bool) -> StepError:
    return StepError(message, retryable=retryable)


@dataclass
class Outcome:
    subject: str
    status: str  # a Status value
    message: str
    data: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.status = Status(self.status).value  # refuse a word outside the vocabulary

    @property
    def failed(self) -> bool:
        return self.status in (Status.FAILED, Status.DEAD)


@dataclass(frozen=True)
class WorkOrder:
    """What ``work`` needs, as plain picklable data (no database handle, no config object).

    ``root`` is the directory every output must stay inside; ``lock`` a path locked
    while the work runs (None: no lock); ``need_bytes`` the staging space it will use."""

    step: str
    subject: str
    root: str
    outputs: tuple[str, ...] = ()
    lock: str | None = None
    need_bytes: float = 0.0
    need_what: str = ""
    uses_casa: bool = False


@dataclass
class Decision:
    """prepare's answer when no work is needed: what to record, in one fenced transaction."""

    status: Status
    message: str
    next_jobs: Sequence[NextJob] = ()
    record: Callable[[sqlite3.Connection], None] | None = None
    recheck_s: float = 0.0   # deferred: when to look again
    detail: str | None = None  # the line shown to the operator, if not ``message``
