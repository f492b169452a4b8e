"""Run each order in a child process on this host (the default executor)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from contimg.executors.base import Finished
from contimg.steps.contract import WorkOrder
from contimg.steps.worker import read_result, worker_command, write_order


@dataclass
class LocalHandle:
    proc: subprocess.Popen
    order_file: Path
    result_file: Path


class LocalExecutor:
    name = "local"

    def __init__(self, home: Path):
        self.home = Path(home)
        self.spool = self.home / "run" / "orders"
        self.spool.mkdir(parents=True, exist_ok=True)

    def submit(self, order: WorkOrder, log: Path, key: str) -> LocalHandle:
        order_file = self.spool / f"{key}.order"
        result_file = self.spool / f"{key}.result"
        result_file.unlink(missing_ok=True)
        write_order(order, order_file)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as fh:
            fh.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {order.step} {order.subject} "
                     f"({key}, local)\n".encode())
            proc = subprocess.Popen(worker_command(order_file, result_file, self.home),
                                    stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True,  # Ctrl-C reaches only the watcher
                                    preexec_fn=die_with_parent)
        return LocalHandle(proc, order_file, result_file)

    def pid(self, handle: LocalHandle) -> int:
        return handle.proc.pid

    def poll(self, handle: LocalHandle) -> Finished | None:
        code = handle.proc.poll()
        if code is None:
            return None
        try:
            return read_result(handle.result_file, code)
        finally:
            handle.order_file.unlink(missing_ok=True)
            handle.result_file.unlink(missing_ok=True)

    def cancel(self, handle: LocalHandle, term_s: float = 0.0) -> None:
        """SIGKILL the child's process group (after SIGTERM and ``term_s`` seconds)."""
        stop_process_group(handle.proc, term_s)
        handle.order_file.unlink(missing_ok=True)
        handle.result_file.unlink(missing_ok=True)

    def describe(self) -> dict:
        return {"executor": self.name}

    def close(self) -> None:
        pass


def stop_process_group(proc: subprocess.Popen, term_s: float = 0.0) -> None:
    if term_s > 0:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=term_s)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _find_prctl():
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _find_prctl()  # looked up here, not after fork (a threaded parent, e.g. a Dask worker)


def die_with_parent() -> None:
    """Linux: the worker gets SIGKILL when its parent dies (kill -9 of the watcher or of a
    Dask worker leaves no orphan still writing).  Elsewhere lease expiry and fencing still
    keep results safe."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

