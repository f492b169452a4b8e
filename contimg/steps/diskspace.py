"""Do not start a job that would fill the staging filesystem.

A run that lasts months meets a full disk sooner or later, and a step that hits
ENOSPC half-way wastes its work and leaves the operator a traceback.  Steps that
write data-sized outputs therefore check first: the free space must cover the
job's estimated output plus a reserve (``disk.reserve_gb``).  A job that does not
fit is deferred (by the runner, ``defer_unless_room``), not failed (its attempts are unchanged): the reason shows in
`contimg status`, and it proceeds by itself once space is freed.
"""

from __future__ import annotations

from contimg.config import Config
from contimg.paths import free_bytes

GB = 1e9


def room_reason(cfg: Config, need_bytes: float, what: str) -> str | None:
    """None if ``need_bytes`` plus the reserve fit on staging; else why the job waits."""
    reserve = cfg.disk_reserve_gb * GB
    free = free_bytes(cfg.staging)
    if free >= need_bytes + reserve:
        return None
    return (f"not started: {cfg.staging} has {free / GB:.1f} GB free, and {what} needs about "
            f"{need_bytes / GB:.1f} GB plus the {reserve / GB:.1f} GB reserve (disk.reserve_gb); "
            "free space there (contimg prune, publish) and it proceeds by itself "
            f"(rechecked every {cfg.disk_recheck_s:.0f} s)")
