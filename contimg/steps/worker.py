"""Run one claimed job in this (child) process: `python -m contimg.steps.worker ...`.

`watch` claims a job, keeps its lease alive, and hands it to a child process so
that CASA's memory leaks and crashes cannot take the watcher down.  The child
re-reads the job and refuses to run unless the owner and fence still match, so
a stale hand-off can never do work the database no longer assigns to it.
"""

from __future__ import annotations

import argparse
import signal
import sys

from contimg.config import load_config
from contimg.state import Database, jobs
from contimg.steps.registry import BY_NAME
from contimg.steps.runner import StepContext, run_step_body

EXIT_LEASE_GONE = 3


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="contimg-worker")
    p.add_argument("step")
    p.add_argument("job_id", type=int)
    p.add_argument("owner")
    p.add_argument("fence", type=int)
    p.add_argument("--home", required=True)
    p.add_argument("--config", default=None)
    a = p.parse_args(argv)
    # SIGTERM (watch's stop after the grace period, systemd) unwinds like an exit, so
    # the step's cleanup (temporary outputs) runs; the watcher then releases the job.
    signal.signal(signal.SIGTERM, _terminate)
    cfg = load_config(home=a.home, config_file=a.config)
    spec = BY_NAME[a.step]
    db = Database(cfg.db_path)
    job = jobs.get(db, a.job_id)
    if job is None or job.lease_owner != a.owner or job.fence != a.fence or job.state != "running":
        print(f"job {a.job_id} is no longer ours (owner/fence changed); not running it",
              file=sys.stderr)
        return EXIT_LEASE_GONE
    if spec.uses_casa:
        import os

        from contimg import casa

        casa.start(cfg.home)
        os.chdir(casa.scratch_dir(cfg.home))  # every path from config and database is absolute
    outcome = run_step_body(StepContext(cfg, db, a.owner), job, spec.do_one())
    print(f"{outcome.subject}\t{outcome.status}\t{outcome.message}", flush=True)
    return 1 if outcome.failed else 0


def _terminate(signum, _frame) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    raise SystemExit(main())
