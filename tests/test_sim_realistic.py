"""The realistic simulation against analytic and brute-force expectations (issue 12, acceptance 1)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sim_helpers import _rot_z, files_by_obs, load, run

from contimg.astro import times
from contimg.astro.beam import beam_power, fwhm_rad
from contimg.astro.catalog import Source, find_source
from contimg.astro.refcat import read_refcat
from contimg.sim import counts, realistic, rfi, sky
from contimg.sim.core import INTEGRATION_S, OBS_DURATION_S
from contimg.sim.counts import SkyArrays
from contimg.sim.instrument import PhaseNoise, sim_beam_power

pytestmark = pytest.mark.filterwarnings("ignore:The uvw_array does not match")
C = 299792458.0
OMEGA = 7.2921150e-5


def _offset_source(ddec_deg: float, dha_deg: float = 0.0) -> Source:
    """A 1 Jy point source transiting mid-observation (1 observation, default pointing) at dec0 + ddec."""
    cal = find_source("3C286")
    tr = sky.transit_jd(cal, times.iso_to_jd(sky.DEFAULT_DATE_ISO))
    ra, dec = sky.meridian_icrs(np.array([tr - np.radians(dha_deg) / (2 * np.pi) * 0.99727]),
                                cal.dec_deg + ddec_deg)
    return Source(name="OFF", ra_deg=float(ra[0]), dec_deg=float(dec[0]), flux_jy=1.0, spectral_index=0.0)


def _brute_force(d, truth, n_sub=24):
    """Mean of exp(+2 pi i nu path / c) over n_sub x n_sub sub-samples of each channel and
    integration, with the phase centre (HA = 0 at the midpoint) tracking the sky: the
    source and the centre both turn by omega tau; positions from the file's antennas."""
    obs = truth["observations"][0]
    ha, dec = np.array(obs["source_ha_rad"][0]), np.array(obs["source_dec_app_rad"][0])
    dec0 = truth["pointing_dec_rad"]
    nbls = d["vis"].shape[0] // d["ntimes"]
    b = (d["antpos"][d["ant2"][:nbls]] - d["antpos"][d["ant1"][:nbls]]) @ _rot_z(d["lon"]).T
    tau = ((np.arange(n_sub) + 0.5) / n_sub - 0.5) * INTEGRATION_S
    dnu = truth["channel_width_hz"]
    nus = d["freq"][:, None] + ((np.arange(n_sub) + 0.5) / n_sub - 0.5)[None, :] * dnu  # (Nf, n_sub)
    out = np.empty((d["ntimes"], nbls, d["freq"].size), complex)
    for t in range(d["ntimes"]):
        h = ha[t] + OMEGA * tau
        s = np.stack([np.cos(dec[t]) * np.cos(h), -np.cos(dec[t]) * np.sin(h), np.full_like(h, np.sin(dec[t]))])
        s0 = np.stack([np.cos(dec0) * np.cos(OMEGA * tau), -np.cos(dec0) * np.sin(OMEGA * tau),
                       np.full_like(tau, np.sin(dec0))])
        path = b @ (s - s0)  # (Nbls, n_sub times)
        ph = np.exp(2j * np.pi * path[:, :, None, None] * nus[None, None, :, :] / C)
        out[t] = ph.mean(axis=(1, 3))
    return out.reshape(-1, d["freq"].size)


@pytest.fixture(scope="module")
def smeared(tmp_path_factory):
    """One 1 Jy source 1.5 deg off the pointing, smearing on, nothing else."""
    return run(tmp_path_factory.mktemp("smear"), nants=8, nchan=8, sefd_jy=None, gains=False, bandpass=False,
               smearing=True, sources=[_offset_source(1.5, 0.4)])


@pytest.mark.parametrize("sb", [0, 15])
def test_smearing_loss_matches_brute_force_within_half_percent(smeared, sb):
    res, truth = smeared
    d = load(files_by_obs(res)[0][sb])
    obs = truth["observations"][0]
    ha, dec = np.array(obs["source_ha_rad"][0]), np.array(obs["source_dec_app_rad"][0])
    a = beam_power(ha[:, None], dec[:, None], truth["pointing_dec_rad"], d["freq"][None, :])  # 1 Jy, alpha 0
    nbls = d["vis"].shape[0] // 24
    expect = np.repeat(a, nbls, axis=0) * _brute_force(d, truth)
    cross = d["ant1"] != d["ant2"]
    for p in range(2):
        ratio = d["vis"][cross, 0, :, p] / np.repeat(a, nbls, axis=0)[cross]
        bf = expect[cross] / np.repeat(a, nbls, axis=0)[cross]
        assert np.abs(ratio - bf).max() < 0.005
    loss = 1 - np.abs(bf)
    assert loss.max() > 0.05  # the smearing is really there on the long baselines


