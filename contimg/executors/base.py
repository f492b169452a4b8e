"""The executor seam: submit an order, poll for its end, cancel it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from contimg.steps.contract import WorkOrder


@dataclass
class Finished:
    """How a submitted order ended.

    ``result`` is work's dict when it succeeded; else ``error`` says why, ``retryable``
    whether trying again can help, and ``crashed`` that the process died without a word
    (killed, out of memory): the caller records it with the log's last lines."""

    result: dict | None = None
    error: str | None = None
    retryable: bool = True
    crashed: bool = False


class Executor(Protocol):
    name: str

    def submit(self, order: WorkOrder, log: Path, key: str) -> Any: ...

    def poll(self, handle: Any) -> Finished | None: ...

    def cancel(self, handle: Any, term_s: float = 0.0) -> None: ...

    def describe(self) -> dict: ...

    def close(self) -> None: ...


def make_executor(kind: str, *, home: Path, scheduler: str | None = None,
                  workers: int = 1) -> Executor:
    """``local`` (child processes here) or ``dask`` (``scheduler`` address; none: a
    LocalCluster of ``workers`` single-threaded worker processes)."""
    if kind == "local":
        from contimg.executors.local import LocalExecutor

        return LocalExecutor(home)
    if kind == "dask":
        from contimg.executors.dask import DaskExecutor

        return DaskExecutor(home, scheduler=scheduler, workers=workers)
    raise ValueError(f"unknown executor {kind!r}: use local or dask")
