"""Inspect one subband file cheaply (header + last rows) before registering it (I1, I6).

Only the header and the last element of each data array are read: enough to
catch wrong shapes and truncation (the last chunk lies past the end of a
truncated file) without reading 139 MB per file during a scan.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

# Correlator arithmetic (DATA_FORMAT.md): fine channels of 250/8192 MHz below 1530 MHz;
# subband sb spans fine channels 1024 + 384 sb ... + 383.
FINE_HZ = 250e6 / 8192
TOP_HZ = 1530e6


class BadFile(ValueError):
    """The file cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class SubbandHeader:
    subband: int
    start_mjd: float  # start of the first integration (time_array holds centres)
    dec_deg: float
    nchan: int
    fingerprint: str  # antenna pairs, number of times and rows; start times compared apart


def subband_from_frequencies(freqs_hz: np.ndarray) -> int:
    centre_fine = (TOP_HZ - float(np.mean(freqs_hz))) / FINE_HZ
    return int(round((centre_fine - 1024 - 191.5) / 384))


def inspect(path: Path, name_subband: int) -> SubbandHeader:
    """Validate a subband file's structure and return what grouping needs."""
    try:
        with h5py.File(path, "r") as f:
            if "Header" not in f or "Data" not in f:
                raise BadFile("not a UVH5 file (no Header/Data groups)")
            h, d = f["Header"], f["Data"]
            for key in ("time_array", "ant_1_array", "ant_2_array", "freq_array", "Nblts", "Npols"):
                if key not in h:
                    raise BadFile(f"header lacks {key}")
            nblts, npols = int(h["Nblts"][()]), int(h["Npols"][()])
            times = np.asarray(h["time_array"][()], dtype=np.float64)
            a1 = np.asarray(h["ant_1_array"][()])
            a2 = np.asarray(h["ant_2_array"][()])
            freqs = np.asarray(h["freq_array"][()], dtype=np.float64).ravel()
            if not (len(times) == len(a1) == len(a2) == nblts):
                raise BadFile(f"Nblts={nblts} but time/antenna arrays have "
                              f"{len(times)}/{len(a1)}/{len(a2)} rows")
            nfreqs = freqs.size
            for key in ("visdata", "flags", "nsamples"):
                if key not in d:
                    raise BadFile(f"Data lacks {key}")
                shape = d[key].shape
                if shape not in ((nblts, 1, nfreqs, npols), (nblts, nfreqs, npols)):
                    raise BadFile(f"Data/{key} has shape {shape}, expected "
                                  f"({nblts}, 1, {nfreqs}, {npols})")
                d[key][-1]  # reads the last chunk: fails on a truncated file
            vt = d["visdata"].dtype
            if not (vt.kind == "c" or set(vt.names or ()) == {"r", "i"}):
                raise BadFile(f"Data/visdata has type {vt}, not complex or an (r, i) pair")
            extra = h.get("extra_keywords")
            if extra is None or "phase_center_dec" not in extra:
                raise BadFile("extra_keywords/phase_center_dec missing (pointing declination)")
            dec_deg = float(np.degrees(float(extra["phase_center_dec"][()])))
            half_int_days = (float(np.ravel(h["integration_time"][()])[0]) / 2 / 86400
                             if "integration_time" in h else 0.0)
    except BadFile:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise BadFile(f"unreadable or truncated HDF5 ({exc})") from None
    sb = subband_from_frequencies(freqs)
    if sb != name_subband:
        raise BadFile(f"frequencies ({freqs.min() / 1e6:.3f}-{freqs.max() / 1e6:.3f} MHz) are "
                      f"those of sb{sb:02d}, but the name says sb{name_subband:02d}")
    pairs = np.unique(np.stack([a1, a2]).astype(np.int64), axis=1)
    ntimes = np.unique(times).size
    digest = f"{hashlib.sha1(pairs.tobytes()).hexdigest()[:16]}:{ntimes}:{nblts}"
    return SubbandHeader(subband=sb, start_mjd=float(times.min() - half_int_days - 2400000.5), dec_deg=dec_deg,
                         nchan=nfreqs, fingerprint=digest)
