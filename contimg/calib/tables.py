"""Calibration tables on disk: completeness checks, atomic staging, quality figures.

A table is a directory; CASA writes ``table.dat`` (the description) and the
column files ``table.f0``, ``table.f1``, ... plus subtables (ANTENNA,
SPECTRAL_WINDOW, ...).  ``check_tables`` insists on those before anything is
applied (K3).  Solving writes into a private staging directory beside the set
(contimg.paths.staging_area) and renames each finished, verified table into
place, so a final path never holds a partial table.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .types import CalTableMissing
from contimg import paths

REQUIRED_SUBTABLES = ("ANTENNA", "SPECTRAL_WINDOW")


def check_tables(paths: Iterable[Path]) -> None:
    """Raise CalTableMissing (naming the table and what is wrong) unless every path is a
    complete CASA table: a directory with table.dat, table.f0 (non-empty files) and
    its ANTENNA and SPECTRAL_WINDOW subtables."""
    paths = list(paths)
    if not paths:
        raise CalTableMissing(Path("<none>"), "no calibration tables were given")
    for p in map(Path, paths):
        if not p.exists():
            raise CalTableMissing(p, "does not exist")
        if not p.is_dir():
            raise CalTableMissing(p, "is not a directory")
        for name in ("table.dat", "table.f0"):
            f = p / name
            if not f.is_file() or f.stat().st_size == 0:
                raise CalTableMissing(p, f"{name} missing or empty")
        for sub in REQUIRED_SUBTABLES:
            if not (p / sub / "table.dat").is_file():
                raise CalTableMissing(p, f"subtable {sub} missing")


def install(tmp_table: Path, final: Path) -> bool:
    """Rename a verified table into place (contimg.paths.install: an existing table is
    moved aside first and removed after, never a partial table at ``final``).  True if
    replaced."""
    check_tables([tmp_table])
    return paths.install(tmp_table, final)


def table_quality(tb, path: Path, antennas=None) -> dict:
    """n solutions, flagged fraction and median SNR of unflagged solutions of a caltable.

    ``antennas``: IDs that have data; CASA writes a (flagged) row for every
    ANTENNA-table entry, and stations without data must not count as failures.
    ``tb`` is a casatools table tool (CASA tables are read with CASA).
    """
    tb.open(str(path))
    try:
        nrow = tb.nrows()
        if nrow == 0:
            return {"n_solutions": 0, "flagged_fraction": 1.0, "median_snr": 0.0, "rows": 0}
        flag = np.asarray(tb.getcol("FLAG"), bool)  # (npol, nchan, nrow)
        snr = np.asarray(tb.getcol("SNR"), float)
        refs = np.asarray(tb.getcol("ANTENNA2"))
        if antennas is not None:
            rows = np.isin(np.asarray(tb.getcol("ANTENNA1")), np.asarray(list(antennas)))
            flag, snr, nrow, refs = flag[..., rows], snr[..., rows], int(rows.sum()), refs[rows]
    finally:
        tb.close()
    if flag.size == 0:
        return {"n_solutions": 0, "flagged_fraction": 1.0, "median_snr": 0.0, "rows": 0}
    good = ~flag
    return {
        "n_solutions": int(flag.size),
        "flagged_fraction": float(flag.mean()),
        "median_snr": float(np.median(snr[good])) if good.any() else 0.0,
        "rows": int(nrow),
        "refant_ids": sorted({int(r) for r in refs[good.any(axis=(0, 1))]}),  # CASA stores it in ANTENNA2
    }


def read_solutions(tb, path: Path) -> dict:
    """CPARAM, FLAG, ANTENNA1, TIME of a caltable as numpy arrays (rows first)."""
    tb.open(str(path))
    try:
        out = {
            "cparam": np.moveaxis(np.asarray(tb.getcol("CPARAM")), -1, 0),  # (nrow, npol, nchan)
            "flag": np.moveaxis(np.asarray(tb.getcol("FLAG"), bool), -1, 0),
            "antenna1": np.asarray(tb.getcol("ANTENNA1")),
            "time": np.asarray(tb.getcol("TIME")),
        }
    finally:
        tb.close()
    return out


def write_table(ms: Path, path: Path, kind: str, cparam: np.ndarray, flag: np.ndarray, snr: np.ndarray,
                refant_id: int, times_s: np.ndarray, interval_s: np.ndarray) -> None:
    """Write numpy solutions as a CASA caltable ("B Jones" or "G Jones", from the MS's subtables).

    ``cparam`` (ntime, nant, npol, nchan) over every ANTENNA-table entry (CASA writes a
    row for each; antennas without data are flagged).  The table is created by CASA
    itself (calibrater.createcaltable), so applycal reads it like one it solved.
    """
    from contimg import casa

    cb = casa.tools().calibrater()
    cb.open(str(ms), compress=False, addcorr=False, addmodel=False)
    try:
        cb.createcaltable(str(path), "Complex", kind, kind != "B Jones")
    finally:
        cb.close()
    nt, na, npol, nchan = cparam.shape
    tb = casa.tools().table()
    tb.open(str(ms))
    try:
        scan = int(tb.getcell("SCAN_NUMBER", 0))
    finally:
        tb.close()
    n = nt * na
    tb.open(str(path), nomodify=False)
    try:
        tb.addrows(n)
        tb.putcol("TIME", np.repeat(np.asarray(times_s, float), na))
        tb.putcol("INTERVAL", np.repeat(np.asarray(interval_s, float), na))
        tb.putcol("FIELD_ID", np.zeros(n, np.int32))
        tb.putcol("SPECTRAL_WINDOW_ID", np.zeros(n, np.int32))
        tb.putcol("ANTENNA1", np.tile(np.arange(na, dtype=np.int32), nt))
        tb.putcol("ANTENNA2", np.full(n, refant_id, np.int32))
        tb.putcol("SCAN_NUMBER", np.full(n, scan, np.int32))
        tb.putcol("OBSERVATION_ID", np.zeros(n, np.int32))
        rows_first = lambda a: np.ascontiguousarray(np.moveaxis(a.reshape(n, npol, nchan), 0, -1))  # noqa: E731
        tb.putcol("CPARAM", rows_first(cparam.astype(np.complex64)))
        tb.putcol("PARAMERR", rows_first(np.zeros(cparam.shape, np.float32)))
        tb.putcol("FLAG", rows_first(flag.astype(bool)))
        tb.putcol("SNR", rows_first(snr.astype(np.float32)))
        tb.putcol("WEIGHT", rows_first(np.ones(cparam.shape, np.float32)))
        tb.flush()
    finally:
        tb.close()
