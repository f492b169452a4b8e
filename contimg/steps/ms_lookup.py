"""The registered Measurement Set of an observation, checked on disk (C1, M2).

Calibrate and image both start from it; the database path is never trusted blindly,
and an MS removed by retention is told apart from one lost by accident.
"""

from __future__ import annotations

from pathlib import Path

from contimg.state import Database, measurement_sets
from contimg.steps.runner import StepError


def require_ms(db: Database, obs_id: str) -> dict:
    ms = measurement_sets.get_ms(db, obs_id)
    if ms is None:
        raise StepError(f"observation {obs_id} has no registered MS; convert it first",
                        retryable=False)
    if ms.get("pruned_at"):
        raise StepError(f"the MS of {obs_id} ({ms['path']}) was removed by 'contimg prune' "
                        "after its mosaics were published; its subband files are kept: "
                        f"rebuild it with 'contimg redo convert {obs_id}'", retryable=False)
    if not (Path(ms["path"]) / "table.dat").is_file():
        # permanent: retrying cannot bring it back, so watch must not burn attempts on it
        raise StepError(f"MS {ms['path']} of {obs_id} is missing on disk; nothing done. "
                        f"Rebuild it with 'contimg redo convert {obs_id}'", retryable=False)
    return ms
