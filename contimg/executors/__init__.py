"""Where a step's ``work`` runs: child processes on this host, or a Dask cluster.

The head (`contimg watch`) claims, prepares and records; an executor only runs
``work(order)`` and hands back its result.  Both executors run each order in a fresh
child process (``contimg.steps.worker``), so CASA's leaks and crashes die with the
job, and that process may not open the state database at all.
"""

from contimg.executors.base import Executor, Finished, make_executor

__all__ = ["Executor", "Finished", "make_executor"]
