"""`contimg prune`: remove Measurement Sets nobody needs any more.

One MS is about the size of its 16 subband files (2.3 GB): 650 GB a day.  Once
every mosaic that holds an observation is published, its MS is read by nothing
(mosaics are made from images), so after a grace period (``disk.keep_ms_h``,
default 24 h after publishing) it can go.  The raw subband files are never
touched.

Order matters for crash safety: the row is marked first, then the directory is
renamed aside and deleted.  A crash leaves either an MS still present and marked
(finished by the next run) or a renamed leftover (swept by the next run); the
database never calls a deleted MS present.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from contimg.config import Config
from contimg.paths import inside
from contimg.state import Database, measurement_sets

LEFTOVER = ".pruning-"
RECHECK_DAYS = 7  # marked rows re-checked on disk for this long (not all, every scan)


@dataclass
class PruneReport:
    removed: list[dict] = field(default_factory=list)    # observation_id, path, size_bytes
    refused: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    swept: list[str] = field(default_factory=list)       # leftovers of an interrupted prune
    dry_run: bool = False

    @property
    def freed_bytes(self) -> int:
        return sum(int(r.get("size_bytes") or 0) for r in self.removed)


def prune_ms(cfg: Config, db: Database, *, keep_h: float, dry_run: bool = False,
             limit: int | None = None, now: float | None = None) -> PruneReport:
    """Remove the MS of every observation whose mosaics were all published ``keep_h``
    hours ago or earlier (at most ``limit``: watch keeps each pass short); finish what
    an interrupted run left."""
    now = now or time.time()
    report = PruneReport(dry_run=dry_run)
    for row in measurement_sets.prunable(db, now - keep_h * 3600)[:limit]:
        path = Path(row["path"])
        if not inside(path, cfg.staging):
            report.refused.append((str(path), f"outside the staging root {cfg.staging}; "
                                   "not deleted (remove it by hand if it is really unneeded)"))
            continue
        if dry_run:
            report.removed.append(row)
            continue
        if measurement_sets.mark_pruned(db, row["observation_id"], now=now):
            _remove(path)
            report.removed.append(row)
    if not dry_run:
        report.swept = _finish_interrupted(cfg, db, since=now - RECHECK_DAYS * 86400)
    return report


def _remove(path: Path) -> None:
    """Rename aside, then delete: never a half-deleted MS under its registered name."""
    aside = path.parent / f".{path.name}{LEFTOVER}{os.getpid()}"
    try:
        os.rename(path, aside)
    except FileNotFoundError:  # already gone, or another prune got there first
        return
    shutil.rmtree(aside, ignore_errors=True)


def _finish_interrupted(cfg: Config, db: Database, since: float) -> list[str]:
    swept = []
    for row in measurement_sets.pruned(db, since=since):
        path = Path(row["path"])
        if path.exists() and inside(path, cfg.staging):
            _remove(path)
            swept.append(str(path))
    ms_root = cfg.staging / "ms"
    if ms_root.is_dir():
        for p in ms_root.glob(f".*{LEFTOVER}*"):
            shutil.rmtree(p, ignore_errors=True)
            swept.append(str(p))
    return swept
