"""Files from another writer may order some baselines ant1 > ant2: conversion must give
the same MS as the correlator's ant1 <= ant2 layout (C3/C5 on foreign files)."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
from msio_helpers import data_files
from pipeline_helpers import sim

from contimg.msio import build_ms


def _reverse_some_baselines(path) -> None:
    with h5py.File(path, "r+") as f:
        h, d = f["Header"], f["Data"]
        a1, a2 = h["ant_1_array"][()], h["ant_2_array"][()]
        rows = (a1 != a2) & (np.arange(a1.size) % 2 == 1)
        h["ant_1_array"][rows], h["ant_2_array"][rows] = a2[rows], a1[rows]
        uvw = h["uvw_array"][()]
        uvw[rows] *= -1
        h["uvw_array"][...] = uvw
        vis = d["visdata"][()]
        vis[rows] = np.conjugate(vis[rows])
        d["visdata"][...] = vis


def test_c5_mixed_baseline_order_converts_like_the_correlator_order(tmp_path) -> None:
    res = sim(tmp_path / "a", observations=1, nants=8, nchan=2, sefd_jy=5800.0, gains=True)
    files = data_files(res)
    mixed_dir = tmp_path / "b"
    mixed_dir.mkdir()
    mixed = []
    for f in files:
        shutil.copy2(f, mixed_dir / f.name)
        _reverse_some_baselines(mixed_dir / f.name)
        mixed.append(mixed_dir / f.name)
    a = build_ms(files, tmp_path / "a.ms")
    b = build_ms(mixed, tmp_path / "b.ms")
    from casacore.tables import table

    with table(str(a.path), ack=False) as ta, table(str(b.path), ack=False) as tb:
        for col in ("ANTENNA1", "ANTENNA2", "TIME", "FLAG"):
            assert np.array_equal(ta.getcol(col), tb.getcol(col)), col
        assert np.allclose(ta.getcol("UVW"), tb.getcol("UVW"), atol=1e-6)
        da, db = ta.getcol("DATA"), tb.getcol("DATA")
        assert np.max(np.abs(da - db)) <= 1e-6 * np.max(np.abs(da))
