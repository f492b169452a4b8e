"""Stokes I visibilities of one MS, read in row blocks and channel-averaged, in a child process.

The ducc backend grids from numpy arrays.  casatools (loaded in the imaging process)
hands columns back as complex128/float64 copies: ~100 s for a full observation's 1.4 GB
DATA column on a loaded 2-core machine.  python-casacore reads the native complex64 2-3x
faster, but must not share a process with CASA (docs/pitfalls.md), so a child process
(``python -m contimg.imaging.visread``) reads the MS in blocks of rows and reduces each
block at once to what imaging needs: Stokes I = weighted mean of the two parallel hands
(a flagged hand gets weight 0), averaged over ``chanbin`` adjacent channels with the
same weights; Stokes-I weight = the sum of the weights (1/sigma^2 of the mean).  It
writes .npy files into the private staging directory; the parent loads them (~260 MB
for a full observation: 21 M complex64 visibilities + float32 weights).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from .options import ImagingError

BLOCK_BYTES = 64 * 1024**2  # raw column bytes per read: bounds the child's transient memory
PARALLEL_HANDS = ((9, 12), (5, 8))  # (XX, YY), (RR, LL)
PARTS = ("uvw", "time", "ant1", "ant2", "vis", "weight", "freqs")


def _hands(corr_types) -> list[int]:
    """Indices of the parallel hands in the correlation axis."""
    corr = [int(c) for c in np.ravel(corr_types)]
    for a, b in PARALLEL_HANDS:
        if a in corr and b in corr:
            return [corr.index(a), corr.index(b)]
    if len(corr) == 1:
        return [0]
    raise ValueError(f"no parallel-hand correlations (XX/YY or RR/LL) among CORR_TYPE {corr}")


def reduce_block(data, flag, weight, hands: list[int], chanbin: int):
    """(rows, nchan, npol) block -> Stokes I (rows, nchan // chanbin) vis and weights."""
    num = den = None
    for p in hands:  # views per hand: no fancy-indexed copies of the block
        wp = weight[..., p].astype(np.float32)
        wp[flag[..., p]] = 0.0
        num = wp * data[..., p] if num is None else num + wp * data[..., p]
        den = wp if den is None else den + wp
    k, nchan = den.shape
    if chanbin > 1:
        num = num.reshape(k, nchan // chanbin, chanbin).sum(axis=-1)
        den = den.reshape(k, nchan // chanbin, chanbin).sum(axis=-1)
    np.divide(num, den, out=num, where=den > 0)
    num[den <= 0] = 0
    return num.astype(np.complex64, copy=False), den.astype(np.float32, copy=False)


def read_ms(ms: str, column: str, chanbin: int, out: Path) -> None:
    """The child's work (python-casacore): write the PARTS as .npy files into ``out``."""
    from casacore.tables import table

    colname = "CORRECTED_DATA" if column == "corrected" else "DATA"
    with table(f"{ms}::SPECTRAL_WINDOW", ack=False) as t:
        if t.nrows() != 1:
            raise ValueError(f"{t.nrows()} spectral windows; the ducc backend images one "
                             "(use image.backend = tclean)")
        freqs = np.asarray(t.getcol("CHAN_FREQ")[0], float)
    with table(f"{ms}::POLARIZATION", ack=False) as t:
        hands = _hands(t.getcol("CORR_TYPE")[0])
    if freqs.size % chanbin:
        raise ValueError(f"{freqs.size} channels do not divide into bins of {chanbin}")
    nout = freqs.size // chanbin
    with table(ms, ack=False) as t:
        a1, a2 = t.getcol("ANTENNA1"), t.getcol("ANTENNA2")
        keep = (a1 != a2) & ~t.getcol("FLAG_ROW")
        ant1, ant2 = a1[keep].astype(np.int32), a2[keep].astype(np.int32)
        uvw = np.asarray(t.getcol("UVW"), float)[keep]
        mjd_s = np.asarray(t.getcol("TIME"), float)[keep]
        wspec = "WEIGHT_SPECTRUM" in t.colnames() and t.iscelldefined("WEIGHT_SPECTRUM", 0)
        vis = np.lib.format.open_memmap(out / "vis.npy", "w+", np.complex64, (int(keep.sum()), nout))
        wgt = np.lib.format.open_memmap(out / "weight.npy", "w+", np.float32, (int(keep.sum()), nout))
        step = max(1, BLOCK_BYTES // (8 * freqs.size * max(hands + [1]) + 1))
        done = 0
        for start in range(0, t.nrows(), step):
            n = min(step, t.nrows() - start)
            sel = keep[start:start + n]
            k = int(sel.sum())
            if k == 0:
                continue
            data, flag = t.getcol(colname, start, n)[sel], t.getcol("FLAG", start, n)[sel]
            if wspec:
                w = t.getcol("WEIGHT_SPECTRUM", start, n)[sel]
            else:
                w = np.broadcast_to(t.getcol("WEIGHT", start, n)[sel][:, None, :], flag.shape)
            vis[done:done + k], wgt[done:done + k] = reduce_block(data, flag, w, hands, chanbin)
            done += k
        vis.flush()
        wgt.flush()
    np.save(out / "uvw.npy", uvw)
    np.save(out / "time.npy", mjd_s)
    np.save(out / "ant1.npy", ant1)
    np.save(out / "ant2.npy", ant2)
    np.save(out / "freqs.npy", freqs.reshape(nout, chanbin).mean(axis=1))


def read_stokes_i(ms: Path, column: str, chanbin: int, work: Path) -> dict:
    """Unflagged cross-correlations of ``ms`` as Stokes I, read by a child process into
    ``work``.  column: "corrected" or "data".  Returns uvw (nrow, 3) float64 metres,
    time (nrow,) float64 MJD seconds, ant1/ant2 (nrow,) int32 antenna indices (for
    self-calibration), vis (nrow, nchan_out) complex64, weight (nrow,
    nchan_out) float32 (0 = flagged), freqs (nchan_out,) Hz (means of the averaged
    channels)."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, "-m", "contimg.imaging.visread", str(ms), column, str(chanbin),
                           str(work)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise ImagingError(f"{ms}: cannot read the visibilities ({last})")
    parts = {p: np.load(work / f"{p}.npy") for p in PARTS}
    for p in PARTS:
        (work / f"{p}.npy").unlink()
    if not np.any(parts["weight"] > 0):
        raise ImagingError(f"{ms}: every cross-correlation visibility is flagged or has zero weight")
    return parts


def main(argv: list[str]) -> int:
    try:
        read_ms(argv[0], argv[1], int(argv[2]), Path(argv[3]))
    except Exception as exc:  # noqa: BLE001 - one line for the parent's ImagingError
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
