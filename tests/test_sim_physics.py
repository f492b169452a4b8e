"""The simulated visibilities obey the stated physics and conventions."""

from __future__ import annotations

import numpy as np
import pytest
from sim_helpers import files_by_obs, load, read_uvh5, rephase_to, run, uvw_float64

from contimg.astro.beam import beam_power
from contimg.astro.catalog import find_source

pytestmark = pytest.mark.filterwarnings("ignore:The uvw_array does not match")


@pytest.fixture(scope="module")
def one_source(tmp_path_factory):
    """3C286 alone, no noise, no gains: the data are the sky model itself."""
    return run(tmp_path_factory.mktemp("one"), nants=12, nchan=8, sefd_jy=None, gains=False,
               bandpass=False, sources=[find_source("3C286")])


def _expected(truth, d, src):
    """Beam-attenuated flux per row and channel, from the manifest's source track."""
    obs = truth["observations"][0]
    ha, dec = np.array(obs["source_ha_rad"][0]), np.array(obs["source_dec_app_rad"][0])
    a = beam_power(ha[:, None], dec[:, None], truth["pointing_dec_rad"], d["freq"][None, :]) * src.flux_at(d["freq"])
    nbls = d["vis"].shape[0] // 24
    return np.repeat(a, nbls, axis=0), ha, dec


@pytest.mark.parametrize("sb", [0, 9, 15])
def test_rephased_to_source_is_real_and_equals_attenuated_flux(one_source, sb):
    res, truth = one_source
    src = find_source("3C286")
    d = load(files_by_obs(res)[0][sb])
    expect, ha, dec = _expected(truth, d, src)
    cross = d["ant1"] != d["ant2"]
    for uvw, tol in ((d["uvw"].astype(np.float64), 2e-3), (uvw_float64(d), 1e-5)):
        v = rephase_to(d, uvw, ha, dec)[cross]
        for p in range(2):
            err = np.abs(v[..., p] - expect[cross]) / expect[cross]
            assert err.max() < tol, (tol, err.max())
    # the float32 uvw stored in the file are the float64 ones, rounded
    assert np.allclose(d["uvw"], uvw_float64(d), rtol=1e-6, atol=1e-4)
    # the source transits in this observation, so the beam goes through its peak region
    assert ha.min() < 0 < ha.max()


def test_pyuvdata_sign_convention(one_source):
    """Tell pyuvdata the data are unprojected (multiply back the meridian w term), phase
    to 3C286's ICRS position with pyuvdata, and the data become real = attenuated flux."""
    res, truth = one_source
    src = find_source("3C286")
    path = files_by_obs(res)[0][4]
    d = load(path)
    expect, _, _ = _expected(truth, d, src)
    uv = read_uvh5(path)
    w_centre = uvw_float64(d)[:, 2]
    uv.data_array *= np.exp(2j * np.pi * w_centre[:, None] * uv.freq_array[None, :] / 299792458.0)[..., None]
    uv.set_uvws_from_antenna_positions()
    uv.phase(lon=np.radians(src.ra_deg), lat=np.radians(src.dec_deg), cat_name="3C286", epoch="J2000")
    cross = uv.ant_1_array != uv.ant_2_array
    v = uv.data_array[cross][..., 0]
    assert np.abs(v.real / expect[cross] - 1).max() < 1e-4
    assert np.abs(v.imag / expect[cross]).max() < 2e-3


def test_autocorrelations_hold_total_flux(one_source):
    res, truth = one_source
    d = load(files_by_obs(res)[0][0])
    expect, _, _ = _expected(truth, d, find_source("3C286"))
    autos = d["ant1"] == d["ant2"]
    assert np.allclose(d["vis"][autos, 0, :, 0].real, expect[autos], rtol=1e-6)
    assert np.all(d["vis"][autos].imag == 0)


