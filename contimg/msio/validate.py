"""Is this file a DSA-110 subband file we can convert?  Every required dataset, checked.

One gate used by ingest (before a file is registered) and again by convert (a file
can change after registration).  Shapes and types are checked from the HDF5
metadata *before* anything is read, so a hostile header (a billion-row time array,
a string where a number belongs) costs nothing; then the values are checked for
what would otherwise fail later or silently corrupt the MS: non-finite or absurd
numbers, antennas missing from the antenna table, duplicate rows, inconsistent
counts, frequencies outside the DSA-110 band, another telescope.  Visibilities are
not read here (only the last row, to catch truncation); NaN/Inf visibilities are
flagged while converting (see docs/data-format.md).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from contimg.astro import site

# Correlator arithmetic (docs/data-format.md): fine channels of 250/8192 MHz below 1530 MHz;
# subband sb spans fine channels 1024 + 384 sb ... + 383 (sb00 highest).
FINE_HZ = 250e6 / 8192
TOP_HZ = 1530e6
SUBBAND_HZ = 384 * FINE_HZ  # 11.72 MHz
BAND_HZ = (TOP_HZ - (1024 + 16 * 384) * FINE_HZ, TOP_HZ - 1024 * FINE_HZ)  # 1311.25-1498.75 MHz
# Limits far above the real instrument (117 stations, 111,744 rows, 48 channels, 2 pols)
# and far below what would exhaust memory when read: 2M rows (18x the real file), and
# 384 channels, the correlator's own fine resolution of one subband.
MAX_ROWS = 1 << 21
MAX_CHANNELS = 384
MAX_ANTENNA_NUMBER = 2047  # the MS ANTENNA table has one row per number up to the largest
MAX_BASELINE_M = 1e4  # the longest DSA-110 baseline is 2.6 km
JD_RANGE = (2440000.5, 2500000.5)  # 1968-2132: anything else is not a time stamp
# telescope_name values that mean DSA-110 at OVRO (the correlator writes OVRO_MMA)
TELESCOPE_NAMES = frozenset({"OVRO_MMA", "OVRO-MMA", "DSA-110", "DSA_110", "DSA110", "DSA", "OVRO-DSA",
                             "OVRO_DSA"})
SITE_TOL_DEG = 0.05  # ~5 km: header latitude/longitude must be the DSA-110 site
POL_CODES = frozenset({-8, -7, -6, -5, -4, -3, -2, -1, 1, 2, 3, 4})


class InvalidFile(ValueError):
    """The file cannot be used; the message says why (the caller names the file)."""


@dataclass(frozen=True)
class FileSummary:
    subband: int  # from the frequencies (the name must agree)
    start_mjd: float  # start of the first integration (time_array holds centres)
    dec_deg: float
    nchan: int
    telescope: str
    fingerprint: str  # antenna pairs, number of times and rows


def subband_from_frequencies(freqs_hz: np.ndarray) -> int:
    centre_fine = (TOP_HZ - float(np.mean(freqs_hz))) / FINE_HZ
    return int(round((centre_fine - 1024 - 191.5) / 384))


def _text(x) -> str:
    if isinstance(x, np.ndarray):
        x = x[()] if x.shape == () else x.flat[0]
    return x.decode("utf-8", "replace") if isinstance(x, bytes | np.bytes_) else str(x)


def local_dataset(group: h5py.Group, name: str, where: str) -> h5py.Dataset:
    """A dataset stored in this file: an external link, external raw storage or a virtual
    dataset would make the pipeline read other files (the symlink policy, inside HDF5)."""
    link = group.get(name, getlink=True)
    if link is None:
        raise InvalidFile(f"{where}/{name} is missing")
    if isinstance(link, h5py.ExternalLink):
        raise InvalidFile(f"{where}/{name} is a link to another file ({link.filename}): refused")
    try:
        d = group[name]
    except (KeyError, OSError):
        raise InvalidFile(f"{where}/{name} is a dangling link") from None
    if not isinstance(d, h5py.Dataset):
        raise InvalidFile(f"{where}/{name} is not a dataset")
    if d.external or d.is_virtual:
        raise InvalidFile(f"{where}/{name} keeps its data in other files: refused")
    return d


class _Header:
    """Typed access to Header datasets: kind and shape checked before reading."""

    def __init__(self, group: h5py.Group, where: str = "Header"):
        self.g, self.where = group, where

    def dset(self, name: str) -> h5py.Dataset:
        return local_dataset(self.g, name, self.where)

    def array(self, name: str, kinds: str, shapes: tuple) -> np.ndarray:
        d = self.dset(name)
        what = {"f": "floating-point", "iu": "integer", "fiu": "numeric", "SOU": "text"}.get(kinds, kinds)
        if d.dtype.kind not in kinds or d.dtype.names is not None:
            raise InvalidFile(f"{self.where}/{name} has type {d.dtype}, expected {what}")
        if d.shape not in shapes:
            raise InvalidFile(f"{self.where}/{name} has shape {d.shape}, expected "
                              + " or ".join(str(s) for s in shapes))
        a = d[()]
        if kinds in ("f", "fiu") and not np.all(np.isfinite(a)):
            raise InvalidFile(f"{self.where}/{name} holds NaN or infinite values")
        return np.asarray(a)

    def count(self, name: str, lo: int, hi: int, required: bool = True) -> int | None:
        if name not in self.g and not required:
            return None
        a = self.array(name, "iu", ((), (1,)))
        v = int(a.ravel()[0])
        if not lo <= v <= hi:
            raise InvalidFile(f"{self.where}/{name} = {v} is outside {lo}..{hi}")
        return v

    def number(self, name: str, lo: float, hi: float) -> float:
        v = float(self.array(name, "fiu", ((), (1,))).ravel()[0])
        if not lo <= v <= hi:
            raise InvalidFile(f"{self.where}/{name} = {v:g} is outside {lo:g}..{hi:g}")
        return v


def validate(path: Path) -> FileSummary:
    """Check a subband file's structure and header values; InvalidFile says what is wrong."""
    try:
        with h5py.File(path, "r") as f:
            for grp in ("Header", "Data"):
                if not isinstance(f.get(grp), h5py.Group):
                    raise InvalidFile(f"not a UVH5 file (no {grp} group)")
            summary = _check_header(_Header(f["Header"]), f["Data"])
    except InvalidFile:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, MemoryError) as exc:
        raise InvalidFile(f"unreadable or truncated HDF5 ({type(exc).__name__}: {exc})") from None
    return summary


