"""Shared helpers for the simulator tests (kept out of conftest.py, which the lead owns).

The re-phasing math here is written independently of contimg.sim.core (rotation
matrices rather than the simulator's closed-form expressions) so the tests check
the simulator rather than repeat it.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import h5py
import numpy as np

from contimg.sim import SimOptions, simulate

C = 299792458.0
NAME_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})_sb(\d{2})\.hdf5$")


def run(tmp: Path, **kw):
    """simulate() into ``tmp`` with small defaults; returns (SimResult, truth dict)."""
    opts = {"nants": 8, "nchan": 4, "seed": 3}
    opts.update(kw)
    res = simulate(Path(tmp), SimOptions(**opts))
    return res, json.loads(res.manifest.read_text())


def read_uvh5(path: Path):
    """Read one subband file as the real format needs: file_type='uvh5' (the .hdf5
    extension is not recognised), run_check=False (uvw_array is float32), cast uvw
    to float64, then check()."""
    from pyuvdata import UVData

    uv = UVData()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uv.read(str(path), file_type="uvh5", run_check=False)
        uv.uvw_array = uv.uvw_array.astype(np.float64)
        uv.check()
    return uv


def load(path: Path) -> dict:
    """Raw arrays of one file via h5py."""
    with h5py.File(path, "r") as h:
        hdr = h["Header"]
        return {
            "vis": h["Data/visdata"][()],
            "time": hdr["time_array"][()],
            "ant1": hdr["ant_1_array"][()],
            "ant2": hdr["ant_2_array"][()],
            "uvw": hdr["uvw_array"][()],
            "freq": hdr["freq_array"][()][0],
            "antpos": hdr["antenna_positions"][()],
            "lon": np.radians(hdr["longitude"][()]),
            "dec0": hdr["extra_keywords/phase_center_dec"][()],
            "ntimes": int(hdr["Ntimes"][()]),
        }


def files_by_obs(res) -> dict[int, dict[int, Path]]:
    """{obs: {sb: path}} from the manifest's per-observation file lists."""
    out = {}
    for o in res.observations:
        out[o["index"]] = {int(sb): res.manifest.parent / name for sb, name in o["files"].items()}
    return out


def _rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def uvw_float64(d: dict) -> np.ndarray:
    """uvw for the meridian centre (HA=0, dec0) recomputed in float64 from the positions.

    ECEF -> rotate about z by the longitude (x to the local meridian) -> rotate
    about the east (y) axis so that z points at (HA=0, dec0): rows are u (east),
    v (north of the centre), w (towards it).
    """
    b = d["antpos"][d["ant2"]] - d["antpos"][d["ant1"]]
    local = b @ _rot_z(d["lon"]).T  # x: meridian on the equator, y: east, z: pole
    dec0 = d["dec0"]
    e_w = np.array([np.cos(dec0), 0.0, np.sin(dec0)])
    e_u = np.array([0.0, 1.0, 0.0])
    e_v = np.cross(e_w, e_u)
    return np.stack([local @ e_u, local @ e_v, local @ e_w], axis=1)


def rephase_to(d: dict, uvw: np.ndarray, ha: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Visibilities (Nblts, Nf, Npol) re-phased to a source at (ha[t], dec[t]).

    Multiplies by exp(-2 pi i nu/c * b.(s - s0)), with b.(s - s0) built from w of
    the source direction: s in the (u, v, w) basis of the centre.
    """
    nbls = d["vis"].shape[0] // d["ntimes"]
    t_idx = np.repeat(np.arange(d["ntimes"]), nbls)
    dec0 = d["dec0"]
    # source unit vector in the local equatorial frame, then in the centre's (u, v, w) basis
    s_local = np.stack([np.cos(dec) * np.cos(ha), -np.cos(dec) * np.sin(ha), np.sin(dec)], axis=1)
    e_w = np.array([np.cos(dec0), 0.0, np.sin(dec0)])
    e_u = np.array([0.0, 1.0, 0.0])
    e_v = np.cross(e_w, e_u)
    s_uvw = np.stack([s_local @ e_u, s_local @ e_v, s_local @ e_w - 1.0], axis=1)  # (Nt, 3)
    path = np.einsum("rk,rk->r", uvw, s_uvw[t_idx])
    phase = np.exp(-2j * np.pi * path[:, None] * d["freq"][None, :] / C)
    return d["vis"][:, 0].astype(np.complex128) * phase[:, :, None]