def test_gains_divide_out(tmp_path):
    """Dividing by the manifest's g_i conj(g_j) recovers the gain-free data (same seed)."""
    kw = {"nants": 8, "nchan": 4, "sefd_jy": None, "seed": 5, "gains_vary": True}
    res_g, truth = run(tmp_path / "g", gains=True, bandpass=True, **kw)
    res_0, _ = run(tmp_path / "n", gains=False, bandpass=False, **kw)
    names = truth["gain_antennas"]["numbers"]
    col = {n: k for k, n in enumerate(names)}
    g = np.array(truth["observations"][0]["gains_re"]) + 1j * np.array(truth["observations"][0]["gains_im"])
    bp = np.array(truth["bandpass"]["re"]) + 1j * np.array(truth["bandpass"]["im"])  # (ant, chan, pol)
    assert np.ptp(np.abs(g[:, 0, 0])) > 1e-3  # gains do vary in time
    for sb in (0, 7, 15):
        dg, d0 = load(files_by_obs(res_g)[0][sb]), load(files_by_obs(res_0)[0][sb])
        nbls = dg["vis"].shape[0] // 24
        t = np.repeat(np.arange(24), nbls)
        i1 = np.array([col[a] for a in dg["ant1"]])
        i2 = np.array([col[a] for a in dg["ant2"]])
        chans = slice(sb * 4, sb * 4 + 4)
        gi = g[t, i1][:, None, :] * bp[i1, chans]
        gj = g[t, i2][:, None, :] * bp[i2, chans]
        corrected = dg["vis"][:, 0] / (gi * np.conj(gj))
        scale = np.abs(d0["vis"][:, 0]).max()
        assert np.abs(corrected - d0["vis"][:, 0]).max() < 1e-5 * scale
        assert np.abs(dg["vis"][:, 0] - d0["vis"][:, 0]).max() > 0.1 * scale  # gains were applied


def test_constant_gains_when_not_varying(tmp_path):
    _, truth = run(tmp_path, nants=4, nchan=2, sefd_jy=None, gains_vary=False)
    g = np.array(truth["observations"][0]["gains_re"]) + 1j * np.array(truth["observations"][0]["gains_im"])
    assert np.allclose(g, g[:1]) and not np.allclose(g, 1)


def test_noise_level_matches_manifest(tmp_path):
    res, truth = run(tmp_path, nants=10, nchan=8, sources=[], gains=False, bandpass=False, sefd_jy=5800.0)
    sigma = truth["noise"]["sigma_jy"]
    assert np.isclose(sigma, 5800.0 / np.sqrt(2 * 1464843.75 * 12.8849))
    d = load(files_by_obs(res)[0][2])
    cross = d["ant1"] != d["ant2"]
    x = d["vis"][cross, 0]
    assert abs(x.real.std() / sigma - 1) < 0.02 and abs(x.imag.std() / sigma - 1) < 0.02
    assert abs(x.mean()) < 0.02 * sigma
    autos = d["vis"][~cross, 0]
    assert np.isclose(autos.real.mean(), 5800.0, rtol=1e-3)


def test_reproducible_and_seeded(tmp_path):
    a, _ = run(tmp_path / "a", nants=4, nchan=2, seed=9)
    b, _ = run(tmp_path / "b", nants=4, nchan=2, seed=9)
    c, _ = run(tmp_path / "c", nants=4, nchan=2, seed=10)
    va, vb, vc = (load(files_by_obs(r)[0][1])["vis"] for r in (a, b, c))
    assert np.array_equal(va, vb) and not np.allclose(va, vc)
    assert [p.name for p in a.files] == [p.name for p in b.files]


def test_default_sky_has_calibrator_transit_and_field_sources(tmp_path):
    _res, truth = run(tmp_path, nants=4, nchan=2, observations=3, sefd_jy=None)
    assert np.isclose(truth["pointing_dec_deg"], find_source("3C286").dec_deg)
    cal = next(s for s in truth["sources"] if s["name"] == "3C286")
    mid = truth["observations"][1]  # (observations - 1) // 2
    assert mid["start_jd"] < cal["transit_jd"] < mid["end_jd"]
    assert 0.95 < cal["beam_at_transit_1400MHz"] <= 1.0
    field = [s for s in truth["sources"] if s["name"].startswith("SIM")]
    assert len(field) == 6
    t0, t1 = truth["observations"][0]["start_jd"], truth["observations"][-1]["end_jd"]
    for s in field:
        assert 0.1 <= s["flux_jy"] <= 2.0
        assert abs(s["dec_deg"] - truth["pointing_dec_deg"]) < 2.1
        assert t0 - 1e-4 < s["transit_jd"] < t1 + 1e-4