def _check_header(h: _Header, data: h5py.Group) -> FileSummary:
    nblts = h.count("Nblts", 1, MAX_ROWS)
    nfreqs = h.count("Nfreqs", 1, MAX_CHANNELS)
    npols = h.count("Npols", 1, 4)
    ntimes_hdr = h.count("Ntimes", 1, MAX_ROWS, required=False)
    nbls_hdr = h.count("Nbls", 1, MAX_ROWS, required=False)
    h.count("Nspws", 1, 1, required=False)
    rows = ((nblts,),)
    times = h.array("time_array", "f", rows)
    if times.min() < JD_RANGE[0] or times.max() > JD_RANGE[1]:
        raise InvalidFile(f"Header/time_array {times.min():.6f}..{times.max():.6f} is not a "
                          "Julian Date of this era")
    a1 = h.array("ant_1_array", "iu", rows).astype(np.int64)
    a2 = h.array("ant_2_array", "iu", rows).astype(np.int64)
    uvw = h.array("uvw_array", "f", ((nblts, 3),))
    if np.abs(uvw).max() > MAX_BASELINE_M:
        raise InvalidFile(f"Header/uvw_array reaches {np.abs(uvw).max():.3g} m, longer than any "
                          "DSA-110 baseline")
    tint = h.array("integration_time", "fiu", ((), (1,), (nblts,)))
    if tint.min() <= 0 or tint.max() > 3600:
        raise InvalidFile(f"Header/integration_time {tint.min():g}..{tint.max():g} s is not "
                          "a plausible integration time")
    freqs = h.array("freq_array", "f", ((nfreqs,), (1, nfreqs))).ravel().astype(np.float64)
    width = np.abs(h.array("channel_width", "f", ((), (1,), (nfreqs,), (1, nfreqs)))
                   .astype(np.float64))
    pols = h.array("polarization_array", "iu", ((npols,),)).astype(int)
    _check_antennas(h, a1, a2)
    _check_rows(times, a1, a2, ntimes_hdr, nbls_hdr)
    _check_frequencies(freqs, width)
    if not set(pols.tolist()) <= POL_CODES or len(set(pols.tolist())) != npols:
        raise InvalidFile(f"Header/polarization_array {pols.tolist()} is not a set of valid "
                          "polarization codes")
    telescope = _check_site(h)
    dec = _check_pointing(h)
    _check_data(data, nblts, nfreqs, npols)
    m = MAX_ANTENNA_NUMBER + 1  # ordered pairs as one integer: a 1-D unique, 20x faster
    keys = np.unique(a1 * m + a2)  # than unique(axis=1), same order (numbers checked >= 0)
    pairs = np.stack([keys // m, keys % m])
    ntimes = np.unique(times).size
    digest = f"{hashlib.sha1(pairs.tobytes()).hexdigest()[:16]}:{ntimes}:{nblts}"
    half_days = float(np.ravel(tint)[0]) / 2 / 86400
    return FileSummary(subband=subband_from_frequencies(freqs),
                       start_mjd=float(times.min() - half_days - 2400000.5),
                       dec_deg=float(np.degrees(dec)), nchan=int(nfreqs), telescope=telescope,
                       fingerprint=digest)


def _check_antennas(h: _Header, a1: np.ndarray, a2: np.ndarray) -> None:
    numbers = h.dset("antenna_numbers")
    nants = numbers.shape[0] if numbers.ndim == 1 else -1
    if not 1 <= nants <= MAX_ANTENNA_NUMBER + 1:
        raise InvalidFile(f"Header/antenna_numbers has shape {numbers.shape}")
    nums = h.array("antenna_numbers", "iu", ((nants,),)).astype(np.int64)
    if nums.min() < 0 or nums.max() > MAX_ANTENNA_NUMBER or np.unique(nums).size != nants:
        raise InvalidFile(f"Header/antenna_numbers must be distinct numbers 0..{MAX_ANTENNA_NUMBER}"
                          f" (found {nums.min()}..{nums.max()}, {np.unique(nums).size} distinct"
                          f" of {nants})")
    h.array("antenna_names", "SOU", ((nants,),))
    pos = h.array("antenna_positions", "f", ((nants, 3),))
    if np.abs(pos).max() > MAX_BASELINE_M:
        raise InvalidFile("Header/antenna_positions lie more than 10 km from the array centre")
    if "antenna_diameters" in h.g:
        h.array("antenna_diameters", "f", ((nants,), (), (1,)))
    used = np.unique(np.concatenate([a1, a2]))
    if used.min() < 0:
        raise InvalidFile(f"negative antenna numbers in ant_1_array/ant_2_array "
                          f"({used[used < 0][:5].tolist()})")
    unknown = np.setdiff1d(used, nums)
    if unknown.size:
        raise InvalidFile(f"antennas {unknown[:8].tolist()} in ant_1_array/ant_2_array are not "
                          "in Header/antenna_numbers")


def _check_rows(times, a1, a2, ntimes_hdr, nbls_hdr) -> None:
    ut, ti = np.unique(times, return_inverse=True)
    ub, bi = np.unique(np.minimum(a1, a2) * (MAX_ANTENNA_NUMBER + 1) + np.maximum(a1, a2),
                       return_inverse=True)
    if np.unique(ti.astype(np.int64) * ub.size + bi).size != times.size:
        raise InvalidFile("the same baseline appears twice at one time (duplicate rows)")
    if ntimes_hdr is not None and ntimes_hdr != ut.size:
        raise InvalidFile(f"Header/Ntimes = {ntimes_hdr} but time_array holds {ut.size} times")
    if nbls_hdr is not None and nbls_hdr != ub.size:
        raise InvalidFile(f"Header/Nbls = {nbls_hdr} but the arrays hold {ub.size} baselines")
    if ut.size * ub.size != times.size:
        raise InvalidFile(f"{times.size} rows are not {ut.size} times x {ub.size} baselines "
                          "(some baselines missing at some times)")


def _check_frequencies(freqs: np.ndarray, width: np.ndarray) -> None:
    w = float(width.ravel()[0])
    if w <= 0 or not np.allclose(width, w, rtol=1e-6):
        raise InvalidFile(f"Header/channel_width {width.ravel()[:3].tolist()} must be one "
                          "positive width")
    lo, hi = BAND_HZ
    if freqs.min() < lo - w or freqs.max() > hi + w:
        raise InvalidFile(f"frequencies {freqs.min() / 1e6:.3f}-{freqs.max() / 1e6:.3f} MHz lie "
                          f"outside the DSA-110 band ({lo / 1e6:.2f}-{hi / 1e6:.2f} MHz)")
    if freqs.size * w > SUBBAND_HZ * 1.001:
        raise InvalidFile(f"{freqs.size} channels of {w / 1e3:.3f} kHz span more than one "
                          "subband (11.72 MHz)")
    if freqs.size > 1 and not np.allclose(np.abs(np.diff(freqs)), w, rtol=1e-6, atol=1.0):
        raise InvalidFile("channels are not evenly spaced by the channel width")


def _check_site(h: _Header) -> str:
    name = _text(h.array("telescope_name", "SOU", ((), (1,))))
    if name.strip().upper() not in TELESCOPE_NAMES:
        raise InvalidFile(f"telescope_name is {name[:40]!r}, not DSA-110 (OVRO_MMA): data of "
                          "another telescope")
    lat = h.number("latitude", -90, 90)
    lon = h.number("longitude", -360, 360)
    h.number("altitude", -1e4, 1e4)
    d_lat = abs(lat - np.degrees(site.LATITUDE_RAD))
    d_lon = abs((lon - np.degrees(site.LONGITUDE_RAD) + 180) % 360 - 180)
    if max(d_lat, d_lon) > SITE_TOL_DEG:
        raise InvalidFile(f"telescope location {lat:.4f}, {lon:.4f} deg is not the DSA-110 site "
                          f"({np.degrees(site.LATITUDE_RAD):.4f}, "
                          f"{np.degrees(site.LONGITUDE_RAD):.4f})")
    return name


def _check_pointing(h: _Header) -> float:
    if not isinstance(h.g.get("extra_keywords"), h5py.Group):
        raise InvalidFile("Header/extra_keywords is missing (pointing declination)")
    ek = _Header(h.g["extra_keywords"], "Header/extra_keywords")
    return ek.number("phase_center_dec", -np.pi / 2, np.pi / 2)


def _check_data(d: h5py.Group, nblts: int, nfreqs: int, npols: int) -> None:
    shapes = ((nblts, 1, nfreqs, npols), (nblts, nfreqs, npols))
    for key in ("visdata", "flags", "nsamples"):
        ds = local_dataset(d, key, "Data")
        if ds.shape not in shapes:
            raise InvalidFile(f"Data/{key} has shape {ds.shape}, expected {shapes[0]}")
    vt = d["visdata"].dtype
    if vt.names is None:
        ok = vt.kind == "c"
    else:
        ok = set(vt.names) == {"r", "i"} and vt["r"] == vt["i"] and vt["r"].kind in "iuf"
    if not ok:
        raise InvalidFile(f"Data/visdata has type {vt}; UVH5 wants complex numbers or an (r, i) "
                          "pair of one numeric type")
    if d["flags"].dtype.kind not in "biu" or d["flags"].dtype.names is not None:
        raise InvalidFile(f"Data/flags has type {d['flags'].dtype}, expected boolean")
    if d["nsamples"].dtype.kind not in "fiu" or d["nsamples"].dtype.names is not None:
        raise InvalidFile(f"Data/nsamples has type {d['nsamples'].dtype}, expected numeric")
    for key in ("visdata", "flags", "nsamples"):
        d[key][-1]  # reads the last chunk: fails on a truncated file
