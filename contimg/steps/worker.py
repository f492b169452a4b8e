"""Run one work order in this (child) process: `python -P -m contimg.steps.worker ORDER RESULT`.

The head claims the job, prepares the order and keeps the lease; this process only
runs ``work`` on files and writes its result (or its error) to RESULT for the head
to record.  It may not open the state database: an audit hook refuses any SQLite
connection, so a step that tried would fail loudly in every run, not only on a
host where the database is out of reach.  Each order gets a fresh process, so
CASA's memory leaks and crashes die with the job.
"""

from __future__ import annotations

import argparse
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

from contimg.steps.contract import StepError, WorkOrder


class DatabaseForbidden(RuntimeError):
    pass


def forbid_database() -> None:
    """From here on, opening any SQLite database in this process raises."""
    def hook(event: str, args) -> None:
        if event == "sqlite3.connect":
            raise DatabaseForbidden(f"work() may not open a database ({args[0] if args else '?'}): "
                                    "everything it needs is in its work order")
    sys.addaudithook(hook)


def worker_command(order_file: Path, result_file: Path, home: Path) -> list[str]:
    """The child's command line.  ``-P`` (Python 3.11+) keeps the working directory off
    the import path: a folder named ``contimg`` where the head was started (the parent of
    a checkout, a state directory called contimg) must not shadow the package."""
    return [sys.executable, "-P", "-m", "contimg.steps.worker", str(order_file),
            str(result_file), "--home", str(home)]


def write_order(obj, path: Path) -> None:
    """Pickle an order (or a result) to ``path`` atomically: a reader never sees half."""
    from contimg.paths import staged

    with staged(path) as tmp:
        tmp.write_bytes(pickle.dumps(obj))


def read_result(path: Path, returncode: int):
    """The Finished record of a child that exited with ``returncode``."""
    from contimg.executors.base import Finished

    try:
        data = pickle.loads(path.read_bytes())
    except (OSError, EOFError, pickle.UnpicklingError):
        how = f"killed by signal {-returncode}" if returncode < 0 else f"exited with code {returncode}"
        return Finished(error=f"worker {how}", crashed=True)
    if "result" in data:
        return Finished(result=data["result"])
    return Finished(error=data["error"], retryable=data["retryable"])


def run_isolated(order: WorkOrder, home: str, log: str) -> dict:
    """Run an order in a fresh child process here and return its result (a Dask task).

    Raises StepError with the child's message, or with how it died."""
    from contimg.executors.local import die_with_parent

    with tempfile.TemporaryDirectory(prefix="contimg-order-") as tmp:
        order_file, result_file = Path(tmp) / "order", Path(tmp) / "result"
        write_order(order, order_file)
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as fh:
            fh.write(f"--- {order.step} {order.subject} on {os.uname().nodename} "
                     f"(dask worker pid {os.getpid()})\n".encode())
            fh.flush()
            code = subprocess.call(worker_command(order_file, result_file, Path(home)), stdout=fh,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   preexec_fn=die_with_parent)
        done = read_result(result_file, code)
    if done.result is not None:
        return done.result
    raise StepError(done.error, retryable=done.retryable)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="contimg-worker")
    p.add_argument("order_file")
    p.add_argument("result_file")
    p.add_argument("--home", required=True, help="state directory (CASA's log and scratch space)")
    a = p.parse_args(argv)
    # SIGTERM (watch's stop after the grace period, systemd) unwinds like an exit, so
    # the step's cleanup (temporary outputs) runs.
    signal.signal(signal.SIGTERM, _terminate)
    forbid_database()
    order = pickle.loads(Path(a.order_file).read_bytes())
    print(f"work: {order.step} {order.subject} (pid {os.getpid()})", flush=True)
    try:
        if order.uses_casa:
            from contimg import casa

            casa.start(Path(a.home))
            os.chdir(casa.scratch_dir(Path(a.home)))  # every path in the order is absolute
        from contimg.steps.runner import describe, execute

        data = {"result": execute(order)}
    except Exception as exc:  # reported to the head, which records the failure
        traceback.print_exc()
        sys.stdout.flush()
        data = {"error": describe(exc), "retryable": getattr(exc, "retryable", True)}
    write_order(data, Path(a.result_file))
    print(f"work: {order.step} {order.subject} {'done' if 'result' in data else 'failed'}", flush=True)
    return 0


def _terminate(signum, _frame) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    raise SystemExit(main())
