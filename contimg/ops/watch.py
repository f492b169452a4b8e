"""`contimg watch`: run every step continuously, each job in a child process (O2).

The parent owns the database leases: it claims a job (downstream steps first, so
finished work flows out), starts a worker process for it, renews the lease while
the worker runs and, when the worker dies without recording a result (crash,
kill, timeout), records the failure with the worker's last log lines.  A first
SIGINT/SIGTERM stops claiming and lets running jobs finish within a grace
period; a second one stops at once.  Unfinished jobs are released, so the state
stays consistent whichever way the watcher ends, `kill -9` included (the leases
then expire and any watcher or subcommand takes the jobs over).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from contimg.config import Config
from contimg.executors import Executor, Finished, make_executor
from contimg.ops.prune import prune_ms
from contimg.state import Database, Job, jobs
from contimg.steps import ingest
from contimg.steps.contract import Decision, Outcome, Status, StepError, WorkOrder
from contimg.steps.mosaic import form_groups
from contimg.steps.registry import StepSpec, available
from contimg.steps.runner import (StepContext, apply_decision, defer_unless_room, failure_record,
                                  make_owner, record_failure, step_module)


PRUNE_EVERY_S = 600.0  # retention runs at most this often inside the loop
PRUNE_PER_PASS = 20    # and removes at most this many MSs per pass (a short pause)
TERM_WAIT_S = 5.0      # a worker stopped at the end of the grace period gets this after SIGTERM


@dataclass
class WatchOptions:
    once: bool = False
    workers: int = 1
    interval_s: float = 30.0      # between ingest scans when idle
    grace_s: float = 600.0        # how long running jobs may finish after a stop request
    timeouts: dict[str, float] = field(default_factory=dict)  # per step, seconds
    poll_s: float = 0.5
    verbosity: int = 0            # -q: only failures and stopping; -v: also scan notes
    executor: str | None = None   # local | dask (None: watch.executor)
    scheduler: str | None = None  # dask scheduler address (None: watch.scheduler)


@dataclass
class Running:
    job: Job
    spec: StepSpec
    order: WorkOrder
    handle: object
    started: float
    log: Path
    renewed: float


class Watcher:
    def __init__(self, cfg: Config, opts: WatchOptions, emit: Callable[[str], None]):
        self.cfg, self.opts, self.emit = cfg, opts, emit
        cfg.ensure_dirs()
        self.db: Database | None = None  # opened in run(), the thread that uses it
        self.owner = make_owner()
        self.steps = available()
        self.running: dict[int, Running] = {}
        self.stopping = False
        self.hard_stop = False
        self.stop_deadline = 0.0
        self.recent: deque[str] = deque(maxlen=10)
        self.finished = 0
        self.failures = 0
        self.log_path = cfg.logs / "watch.log"
        self._noted: set[str] = set()
        self._last_prune = 0.0
        self.dirty = True
        self.executor: Executor | None = None

    # -- signals -------------------------------------------------------------
    def request_stop(self, *_args) -> None:
        if self.stopping:
            self.hard_stop = True
            return
        self.stopping = True
        self.stop_deadline = time.time() + self.opts.grace_s
        self._say(level=-1, line=f"stop requested: no new jobs; {len(self.running)} running get "
                  f"{self.opts.grace_s:.0f} s to finish (signal again to stop at once)")

    # -- main loop -----------------------------------------------------------
    def run(self) -> int:
        self.db = Database(self.cfg.db_path)
        kind = self.opts.executor or self.cfg.watch_executor
        self.executor = make_executor(kind, home=self.cfg.home, workers=self.opts.workers,
                                      scheduler=self.opts.scheduler or self.cfg.watch_scheduler or None)
        self.ctx = StepContext(self.cfg, self.db, self.owner, trace=self._trace)
        where = self.executor.describe()
        write_run_info(self.cfg, where)
        extra = "".join(f", {k} {v}" for k, v in where.items() if k != "executor")
        self._say(f"watch: started (pid {os.getpid()}, state {self.cfg.home}, "
                  f"{self.opts.workers} worker(s), executor {where['executor']}{extra}"
                  f"{', once' if self.opts.once else ''})", level=0 if kind != "local" else 1)
        try:
            return self._loop()
        finally:
            self.executor.close()
            clear_run_info(self.cfg)
            self.db.close()

    def _loop(self) -> int:
        last_scan = 0.0
        while True:
            self._reap()
            self._renew()
            if self.hard_stop or (self.stopping and time.time() > self.stop_deadline):
                self._abandon_all("stopped before finishing")
                break
            if self.stopping:
                if not self.running:
                    break
                time.sleep(self.opts.poll_s)
                continue
            gap = min(2.0, self.opts.interval_s) if self.opts.once else self.opts.interval_s
            if self.dirty or time.time() - last_scan >= gap:
                self.dirty = False
                self._scan()
                last_scan = time.time()
            started = self._fill()
            if self.opts.once and not self.running and not started:
                break
            if not started:
                time.sleep(self.opts.poll_s)
        if self.opts.once:
            self._say(f"watch: done for now, {self.finished} job(s) finished, "
                      f"{self.failures} failed")
        return 1 if self.failures else 0

    def _scan(self) -> None:
        report = ingest.scan(self.cfg, self.db)
        for obs in report.queued:
            self._say(f"ingest: observation {obs} queued for conversion")
        for path, error in report.quarantined:
            self._say(f"ingest: quarantined {path}: {error}", level=-1)
        for obs, reason in report.incomplete:
            self._say(f"ingest: {obs} incomplete: {reason}")
        if self.cfg.disk_prune and time.time() - self._last_prune >= PRUNE_EVERY_S:
            self._last_prune = time.time()
            self._prune()
        try:
            formed = form_groups(self.cfg, self.db)
        except StepError as exc:
            self._say(f"mosaic: cannot form groups: {exc}")
            return
        for mid in formed.formed:
            self._say(f"mosaic: formed group {mid}")
        for note in formed.notes:
            self._note(f"mosaic: {note}")

    def _prune(self) -> None:
        """Retention inside the loop; a filesystem error is reported, never fatal."""
        try:
            pruned = prune_ms(self.cfg, self.db, keep_h=self.cfg.disk_keep_ms_h,
                              limit=PRUNE_PER_PASS)
        except (OSError, sqlite3.Error) as exc:
            self._note(f"prune: failed ({exc}); Measurement Sets kept, see 'contimg prune'")
            return
        for r in pruned.removed:
            self._say(f"prune: removed the MS of {r['observation_id']} "
                      f"({(r['size_bytes'] or 0) / 1e9:.2f} GB; its mosaics are published)")
        for path, why in pruned.refused:
            self._note(f"prune: refused {path}: {why}")

    def _note(self, line: str) -> None:
        """Say a recurring condition once, not at every scan (every scan with -v)."""
        if line not in self._noted:
            self._noted.add(line)
            self._say(line)
        elif self.opts.verbosity > 0:
            self._say(line, level=1)

    def _fill(self) -> bool:
        started = False
        while len(self.running) < self.opts.workers and not self.stopping:
            job, spec, order = self._claim_next()
            if job is None:
                break
            self._start(job, spec, order)
            started = True
        return started

    def _claim_next(self) -> tuple[Job | None, StepSpec | None, WorkOrder | None]:
        """The next job with work to do, prepared here; jobs that need none (skipped,
        deferred, held, or failed in prepare) are recorded on the way."""
        seen: list[int] = []   # handled in this pass: a job deferred (or failed) with no delay
        for spec in reversed(self.steps):          # downstream first: finished work flows out
            while True:   # is not taken again at once
                job = jobs.claim(self.db, spec.name, self.owner, self.cfg.jobs_lease_s, exclude=seen)
                if job is None:
                    break
                seen.append(job.id)
                t0 = time.time()
                try:
                    order = step_module(spec.name).prepare(self.ctx, job)
                    if isinstance(order, Decision):
                        self._report(spec, job, apply_decision(self.ctx, job, order), t0)
                        continue
                    waiting = defer_unless_room(self.ctx, job, order) if spec.writes_staging else None
                except Exception as exc:
                    self._report(spec, job, record_failure(self.ctx, job, exc), t0)
                    continue
                if waiting is None:
                    return job, spec, order
                # below the reserve: deferred here, without starting a worker just to wait
                self._note(f"disk: {self.cfg.staging} is below disk.reserve_gb; convert, calibrate, "
                           "image and mosaic jobs wait (deferred, see 'contimg status')")
        return None, None, None

    def _start(self, job: Job, spec: StepSpec, order: WorkOrder) -> None:
        stale = self.running.pop(job.id, None)
        if stale is not None:  # our own lease expired while we stalled and we re-claimed it
            self._say(f"{spec.name}: {job.subject} re-claimed after its lease expired; "
                      "stopping the old worker")
            self.executor.cancel(stale.handle)
        log = self.cfg.logs / "jobs" / spec.name / f"{job.subject}.log"
        try:
            handle = self.executor.submit(order, log, f"{spec.name}-{job.subject}-{job.id}-{job.fence}")
        except Exception as exc:  # e.g. a Dask scheduler out of reach: the job waits, watch goes on
            released = jobs.release(self.db, job)
            self._say(f"{spec.name}: {job.subject} not started ({type(exc).__name__}: {exc}); "
                      + ("released for the next try" if released else "lease already gone"), level=-1)
            return
        now = time.time()
        self.running[job.id] = Running(job, spec, order, handle, now, log, now)
        pid = getattr(getattr(handle, "proc", None), "pid", None)
        self._say(f"{spec.name}: started {job.subject} (job {job.id}"
                  + (f", pid {pid})" if pid else f", {self.executor.name})"))

    def _renew(self) -> None:
        now = time.time()
        for r in list(self.running.values()):
            if now - r.renewed < self.cfg.jobs_lease_s / 3:
                continue
            if jobs.renew(self.db, r.job, self.cfg.jobs_lease_s):
                r.renewed = now
                continue
            current = jobs.get(self.db, r.job.id)
            self._say(f"{r.spec.name}: lease of {r.job.subject} lost"
                      + (f" to {current.lease_owner}" if current is not None and current.lease_owner else "")
                      + "; stopping its worker, its result will not be recorded")
            self.executor.cancel(r.handle)
            del self.running[r.job.id]

    def _reap(self) -> None:
        now = time.time()
        for jid, r in list(self.running.items()):
            timeout = self.opts.timeouts.get(r.spec.name)
            done = self.executor.poll(r.handle)
            if done is None:
                if timeout and now - r.started > timeout:
                    self.executor.cancel(r.handle)
                    self._record_crash(r, f"timed out after {timeout:.0f} s")
                    del self.running[jid]
                continue
            del self.running[jid]
            if done.crashed:
                self._record_crash(r, done.error)
                continue
            self._report(r.spec, r.job, self._record(r, done), r.started)

    def _record(self, r: Running, done: Finished) -> Outcome:
        """The head records what the worker did (or why it failed), fenced."""
        try:
            if done.result is None:
                raise StepError(done.error, retryable=done.retryable)
            return step_module(r.spec.name).record(self.ctx, r.job, r.order, done.result)
        except Exception as exc:
            return record_failure(self.ctx, r.job, exc)

    def _report(self, spec: StepSpec, job: Job, out: Outcome, t0: float) -> None:
        self.finished += 1
        if out.failed:
            self.failures += 1
        self.dirty = True
        if out.status == Status.DEFERRED:
            line = f"{spec.name}: {job.subject} deferred: {out.message}"
        elif out.status in (Status.FAILED, Status.DEAD, Status.HELD):
            line = f"{spec.name}: {job.subject} -> {out.status} in {time.time() - t0:.1f} s: {out.message}"
        else:
            line = f"{spec.name}: {job.subject} -> {out.status} in {time.time() - t0:.1f} s"
        self._say(line, level=-1 if out.status in (Status.FAILED, Status.DEAD, Status.HELD) else 0)

    def _trace(self, text: str, subject: str) -> None:
        """An unexpected exception in prepare or record: its traceback to the job's log."""
        path = self.cfg.logs / "jobs" / "head" / f"{subject}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as fh:
            fh.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')}\n{text}")

    def _record_crash(self, r: Running, what: str) -> None:
        message = f"{what}; last log lines ({r.log}):\n{_tail(r.log, 15)}"
        try:
            state = jobs.fail(self.db, r.job, message, base_s=self.cfg.jobs_backoff_base_s,
                              max_s=self.cfg.jobs_backoff_max_s, max_attempts=self.cfg.jobs_max_attempts,
                              record=failure_record(r.job, message))
        except jobs.LeaseLost:
            state = "lost"
        self.failures += 1
        self._say(f"{r.spec.name}: {r.job.subject} {what} -> {state}", level=-1)

    def _abandon_all(self, why: str) -> None:
        for jid, r in list(self.running.items()):
            # workers remove their temporaries on SIGTERM; a second signal means at once
            self.executor.cancel(r.handle, 0.0 if self.hard_stop else TERM_WAIT_S)
            released = jobs.release(self.db, r.job)
            self._say(f"{r.spec.name}: {r.job.subject} {why}; "
                      + ("released for the next run" if released else "lease already gone"))
            del self.running[jid]

    def _say(self, line: str, level: int = 0) -> None:
        """Log every line; show it when ``level`` <= the verbosity (-q shows level -1)."""
        stamped = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}"
        self.recent.append(stamped)
        with open(self.log_path, "a") as fh:
            fh.write(stamped + "\n")
        if level <= self.opts.verbosity:
            self.emit(stamped)


def write_run_info(cfg: Config, where: dict) -> None:
    """<home>/run/watch.json: which executor a running watch uses (shown by `status`)."""
    import json

    from contimg.paths import staged

    with staged(cfg.home / "run" / "watch.json") as tmp:
        tmp.write_text(json.dumps({**where, "pid": os.getpid(), "started": time.time()}))


def read_run_info(cfg: Config) -> dict | None:
    """What a watch running on this host wrote at its start; None if none is running."""
    import json

    try:
        info = json.loads((cfg.home / "run" / "watch.json").read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info


def clear_run_info(cfg: Config) -> None:
    try:
        (cfg.home / "run" / "watch.json").unlink()
    except OSError:
        pass


def _tail(path: Path, n: int) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])