def test_smearing_off_by_default_and_on_changes_data(tmp_path, smeared):
    res, _ = run(tmp_path, nants=8, nchan=8, sefd_jy=None, gains=False, bandpass=False,
                 sources=[_offset_source(1.5, 0.4)])
    a, b = load(files_by_obs(res)[0][0])["vis"], load(files_by_obs(smeared[0])[0][0])["vis"]
    cross = load(files_by_obs(res)[0][0])
    cross = cross["ant1"] != cross["ant2"]
    assert np.abs(b[cross]).mean() < 0.99 * np.abs(a[cross]).mean()


def test_simulated_beam_differs_from_pipeline_model_by_configured_amount():
    f = 1.4e9
    model = fwhm_rad(f)
    for scale, ell in ((1.05, 0.03), (1.10, 0.0), (1.0, 0.05)):
        r = np.linspace(0, 1.5 * model, 20001)
        z = np.zeros_like(r)
        half = {}
        for axis, (l, m) in (("l", (r, z)), ("m", (z, r))):
            bp = sim_beam_power(l, m, f, scale, ell)
            for p in range(2):
                half[axis, p] = 2 * r[np.argmin(np.abs(bp[:, p] - 0.5))]
        assert half["l", 0] / model == pytest.approx(scale * (1 + ell), abs=2e-4)
        assert half["m", 0] / model == pytest.approx(scale * (1 - ell), abs=2e-4)
        assert half["l", 1] / model == pytest.approx(scale * (1 - ell), abs=2e-4)
        assert half["m", 1] / model == pytest.approx(scale * (1 + ell), abs=2e-4)
    # scale 1, no ellipticity: exactly the pipeline's beam
    th = np.linspace(0, 0.1, 50)
    assert np.allclose(sim_beam_power(np.sin(th), 0 * th, f)[:, 0], beam_power(th, 0.0, 0.0, f), atol=1e-12)


def test_simulated_beam_is_in_the_data(tmp_path):
    """A source 1.2 deg north: XX and YY amplitudes follow the configured beam, not the model."""
    res, truth = run(tmp_path, nants=4, nchan=2, sefd_jy=None, gains=False, bandpass=False,
                     beam_scale=1.05, beam_ellipticity=0.03, sources=[_offset_source(1.2)])
    d = load(files_by_obs(res)[0][8])
    autos = d["ant1"] == d["ant2"]
    obs = truth["observations"][0]
    ha, dec = np.array(obs["source_ha_rad"][0]), np.array(obs["source_dec_app_rad"][0])
    dec0 = truth["pointing_dec_rad"]
    l = -np.cos(dec) * np.sin(ha)
    m = np.sin(dec) * np.cos(dec0) - np.cos(dec) * np.sin(dec0) * np.cos(ha)
    expect = sim_beam_power(l[:, None], m[:, None], d["freq"][None, :], 1.05, 0.03)  # (Nt, Nf, 2)
    got = d["vis"][autos, 0].real.reshape(24, -1, d["freq"].size, 2)[:, 0]
    assert np.allclose(got, expect, rtol=1e-5)
    model = beam_power(ha[:, None], dec[:, None], dec0, d["freq"][None, :])
    # north of the pointing: XX is 1.05 x 0.97 and YY 1.05 x 1.03 times the model's width
    assert np.all(got[..., 1] > got[..., 0]) and np.all(got[..., 0] > 1.02 * model)


