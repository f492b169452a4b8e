"""Check and describe the subband files of one observation (no visibilities read).

Everything here reads only the small ``Header`` datasets with h5py, so a bad group
is rejected in well under a second, before any MS work starts, with an error that
names the offending file (requirements C1, I6).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

from .validate import InvalidFile, validate
from contimg.names import SUBBAND_TAIL

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
SB_RE = SUBBAND_TAIL  # the subband file name pattern is stated once, in contimg.names
TIME_TOL_DAYS = 1e-3 / 86400.0  # 1 ms: the 16 subbands share one time array


class ConvertError(Exception):
    """Conversion cannot proceed; the message names the file and what to do.

    ``path`` is set when one input file alone is to blame: the caller may then leave
    that file out and convert the others (see ``build_ms(min_files=...)``)."""

    def __init__(self, message: str, path: Path | None = None):
        super().__init__(message)
        self.path = Path(path) if path is not None else None


@dataclass
class SubbandHeader:
    """What one subband file says about itself (header only)."""

    path: Path
    sb: int
    times: np.ndarray  # (Nblts,) JD, integration centres
    ant1: np.ndarray
    ant2: np.ndarray
    freqs: np.ndarray  # (nchan,) Hz, as stored
    chan_width: float  # Hz, positive
    pols: np.ndarray
    int_time: np.ndarray  # (Nblts,) s
    dec_rad: float
    uvw: np.ndarray  # (Nblts, 3) float64 (stored float32 in real files)
    vis_shape: tuple
    ant_numbers: np.ndarray
    ant_names: list[str]
    ant_positions: np.ndarray  # ECEF offsets from the array centre, m
    ant_diameters: np.ndarray | None
    lat_lon_alt: tuple[float, float, float]  # deg, deg, m
    telescope_name: str
    instrument: str
    vis_units: str
    extra: dict

    @property
    def nchan(self) -> int:
        return self.freqs.size


def check_readable(files: Sequence[Path]) -> list[Path]:
    """C1: every input exists, is a readable regular file and starts like HDF5."""
    out = []
    for f in files:
        p = Path(f)
        if not p.exists():
            raise ConvertError(f"{p}: input file does not exist (moved or deleted?); "
                               "rescan the incoming directory and retry", p)
        if not p.is_file():
            raise ConvertError(f"{p}: input is not a regular file", p)
        if not os.access(p, os.R_OK):
            raise ConvertError(f"{p}: input is not readable (permissions); fix them and retry", p)
        try:
            with open(p, "rb") as fh:
                sig = fh.read(8)
        except OSError as exc:
            raise ConvertError(f"{p}: cannot read input ({exc}); check the disk and retry", p) from exc
        if sig != HDF5_SIGNATURE:
            raise ConvertError(f"{p}: not an HDF5 file (bad signature); quarantine it", p)
        out.append(p)
    if len({p.resolve() for p in out}) != len(out):
        raise ConvertError("the same input file is listed twice: " + ", ".join(map(str, out)))
    return out


def _s(x) -> str:
    if isinstance(x, np.ndarray):
        x = x[()] if x.shape == () else x.flat[0]
    return x.decode() if isinstance(x, bytes) else str(x)


def read_header(path: Path) -> SubbandHeader:
    """Read one file's header with h5py; any problem becomes a ConvertError naming it.

    The file passes ``validate`` first (types, shapes and values of every required
    dataset), so what is read below is known to be sane."""
    try:
        return _read_checked(path)
    except ConvertError as exc:
        raise ConvertError(str(exc), path) from None


def _read_checked(path: Path) -> SubbandHeader:
    m = SB_RE.search(path.name)
    if m is None:
        raise ConvertError(f"{path}: file name does not end in _sbNN.hdf5; cannot tell its subband")
    try:
        validate(path)
    except InvalidFile as exc:
        raise ConvertError(f"{path}: {exc}; quarantine it") from None
    try:
        with h5py.File(path, "r") as f:
            h = f["Header"]
            ek = h["extra_keywords"] if "extra_keywords" in h else {}
            extra = {k: ek[k][()] for k in ek}
            extra = {k: _s(v) if isinstance(v, bytes | np.bytes_) else v for k, v in extra.items()}
            if "phase_center_dec" not in extra:
                raise ConvertError(f"{path}: Header/extra_keywords/phase_center_dec missing; "
                                   "not a DSA-110 correlator file?")
            vis = f["Data/visdata"]
            _check_vis_dtype(path, vis.dtype)
            for name in ("flags", "nsamples"):
                if f[f"Data/{name}"].shape != vis.shape:
                    raise ConvertError(f"{path}: Data/{name} shape differs from Data/visdata")
            width = np.abs(np.ravel(h["channel_width"][()]).astype(float))
            hdr = SubbandHeader(
                path=path, sb=int(m.group(1)),
                times=h["time_array"][()], ant1=h["ant_1_array"][()], ant2=h["ant_2_array"][()],
                freqs=np.ravel(h["freq_array"][()]).astype(float), chan_width=float(width[0]),
                pols=np.atleast_1d(h["polarization_array"][()]),
                int_time=np.broadcast_to(h["integration_time"][()], h["time_array"].shape),
                dec_rad=float(extra["phase_center_dec"]),
                uvw=h["uvw_array"][()].astype(np.float64), vis_shape=tuple(vis.shape),
                ant_numbers=h["antenna_numbers"][()],
                ant_names=[_s(n) for n in np.atleast_1d(h["antenna_names"][()])],
                ant_positions=h["antenna_positions"][()].astype(float),
                ant_diameters=h["antenna_diameters"][()] if "antenna_diameters" in h else None,
                lat_lon_alt=(float(h["latitude"][()]), float(h["longitude"][()]),
                             float(h["altitude"][()])),
                telescope_name=_s(h["telescope_name"][()]),
                instrument=_s(h["instrument"][()]) if "instrument" in h else "DSA",
                vis_units=_s(h["vis_units"][()]) if "vis_units" in h else "uncalib",
                extra=extra,
            )
            if not np.all(np.isclose(width, width[0])):
                raise ConvertError(f"{path}: channel widths differ within the file")
    except ConvertError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ConvertError(f"{path}: unreadable or truncated UVH5 file ({exc}); "
                           "quarantine it (if still being copied, wait and retry)") from exc
    nblts = hdr.times.size
    nchan = hdr.freqs.size
    shape = hdr.vis_shape
    if len(shape) not in (3, 4) or shape[0] != nblts or shape[-1] != hdr.pols.size \
            or shape[-2] != nchan or (len(shape) == 4 and shape[1] != 1):
        raise ConvertError(f"{path}: Data/visdata shape {shape} does not match the header "
                           f"(Nblts={nblts}, Nfreqs={nchan}, Npols={hdr.pols.size})")
    if hdr.ant1.shape != (nblts,) or hdr.uvw.shape != (nblts, 3):
        raise ConvertError(f"{path}: baseline arrays do not match Nblts={nblts}")
    return hdr


def read_complex(dset, r0: int, r1: int) -> np.ndarray:
    """Rows r0:r1 of a visibility dataset as complex64.  UVH5 allows complex floats or an
    (r, i) compound of integers (integer correlators write that); h5py returns the
    latter as a structured array, which numpy will not cast to complex by itself."""
    block = dset[r0:r1]
    if block.dtype.names is None:
        return block
    out = np.empty(block.shape, np.complex64)
    out.real, out.imag = block["r"], block["i"]
    return out


def _check_vis_dtype(path: Path, dtype: np.dtype) -> None:
    names = dtype.names
    if names is None:
        ok = dtype.kind == "c"
    else:
        ok = set(names) == {"r", "i"} and dtype["r"] == dtype["i"] and dtype["r"].kind in "iuf"
    if not ok:
        raise ConvertError(f"{path}: Data/visdata has type {dtype}; UVH5 wants complex numbers "
                           "or an (r, i) pair of one numeric type: quarantine it")


def _digest(*arrays) -> str:
    h = hashlib.sha1()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def check_consistent(headers: list[SubbandHeader], nsubbands: int) -> None:
    """All files must describe the same observation; the odd one out is named.

    The reference is the majority value, so a single bad file is blamed even if it
    sorts first.
    """
    def odd_one(key, what: str, hint: str) -> None:
        keys = [key(h) for h in headers]
        ref = Counter(keys).most_common(1)[0][0]
        for h, k in zip(headers, keys, strict=True):
            if k != ref:
                raise ConvertError(f"{h.path}: {what} differ from the other subband files "
                                   f"of this observation; {hint}", h.path)

    regroup = "it belongs to another observation or is corrupt: quarantine it"

    def rows(h, ordered: bool) -> str:
        keys = np.stack([np.round(h.times / TIME_TOL_DAYS), h.ant1, h.ant2]).astype(np.int64)
        return _digest(keys if ordered else keys[:, np.lexsort(keys[::-1])])

    # the subbands are combined row by row, so every file must list its rows in one order
    unordered = [rows(h, False) for h in headers]
    common = Counter(unordered).most_common(1)[0][0]
    alike = [h for h, u in zip(headers, unordered, strict=True) if u == common]
    order = Counter(rows(h, True) for h in alike).most_common(1)[0][0]
    for h in alike:
        if rows(h, True) != order:
            raise ConvertError(f"{h.path}: rows are listed in another order than in the other "
                               "subband files (same times and baselines); the converter combines "
                               "subbands row by row: rewrite it in their order or quarantine it",
                               h.path)
    odd_one(lambda h: (h.times.size, _digest(np.round(h.times / TIME_TOL_DAYS))),
            "integration times", regroup)
    odd_one(lambda h: _digest(h.ant1, h.ant2), "antennas/baselines", regroup)
    odd_one(lambda h: _digest(h.ant_numbers, np.round(h.ant_positions, 3)),
            "antenna tables (numbers/positions)", regroup)
    odd_one(lambda h: round(h.dec_rad, 7), "pointing declinations (phase_center_dec)", regroup)
    odd_one(lambda h: (h.nchan, round(h.chan_width, 3)), "channel counts/widths", regroup)
    odd_one(lambda h: tuple(h.pols), "polarizations", regroup)
    seen: dict[int, Path] = {}
    for h in headers:
        if not 0 <= h.sb < nsubbands:
            raise ConvertError(f"{h.path}: subband {h.sb} outside 0..{nsubbands - 1}", h.path)
        if h.sb in seen:
            raise ConvertError(f"{h.path}: subband sb{h.sb:02d} given twice "
                               f"(also {seen[h.sb]}); keep one copy", h.path)
        seen[h.sb] = h.path


def frequency_grid(headers: list[SubbandHeader], nsubbands: int) -> tuple[np.ndarray, float]:
    """Ascending channel centres of all ``nsubbands`` subbands, present or not.

    The correlator lays the band out as one descending comb: subband sb holds comb
    channels sb*nchan .. sb*nchan+nchan-1 (sb00 highest).  Each file's frequencies
    predict the top of the comb; a file whose prediction disagrees carries the wrong
    subband number in its name (or the wrong frequencies) and is named.
    """
    nchan, width = headers[0].nchan, headers[0].chan_width
    tops = []
    for h in headers:
        desc = np.sort(h.freqs)[::-1]
        step = np.diff(desc)
        if nchan > 1 and not np.allclose(step, -width, rtol=1e-6, atol=1.0):
            raise ConvertError(f"{h.path}: channels are not evenly spaced by the channel width",
                               h.path)
        tops.append(desc + (h.sb * nchan + np.arange(nchan)) * width)
    tops = np.array(tops)
    ref = np.median(tops[:, 0])
    for h, t in zip(headers, tops, strict=True):
        if np.max(np.abs(t - ref)) > 0.01 * width:
            raise ConvertError(f"{h.path}: frequencies do not fit subband sb{h.sb:02d} of this "
                               "observation (wrong name or wrong frequency axis); quarantine it",
                               h.path)
    comb = ref - np.arange(nsubbands * nchan) * width
    return comb[::-1].copy(), width
