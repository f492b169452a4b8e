"""Apply solved tables to an observation with CASA applycal (K3, K4).

applycal writes CORRECTED_DATA from DATA (never from CORRECTED_DATA) and, with
calwt, derives WEIGHT from SIGMA (never from WEIGHT), so running it twice gives
the same result as once: tests/test_calib_apply.py proves it.  The pipeline step
still skips an MS that is already applied (K4); this only makes a re-run after a
crash harmless.
"""

from __future__ import annotations

from pathlib import Path

from contimg import casa

from .tables import check_tables
from .types import CalibrationError


def apply(ms: Path, tables: list[Path], *, calwt: bool = True) -> dict:
    """Check every table on disk (CalTableMissing, retryable), then applycal DATA -> CORRECTED_DATA.

    Table order is the solve order (bandpass first, then gain).  Bandpass tables
    (one solution) are applied 'nearest' in time, gains 'linear' (a calibrator
    solution is carried to observations outside its time range unchanged).
    calwt=True: weights become 1/SIGMA^2 scaled by the gain amplitudes, so
    antennas with more gain (noisier calibrated data) weigh less.
    flagbackup=False: the pipeline keeps no flag versions; applymode 'calflag'
    flags data whose solutions are flagged.  Returns the flagged fraction after
    applying and what was applied.  Needs casa.start().
    """
    ms = Path(ms)
    paths = [Path(t) for t in tables]
    check_tables(paths)
    if not (ms / "table.dat").is_file():
        raise CalibrationError(f"{ms}: Measurement Set not found (no table.dat)")
    tasks = casa.tasks()
    interp = ["nearest" if p.suffix == ".bcal" else "linear" for p in paths]
    try:
        tasks.applycal(vis=str(ms), gaintable=[str(p) for p in paths], interp=interp,
                       calwt=[calwt] * len(paths), flagbackup=False, applymode="calflag",
                       parang=False)
    except Exception as exc:  # CASA raises assorted exception types
        raise CalibrationError(f"CASA applycal failed on {ms}: {exc}") from exc
    tb = casa.tools().table()
    tb.open(str(ms))
    try:
        if "CORRECTED_DATA" not in tb.colnames():
            raise CalibrationError(f"CASA applycal wrote no CORRECTED_DATA in {ms}; see the CASA log")
    finally:
        tb.close()
    summary = tasks.flagdata(vis=str(ms), mode="summary", flagbackup=False)
    total = float(summary.get("total", 0.0)) or 1.0
    return {"flagged_fraction": float(summary.get("flagged", 0.0)) / total,
            "tables": [str(p) for p in paths], "interp": interp, "calwt": calwt}
