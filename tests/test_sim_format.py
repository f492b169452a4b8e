"""Simulated files have exactly the layout of docs/data-format.md and pyuvdata reads them."""

from __future__ import annotations

from datetime import datetime

import h5py
import numpy as np
import pytest
from sim_helpers import NAME_RE, files_by_obs, read_uvh5, run

from contimg.astro.freqs import subband_freqs_hz

pytestmark = pytest.mark.filterwarnings("ignore:The uvw_array does not match")


@pytest.fixture(scope="module")
def two_obs(tmp_path_factory):
    return run(tmp_path_factory.mktemp("fmt"), nants=6, nchan=4, observations=2)


@pytest.fixture(scope="module")
def full_nchan(tmp_path_factory):
    return run(tmp_path_factory.mktemp("full"), nants=4, nchan=48, sefd_jy=None)


def test_names_timestamps_and_no_temporaries(two_obs):
    res, _truth = two_obs
    d = res.manifest.parent
    names = sorted(p.name for p in d.glob("*.hdf5"))
    assert len(names) == 32 and not list(d.glob("*incomplete*"))
    for o in res.observations:
        start = datetime.strptime(o["start_iso"][:19], "%Y-%m-%dT%H:%M:%S")
        sbs = []
        for sb, name in o["files"].items():
            m = NAME_RE.match(name)
            assert m and int(m.group(2)) == int(sb)
            jitter = (datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S") - start).total_seconds()
            assert 0 <= jitter <= 3  # the writer's per-subband opening delay
            sbs.append(int(sb))
        assert sbs == list(range(16))
    assert res.manifest.name.endswith("_truth.json")


def test_header_and_data_layout(two_obs):
    res, truth = two_obs
    path = files_by_obs(res)[0][3]
    with h5py.File(path, "r") as h:
        hdr, ek = h["Header"], h["Header/extra_keywords"]
        assert hdr["telescope_name"][()] == b"OVRO_MMA" and hdr["instrument"][()] == b"DSA"
        assert hdr["phase_type"][()] == b"drift"
        assert ek["phase_center_epoch"][()] == b"HADEC" and ek["ha_phase_center"][()] == 0.0
        assert np.isclose(ek["phase_center_dec"][()], truth["pointing_dec_rad"])
        assert len(ek["applied_delays_ns"][()].split()) == 2 * 117
        assert hdr["uvw_array"].dtype == np.float32
        nbls = 6 * 7 // 2
        assert hdr["Nbls"][()] == nbls and hdr["Nblts"][()] == 24 * nbls and hdr["Ntimes"][()] == 24
        assert hdr["Nants_telescope"][()] == 117 and hdr["Nants_data"][()] == 6 and hdr["Nspws"][()] == 1
        assert hdr["antenna_positions"].shape == (117, 3)
        assert np.all(hdr["antenna_diameters"][()] == 4.65)
        assert list(hdr["antenna_names"][()][:3]) == [b"1", b"2", b"3"]
        assert list(hdr["polarization_array"][()]) == [-5, -6]
        assert np.isclose(hdr["latitude"][()], np.degrees(0.6498455107238486))
        vis = h["Data/visdata"]
        assert vis.dtype == np.complex64 and vis.shape == (24 * nbls, 1, 4, 2)
        assert h["Data/flags"].dtype == bool and h["Data/nsamples"].dtype == np.float32
        a1, a2 = hdr["ant_1_array"][()], hdr["ant_2_array"][()]
        assert np.all(a1 <= a2) and np.sum(a1 == a2) == 24 * 6  # autos included
        t = np.unique(hdr["time_array"][()])
        assert np.allclose(np.diff(t) * 86400, 12.8849, atol=1e-4)
        assert np.allclose(hdr["integration_time"][()], 12.8849)


def test_channel_order_and_frequencies(full_nchan):
    res, _ = full_nchan
    files = files_by_obs(res)[0]
    with h5py.File(files[0], "r") as h:
        f0 = h["Header/freq_array"][()][0]
        assert h["Header/freq_array"].shape == (1, 48)
        assert np.isclose(h["Header/channel_width"][()], 244140.625)
    with h5py.File(files[15], "r") as h:
        f15 = h["Header/freq_array"][()][0]
    assert np.all(np.diff(f0) < 0)  # descending inside a file
    assert round(f0[0] / 1e6, 3) == 1498.643 and round(f0[-1] / 1e6, 3) == 1487.169
    assert round(f15[-1] / 1e6, 3) == 1311.387
    assert np.allclose(np.diff(f0), -244140.625)
    # 768 contiguous channels: 16 x 11.71875 MHz = 187.5 MHz in all
    assert np.isclose(f0[0] - f15[-1], 767 * 244140.625)
    assert np.allclose(subband_freqs_hz(0, 4), f0.reshape(4, 12).mean(1))


def test_pyuvdata_reads_every_file(two_obs):
    res, _ = two_obs
    for obs in files_by_obs(res).values():
        for path in obs.values():
            uv = read_uvh5(path)
            assert uv.Nfreqs == 4 and uv.Npols == 2 and uv.Ntimes == 24
            assert uv.telescope.name == "OVRO_MMA"


def test_group_concatenates_to_768_channels(full_nchan):
    res, _ = full_nchan
    files = files_by_obs(res)[0]
    uvs = [read_uvh5(files[sb]) for sb in range(15, -1, -1)]  # ascending: sb15 first
    for uv in uvs:
        uv.reorder_freqs(channel_order="freq")
    uv = uvs[0].fast_concat(uvs[1:], axis="freq", inplace=False)
    assert uv.Nfreqs == 768
    assert np.all(np.diff(uv.freq_array) > 0)
    assert np.isclose(uv.freq_array[0], 1311.387e6, atol=1e3) and np.isclose(uv.freq_array[-1], 1498.643e6, atol=1e3)


def test_consecutive_observations_have_no_gap(two_obs):
    res, _ = two_obs
    o0, o1 = res.observations
    assert np.isclose((o1["start_jd"] - o0["start_jd"]) * 86400, 24 * 12.8849, atol=1e-3)
    assert np.isclose((o1["times_jd"][0] - o0["times_jd"][-1]) * 86400, 12.8849, atol=1e-3)
