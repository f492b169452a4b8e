"""Write one DSA-110 subband file (UVH5 layout of the real correlator writer).

Written with h5py directly (much faster than pyuvdata and byte-for-byte the
real layout): old-style arrays with the spectral-window axis
(``visdata`` is (Nblts, 1, Nfreqs, Npols) complex64, ``freq_array`` is
(1, Nfreqs)), ``uvw_array`` stored float32, phase_type "drift" and the
meridian phase centre described only in ``extra_keywords``. The file is made
under ``<name>_incomplete.hdf5`` and renamed into place when complete, like the
real writer, unless the caller asks to leave it under the temporary name.

Reading these files with pyuvdata 3.2 needs ``file_type="uvh5"`` (the ``.hdf5``
extension is not recognised) and ``run_check=False`` (float32 uvw fails the
default check); cast ``uvw_array`` to float64 and then call ``check()``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from contimg.astro import site
from contimg.names import SUBBAND_TIMESTAMP_FORMAT, subband_filename  # noqa: F401 - named in contimg.names

TIMESTAMP_FORMAT = SUBBAND_TIMESTAMP_FORMAT
# The correlator's own temporary name (not contimg's staged-write format): ingest must
# ignore a file under it until it is renamed, so the simulator writes it the same way.
TEMP_SUFFIX = "_incomplete.hdf5"


def temporary_name(final: Path) -> Path:
    """``..._sbNN.hdf5`` -> ``..._sbNN_incomplete.hdf5`` in the same directory."""
    return final.with_name(final.name[: -len(".hdf5")] + TEMP_SUFFIX)


@dataclass
class SubbandFile:
    """Everything one file holds. Rows are time-major (all baselines of t0, then t1 ...)."""

    freqs_hz: np.ndarray  # (Nfreqs,) descending
    channel_width_hz: float
    time_jd: np.ndarray  # (Nblts,)
    integration_time_s: float
    ant_1: np.ndarray  # (Nblts,) antenna numbers 0..116
    ant_2: np.ndarray
    uvw_m: np.ndarray  # (Nblts, 3) float64, stored float32
    visdata: np.ndarray  # (Nblts, 1, Nfreqs, Npols) complex64
    nants_data: int
    ntimes: int
    pointing_dec_rad: float
    history: str = "simulated by contimg.sim"


def write_subband(path: Path, f: SubbandFile, leave_temporary: bool = False) -> Path:
    """Write ``f`` to ``path`` via the temporary name; return the path left on disk."""
    st = site.stations()
    nblts, _, nfreqs, npols = f.visdata.shape
    nbls = nblts // f.ntimes
    tmp = temporary_name(path)
    with h5py.File(tmp, "w") as h5:
        hdr = h5.create_group("Header")
        hdr["latitude"] = np.degrees(site.LATITUDE_RAD)
        hdr["longitude"] = np.degrees(site.LONGITUDE_RAD)
        hdr["altitude"] = site.HEIGHT_M
        hdr["telescope_name"] = np.bytes_("OVRO_MMA")
        hdr["instrument"] = np.bytes_("DSA")
        hdr["object_name"] = np.bytes_("search")
        hdr["history"] = np.bytes_(f.history)
        hdr["phase_type"] = np.bytes_("drift")
        hdr["Nants_data"] = f.nants_data
        hdr["Nants_telescope"] = site.N_STATIONS
        hdr["antenna_diameters"] = np.full(site.N_STATIONS, site.DISH_DIAMETER_M)
        hdr["antenna_names"] = np.array(st.names, dtype="S4")
        hdr["antenna_numbers"] = st.numbers.astype(np.int64)
        hdr["antenna_positions"] = st.antenna_positions
        hdr["ant_1_array"] = f.ant_1.astype(np.int64)
        hdr["ant_2_array"] = f.ant_2.astype(np.int64)
        hdr["Nbls"] = nbls
        hdr["Nblts"] = nblts
        hdr["Nfreqs"] = nfreqs
        hdr["Npols"] = npols
        hdr["Ntimes"] = f.ntimes
        hdr["Nspws"] = 1
        hdr["spw_array"] = np.array([1])
        hdr["uvw_array"] = f.uvw_m.astype(np.float32)
        hdr["time_array"] = f.time_jd.astype(np.float64)
        hdr["integration_time"] = np.full(nblts, f.integration_time_s)
        hdr["freq_array"] = f.freqs_hz[None, :].astype(np.float64)
        hdr["channel_width"] = float(f.channel_width_hz)
        hdr["polarization_array"] = np.array([-5, -6])[:npols]
        extra = hdr.create_group("extra_keywords")
        extra["phase_center_dec"] = float(f.pointing_dec_rad)
        extra["ha_phase_center"] = 0.0
        extra["phase_center_epoch"] = np.bytes_("HADEC")
        # Per station and polarisation, as the real writer stores them ("d0 d1 d0 d1 ...").
        extra["applied_delays_ns"] = np.bytes_(" ".join(["0"] * (2 * site.N_STATIONS)))
        data = h5.create_group("Data")
        data.create_dataset("visdata", data=f.visdata.astype(np.complex64, copy=False))
        data.create_dataset("flags", data=np.zeros(f.visdata.shape, dtype=bool))
        data.create_dataset("nsamples", data=np.ones(f.visdata.shape, dtype=np.float32))
    if leave_temporary:
        return tmp
    os.replace(tmp, path)
    return path