def test_source_counts_within_poisson_scatter_of_model():
    rng = np.random.default_rng(7)
    fld, area = counts.draw_field(rng, 30.0, 180.0, 200.0, 4.0, s_min=1e-3, scale=1.15)
    assert counts.integral_counts_per_deg2(2.5e-3, 1.15) >= 50
    edges = np.array([1e-3, 2.5e-3, 1e-2, 3e-2, 1e-1, 1.0, 10.0])
    n, _ = np.histogram(fld.flux_jy, edges)
    model = np.array([counts.integral_counts_per_deg2(a, 1.15) - counts.integral_counts_per_deg2(b, 1.15)
                      for a, b in zip(edges[:-1], edges[1:])]) * area
    assert np.all(np.abs(n - model) < 4 * np.sqrt(model) + 1), (n, model)
    assert (fld.flux_jy > 2.5e-3).sum() / area > 45
    # positions uniform over the strip; spectral indices N(-0.7, 0.3); ~10 % resolved, 10-60 arcsec
    assert abs(np.mean(fld.spectral_index) + 0.7) < 0.02 and abs(np.std(fld.spectral_index) - 0.3) < 0.02
    res = fld.maj_arcsec > 0
    assert abs(res.mean() - 0.10) < 0.015
    assert fld.maj_arcsec[res].min() >= 10 and fld.maj_arcsec[res].max() <= 60
    assert np.all(fld.min_arcsec[res] <= fld.maj_arcsec[res])


def test_phase_noise_rms_and_time_scale():
    pn = PhaseNoise(3, 117, 7.0)
    t = np.arange(0, 6 * 3600, INTEGRATION_S)
    ph = np.degrees(pn(t, np.arange(117)))
    rms = ph.std(axis=0)
    assert 5.0 < np.median(rms) < 9.0
    d1 = np.diff(ph, axis=0).std()  # one integration apart: correlated (minute scales)
    d10 = (ph[47:] - ph[:-47]).std()  # ~10 minutes apart: independent-ish
    assert d1 < 0.6 * np.median(rms) and d10 > 0.8 * np.median(rms)


def _rfi_pair(tmp_path, **kw):
    base = {"nants": 8, "nchan": 4, "observations": 2, "seed": 4, "sefd_jy": None, "gains": False,
            "bandpass": False, "sources": [find_source("3C286")]}
    base.update(kw)
    on = run(tmp_path / "on", rfi=True, **base)
    off = run(tmp_path / "off", rfi=False, **base)
    return on, off


def test_rfi_mask_covers_exactly_what_changed(tmp_path):
    (res_on, truth), (res_off, _) = _rfi_pair(tmp_path)
    plan = truth["instrument"]["rfi"]
    assert plan["channels"] and plan["bursts"] and plan["antennas"] and plan["baselines"]
    flagged = total = 0
    for k in range(2):
        for sb in range(16):
            a, b = load(files_by_obs(res_on)[k][sb]), load(files_by_obs(res_off)[k][sb])
            nbls = a["vis"].shape[0] // 24
            mask = rfi.expand_mask(plan, k, sb, 4, 24, a["ant1"][:nbls], a["ant2"][:nbls])
            changed = np.any(a["vis"][:, 0] != b["vis"][:, 0], axis=-1)
            assert np.array_equal(changed, mask), (k, sb)
            flagged += mask.sum()
            total += mask.size
    assert 0.05 < flagged / total < 0.6


def test_realistic_run_truth_refcat_and_reproducibility(tmp_path):
    kw = {"nants": 5, "nchan": 2, "seed": 11, "sky": "realistic", "flux_floor_jy": 5e-3}
    res, truth = run(tmp_path / "a", **kw)
    res2, _ = run(tmp_path / "b", **kw)
    assert np.array_equal(load(res.files[3])["vis"], load(res2.files[3])["vis"])
    meta = truth["sky_model"]
    assert meta["kept_by_kind"]["sidelobe"] == 3 and meta["kept_by_kind"]["field"] > 20
    assert meta["per_deg2_above_2.5mJy"] >= 50 and meta["flux_floor_jy"] == 5e-3
    inst = truth["instrument"]
    assert inst["beam_scale"] == 1.05 and inst["smearing"] and inst["phase_noise_deg"] == 7.0 and inst["rfi"]
    srcs = truth["sources"]
    side = [s for s in srcs if s["kind"] == "sidelobe"]
    assert all(1.0 <= s["flux_jy"] <= 4.0 and 0.0 < s["beam_at_transit_1400MHz"] < 0.03 for s in side)
    rc = truth["reference_catalogue"]
    csv_cat, fits_cat = (read_refcat(res.manifest.parent / rc[k]) for k in ("csv", "fits"))
    assert len(csv_cat) == len(fits_cat) == rc["rows"] == len(rc["source_index"])
    assert np.allclose(csv_cat.flux_jy, fits_cat.flux_jy, rtol=1e-7)
    assert json.loads(res.manifest.read_text())["options"]["sky"] == "realistic"


