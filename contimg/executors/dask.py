"""Run orders on a Dask cluster (`distributed`): many hosts, one head.

Each order becomes one task that starts a fresh worker process on the Dask
worker's host (``run_isolated``), so CASA runs in a process of its own, one job
per Dask worker thread: start workers with ``--nthreads 1`` (LocalCluster here
does) to run one CASA job per worker process.  The head alone writes SQLite.

Faults: a Dask worker that dies mid-task is noticed by the scheduler, which runs
the task again elsewhere (``work`` is idempotent and stages its outputs, so the
second run is the only one that lands).  A scheduler that restarts loses its
tasks: the client reconnects and every order still ours is submitted again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contimg.executors.base import Finished
from contimg.steps.contract import StepError, WorkOrder

RECONNECT_S = 120.0  # how long a lost scheduler is waited for before jobs fail (and retry)


@dataclass
class DaskHandle:
    future: Any
    order: WorkOrder
    log: Path
    key: str
    submitted: int = 1
    lost_since: float | None = None


class DaskExecutor:
    name = "dask"

    def __init__(self, home: Path, *, scheduler: str | None = None, workers: int = 1):
        from distributed import Client

        self.home, self.scheduler, self.cluster = Path(home), scheduler, None
        if scheduler:
            self.client = Client(scheduler, timeout="30s", set_as_default=False)
        else:
            from distributed import LocalCluster

            self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                        dashboard_address=":0", silence_logs=logging.ERROR)
            self.client = Client(self.cluster, set_as_default=False)

    def submit(self, order: WorkOrder, log: Path, key: str) -> DaskHandle:
        return DaskHandle(self._submit(order, log, key), order, log, key)

    def _submit(self, order: WorkOrder, log: Path, key: str):
        from contimg.steps.worker import run_isolated

        self._ensure_client()
        return self.client.submit(run_isolated, order, str(self.home), str(log), key=key,
                                  pure=False, retries=0)

    def _ensure_client(self) -> None:
        """A client gives up reconnecting after its timeout and closes: connect anew (raises
        while the scheduler is still away)."""
        if self.client.status == "closed" and self.scheduler:
            from distributed import Client

            self.client = Client(self.scheduler, timeout="30s", set_as_default=False)

    def poll(self, handle: DaskHandle) -> Finished | None:
        fut = handle.future
        status = fut.status
        if status == "pending":
            handle.lost_since = None
            return None
        if status == "finished":
            try:
                return Finished(result=fut.result(timeout=60))
            except Exception as exc:  # the result could not be fetched: run it again
                return self._resubmit(handle, f"result lost ({exc})")
        if status == "error":
            exc = fut.exception(timeout=60)
            if isinstance(exc, StepError):
                return Finished(error=str(exc), retryable=exc.retryable)
            return Finished(error=f"dask: {type(exc).__name__}: {exc}", crashed=True)
        return self._resubmit(handle, f"task {status}")  # cancelled or lost (scheduler restart)

    def _resubmit(self, handle: DaskHandle, why: str) -> Finished | None:
        """Submit again while the scheduler is reachable; fail the job if it stays away."""
        now = time.time()
        handle.lost_since = handle.lost_since or now
        try:
            self._ensure_client()
            ready = self.client.status == "running"
        except (OSError, TimeoutError):
            ready = False
        if not ready:
            if now - handle.lost_since > RECONNECT_S:
                return Finished(error=f"dask scheduler {self.scheduler} unreachable for "
                                f"{RECONNECT_S:.0f} s ({why})", crashed=True)
            return None
        handle.submitted += 1
        handle.key = f"{handle.key.split('#')[0]}#{handle.submitted}"
        handle.future = self._submit(handle.order, handle.log, handle.key)
        handle.lost_since = None
        return None

    def cancel(self, handle: DaskHandle, term_s: float = 0.0) -> None:
        """Forget the task (a running one finishes on its worker; its result is not recorded:
        the job's fence has moved on)."""
        try:
            handle.future.cancel()
        except Exception:
            pass

    def describe(self) -> dict:
        info = self.client.scheduler_info()
        out = {"executor": self.name, "scheduler": self.client.scheduler.address,
               "workers": len(info.get("workers", {}))}
        if "dashboard" in info.get("services", {}):
            out["dashboard"] = self.client.dashboard_link
        return out

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
