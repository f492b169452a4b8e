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
import signal
import sqlite3
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from contimg.config import OPTION_BY_KEY, Config
from contimg.ops.prune import prune_ms
from contimg.state import Database, Job, jobs, mosaics
from contimg.steps import ingest
from contimg.steps.diskspace import room_reason
from contimg.steps.mosaic import form_groups
from contimg.steps.registry import StepSpec, available
from contimg.steps.runner import StepError, make_owner


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


@dataclass
class Running:
    job: Job
    spec: StepSpec
    proc: subprocess.Popen
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
        self._say(f"watch: started (pid {os.getpid()}, state {self.cfg.home}, "
                  f"{self.opts.workers} worker(s){', once' if self.opts.once else ''})", level=1)
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
        self.db.close()
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
            job, spec = self._claim_next()
            if job is None:
                break
            self._start(job, spec)
            started = True
        return started

    def _claim_next(self) -> tuple[Job | None, StepSpec | None]:
        for spec in reversed(self.steps):          # downstream first: finished work flows out
            job = jobs.claim(self.db, spec.name, self.owner, self.cfg.jobs_lease_s)
            if job is None:
                continue
            reason = room_reason(self.cfg, 0.0, f"{spec.name} {job.subject}") \
                if spec.writes_staging else None
            if reason is None:
                return job, spec
            # below the reserve: defer here, without starting a worker just to wait
            jobs.defer(self.db, job, reason, self.cfg.disk_recheck_s)
            self._note(f"disk: {self.cfg.staging} is below disk.reserve_gb; convert, calibrate, "
                       "image and mosaic jobs wait (deferred, see 'contimg status')")
        return None, None

    def _start(self, job: Job, spec: StepSpec) -> None:
        stale = self.running.pop(job.id, None)
        if stale is not None:  # our own lease expired while we stalled and we re-claimed it
            self._say(f"{spec.name}: {job.subject} re-claimed after its lease expired; "
                      "stopping the old worker")
            self._kill(stale)
        log = self.cfg.logs / "jobs" / spec.name / f"{job.subject}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        cmd = [*worker_python(), spec.name, str(job.id), self.owner,
               str(job.fence), "--home", str(self.cfg.home)]
        if self.cfg.config_file:
            cmd += ["--config", str(self.cfg.config_file)]
        with open(log, "ab") as fh:
            fh.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {spec.name} {job.subject} "
                     f"(job {job.id}, fence {job.fence})\n".encode())
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=self._child_env(),
                                    start_new_session=True,  # Ctrl-C reaches only the watcher
                                    preexec_fn=_die_with_parent)
        now = time.time()
        self.running[job.id] = Running(job, spec, proc, now, log, now)
        self._say(f"{spec.name}: started {job.subject} (job {job.id}, pid {proc.pid})")

    def _child_env(self) -> dict[str, str]:
        """Flag overrides travel to the worker as CONTIMG_* variables."""
        env = dict(os.environ)
        for key, source in self.cfg.sources.items():
            if source == "flag" and key in OPTION_BY_KEY:
                value = self.cfg.values[key]
                env[OPTION_BY_KEY[key].env] = ",".join(value) if isinstance(value, list) else str(value)
        return env

    def _renew(self) -> None:
        now = time.time()
        for r in list(self.running.values()):
            if now - r.renewed < self.cfg.jobs_lease_s / 3:
                continue
            if jobs.renew(self.db, r.job, self.cfg.jobs_lease_s):
                r.renewed = now
                continue
            current = jobs.get(self.db, r.job.id)
            if current is not None and current.state == "running" and current.fence != r.job.fence:
                self._say(f"{r.spec.name}: lease of {r.job.subject} taken over by "
                          f"{current.lease_owner}; stopping its worker")
                self._kill(r)
                del self.running[r.job.id]
            # otherwise the worker has just recorded its result: _reap reports it

    def _reap(self) -> None:
        now = time.time()
        for jid, r in list(self.running.items()):
            timeout = self.opts.timeouts.get(r.spec.name)
            if r.proc.poll() is None:
                if timeout and now - r.started > timeout:
                    self._kill(r)
                    self._record_crash(r, f"timed out after {timeout:.0f} s")
                    del self.running[jid]
                continue
            del self.running[jid]
            code = r.proc.returncode
            after = jobs.get(self.db, jid)
            held = (after is not None and after.state == "running"
                    and after.lease_owner == r.job.lease_owner and after.fence == r.job.fence)
            if held:   # the worker died without recording anything
                how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
                self._record_crash(r, f"worker {how}")
                continue
            state = after.state if after else "?"
            self.finished += 1
            if state in ("failed", "dead"):
                self.failures += 1
            self.dirty = True
            if state == "done" and r.spec.name == "publish":
                state = self._product_state(r.job.subject)
            line = f"{r.spec.name}: {r.job.subject} -> {state} in {now - r.started:.1f} s"
            if state in ("failed", "dead") and after and after.last_error:
                line += f": {after.last_error}"
            elif state == "pending" and after and after.last_error:
                line = f"{r.spec.name}: {r.job.subject} deferred: {after.last_error}"
            self._say(line, level=-1 if state in ("failed", "dead", "held") else 0)

    def _product_state(self, pid: str) -> str:
        """A publish job is done also when QA held the product: say 'held', not 'done'."""
        prod = mosaics.get_product(self.db, pid)
        return "held" if prod is not None and prod["state"] == "held" else "done"

    def _record_crash(self, r: Running, what: str) -> None:
        tail = _tail(r.log, 15)
        try:
            state = jobs.fail(self.db, r.job, f"{what}; last log lines ({r.log}):\n{tail}",
                              base_s=self.cfg.jobs_backoff_base_s, max_s=self.cfg.jobs_backoff_max_s,
                              max_attempts=self.cfg.jobs_max_attempts)
        except jobs.LeaseLost:
            state = "lost"
        self.failures += 1
        self._say(f"{r.spec.name}: {r.job.subject} {what} -> {state}", level=-1)

    def _kill(self, r: Running, *, term_first: float = 0.0) -> None:
        """SIGKILL the worker's process group (after SIGTERM and ``term_first`` seconds)."""
        if term_first > 0:
            try:
                os.killpg(r.proc.pid, signal.SIGTERM)
                r.proc.wait(timeout=term_first)
                return
            except ProcessLookupError:
                return
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(r.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        r.proc.wait()

    def _abandon_all(self, why: str) -> None:
        for jid, r in list(self.running.items()):
            # workers remove their temporaries on SIGTERM; a second signal means at once
            self._kill(r, term_first=0.0 if self.hard_stop else TERM_WAIT_S)
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


def worker_python() -> list[str]:
    """The worker's interpreter line.  ``-P`` (Python 3.11+) keeps the working directory
    off the import path: a folder named ``contimg`` where watch was started (the parent
    of a checkout, a state directory called contimg) must not shadow the package."""
    return [sys.executable, "-P", "-m", "contimg.steps.worker"]


def _die_with_parent() -> None:
    """Linux: the worker gets SIGKILL when the watcher dies (kill -9 leaves no orphan
    still writing).  Elsewhere the lease expiry and fencing still keep results safe."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _tail(path: Path, n: int) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])