def test_reference_catalogue_errors_have_configured_statistics():
    n = 20000
    r = np.random.default_rng(1)
    z = np.zeros(n)
    maj = np.where(r.uniform(0, 1, n) < 0.1, 30.0, 0.0)
    sky_ = SkyArrays(name=[f"S{k}" for k in range(n)], ra_deg=r.uniform(100, 110, n), dec_deg=r.uniform(20, 40, n),
                     flux_jy=r.uniform(0.001, 1, n), spectral_index=z - 0.7, maj_arcsec=maj, min_arcsec=maj / 2,
                     pa_deg=z + 10, kind=["field"] * n)
    cat, keep = realistic.reference_catalogue(sky_, seed=5)
    assert abs(1 - len(cat) / n - realistic.REFCAT_MISSING) < 0.005
    ratio = cat.flux_jy / sky_.flux_jy[keep]
    assert abs(np.mean(ratio) - 1) < 0.005 and abs(np.std(ratio) - realistic.REFCAT_FLUX_SCATTER) < 0.005
    ddec = (cat.dec_deg - sky_.dec_deg[keep]) * 3600
    dra = (cat.ra_deg - sky_.ra_deg[keep]) * 3600 * np.cos(np.radians(sky_.dec_deg[keep]))
    expect = np.sqrt(7.0 / 3.0)  # rms of N(0, sigma), sigma ~ U(1, 2) arcsec
    assert abs(np.std(ddec) - expect) < 0.05 and abs(np.std(dra) - expect) < 0.05
    res = sky_.maj_arcsec[keep] > 0
    assert np.all(cat.maj_arcsec[~res] == 0) and abs(np.mean(cat.maj_arcsec[res]) - 30) < 0.5


def test_parallel_workers_write_the_same_files(tmp_path):
    kw = {"nants": 4, "nchan": 2, "seed": 2, "sky": "realistic", "flux_floor_jy": 2e-2, "omit_subbands": {0: [5]}}
    a, _ = run(tmp_path / "a", workers=1, **kw)
    b, _ = run(tmp_path / "b", workers=2, **kw)
    assert [p.name for p in a.files] == [p.name for p in b.files] and len(a.files) == 15
    for pa, pb in zip(a.files, b.files):
        assert np.array_equal(load(pa)["vis"], load(pb)["vis"])


def test_rfi_mask_for_rows_agrees_with_file_mask():
    st = np.array([0, 5, 9, 20, 33, 40, 70, 107])
    plan = rfi.draw_plan(4, 4, 2, 24, st)
    i, j = np.triu_indices(st.size)
    a1, a2 = st[i], st[j]
    for obs, sb in ((0, 3), (1, 9)):
        full = rfi.expand_mask(plan, obs, sb, 4, 24, a1, a2)
        t = np.repeat(np.arange(24), a1.size)
        rows = rfi.mask_for_rows(plan, obs, t, np.tile(a1, 24), np.tile(a2, 24), sb * 4 + np.arange(4))
        assert np.array_equal(full, rows)


def test_cli_simulate_sky_realistic(tmp_path):
    import subprocess
    import sys

    exe = [sys.executable, "-m", "contimg", "--home", str(tmp_path / "h"), "--json", "simulate"]
    out = subprocess.run(exe + ["--out", str(tmp_path / "in"), "--sky", "realistic", "--nants", "4", "--nchan", "1",
                                "--flux-floor", "0.02", "--workers", "2"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert len(res["files"]) == 16
    truth = json.loads(Path(res["manifest"]).read_text())
    assert truth["options"]["sky"] == "realistic" and truth["sky_model"]["flux_floor_jy"] == 0.02
    assert (Path(res["manifest"]).parent / truth["reference_catalogue"]["csv"]).is_file()
    bad = subprocess.run(exe + ["--out", str(tmp_path / "x"), "--sky", "fancy"], capture_output=True, text=True)
    assert bad.returncode == 2 and "fancy" in bad.stderr
