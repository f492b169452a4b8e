"""G4: primary-beam-weighted combination: sources, noise, weights, masks, QA.

Synthetic tiles (tests/mosaicking_helpers.py): 12 drift-scan tiles of 256^2 at
5 arcsec cells, beam 20 x 16 arcsec, each sky point seen by up to ~6 tiles.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from astropy.io import fits
from mosaicking_helpers import analytic_noise, drift_beam, make_group
from scipy.ndimage import maximum_filter

from contimg.mosaicking import MosaicOptions, build_mosaic, combine


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    return make_group(tmp_path_factory.mktemp("tiles"))


@pytest.fixture(scope="module")
def result(group, tmp_path_factory):
    return combine(group.tiles, tmp_path_factory.mktemp("out"), "mos_g4", catalogue=group.truth)


@pytest.fixture(scope="module")
def noise_only(tmp_path_factory):
    """Tiles with noise only (different s_k per tile) and their in-memory mosaic."""
    g = make_group(tmp_path_factory.mktemp("noise"), sources=False, seed=5)
    return g, build_mosaic(g.tiles, MosaicOptions())


def test_g4_sources_above_10_sigma_recovered_within_2_arcsec_and_5_percent(result, group):
    matches = {m["name"]: m for m in result.qa["catalogue"]["matches"]}
    above = [t for t in group.truth if t["snr"] >= 10]
    assert len(above) == len(group.truth) == 36
    assert set(matches) == {t["name"] for t in above}  # every one is expected by the QA
    for t in above:
        m = matches[t["name"]]
        assert m["matched"], t
        if t["snr"] >= 60:  # bright: within 2 arcsec (0.4 pixel) and 5 % of the flux (4 sigma if more)
            assert m["offset_arcsec"] < 2.0, (t, m)
            assert abs(m["flux_ratio"] - 1) < max(0.05, 4.0 / t["snr"]), (t, m)
        else:  # 10-40 sigma: statistics allow ~3-10 % scatter; check it is noise-like
            assert m["offset_arcsec"] < 0.5 * group.beam[0]
            sigma = t["flux_jy"] / t["snr"]
            assert abs(m["found_flux_jy"] - t["flux_jy"]) < 4 * sigma, (t, m)
    bright = [matches[t["name"]] for t in above if t["snr"] >= 60]
    assert np.median([m["offset_arcsec"] for m in bright]) < 0.5
    assert abs(np.median([m["flux_ratio"] for m in bright]) - 1) < 0.01


def test_g4_no_spurious_sources_above_detection_threshold(result, group):
    # the finder (PyBDSF, 5 sigma peaks) on noise-like residuals of ~2e4 beams: at most a
    # couple of false sources, none above 10 sigma; the negated image estimates them
    from astropy.coordinates import SkyCoord

    t = SkyCoord([s["ra_deg"] for s in group.truth], [s["dec_deg"] for s in group.truth], unit="deg")
    f = SkyCoord([s["ra_deg"] for s in result.sources], [s["dec_deg"] for s in result.sources], unit="deg")
    _, sep, _ = f.match_to_catalog_sky(t)
    false = [s for s, d in zip(result.sources, sep.arcsec) if d > 10.0]
    assert len(result.sources) - len(false) == len(group.truth)
    assert len(false) <= 2 and all(s["snr"] < 10 for s in false), false
    assert result.qa["n_negative"] <= 3 and result.qa["false_detection_fraction"] < 0.1
    assert result.qa["catalogue"]["recovery_fraction"] == 1.0


def test_g4_noise_map_is_the_analytic_weight_sum(noise_only, group):
    """Scalar weights give the analytic sum exactly; local rms maps (the default) measure
    each tile's rms in boxes of ~10 beams, so they follow it within their sampling error."""
    g, m = noise_only
    scalar = build_mosaic(g.tiles, MosaicOptions(noise_weighting="scalar"))
    ys, xs = np.nonzero(m.valid)
    pick = np.random.default_rng(0).choice(ys.size, 2000, replace=False)
    ra, dec = m.wcs.pixel_to_world_values(xs[pick], ys[pick])
    expect = analytic_noise(g, ra, dec)
    inner = np.isfinite(expect)  # pixels at the cutoff edge may differ by interpolation
    assert inner.mean() > 0.97
    got = scalar.noise[ys[pick], xs[pick]]
    assert np.median(np.abs(got[inner] / expect[inner] - 1)) < 0.005
    got = m.noise[ys[pick], xs[pick]]
    assert np.median(np.abs(got[inner] / expect[inner] - 1)) < 0.05
    assert abs(np.median(got[inner] / expect[inner]) - 1) < 0.03


def test_g4_overlap_noise_lower_than_single_tiles_as_weights_predict(noise_only):
    g, m = noise_only
    snr = m.image / m.noise  # should be unit-variance everywhere if the weights are right
    single, overlap = m.valid & (m.coverage == 1), m.valid & (m.coverage >= 3)
    assert single.sum() > 2000 and overlap.sum() > 20000
    for region in (single, overlap):
        rms = np.std(snr[region])
        assert abs(rms - 1) < 0.2, rms
    # measured rms against the noise map, in bins of predicted noise
    edges = np.quantile(m.noise[m.valid], [0, 0.2, 0.4, 0.6, 0.8, 1.0])
    for lo, hi in itertools.pairwise(edges):
        sel = m.valid & (m.noise >= lo) & (m.noise <= hi)
        ratio = np.std(m.image[sel]) / np.sqrt(np.mean(m.noise[sel] ** 2))
        assert abs(ratio - 1) < 0.2, (lo, hi, ratio)
    # overlap is deeper than the best single tile at each pixel (s_k / B_k there), by
    # the factor the weights predict: measured improvement = predicted within 20 %
    ys, xs = np.nonzero(overlap)
    ra, dec = m.wcs.pixel_to_world_values(xs, ys)
    single_best = np.min([s / drift_beam(ra, dec, rc, g.dec0, g.step_deg, g.diameter_m)
                          for rc, s in zip(g.ra_centres, g.noise)], axis=0)
    sigma_m = m.noise[ys, xs].astype(float)
    assert np.all(sigma_m < single_best)
    predicted = np.sqrt(np.mean(sigma_m**2) / np.mean(single_best**2))
    measured = np.std(m.image[ys, xs]) / np.sqrt(np.mean(single_best**2))
    assert predicted < 0.75
    assert abs(measured / predicted - 1) < 0.2, (measured, predicted)


def test_g4_pixels_without_a_beam_above_cutoff_are_nan(noise_only):
    g, m = noise_only
    assert np.array_equal(np.isfinite(m.image), m.coverage > 0)
    assert np.array_equal(np.isfinite(m.noise), m.coverage > 0)
    ys, xs = np.nonzero(~m.valid)
    ra, dec = m.wcs.pixel_to_world_values(xs, ys)
    best = np.max([drift_beam(ra, dec, rc, g.dec0, g.step_deg, g.diameter_m) for rc in g.ra_centres], axis=0)
    assert np.all(best < 0.2 + 0.01)  # NaN only where no tile reaches the cutoff
    assert m.valid.sum() > 0.8 * m.valid.size and (~m.valid).sum() > 0


def test_g4_grid_centred_on_members_with_tile_cell(result, group):
    h = fits.getheader(result.mosaic_fits)
    assert h["CTYPE1"] == "RA---SIN" and h["CTYPE2"] == "DEC--SIN"
    assert h["CRVAL1"] == pytest.approx(np.mean(group.ra_centres), abs=1e-6)
    assert h["CRVAL2"] == pytest.approx(group.dec0, abs=0.01)
    assert abs(h["CDELT1"]) * 3600 == pytest.approx(group.cell_arcsec)
    fp = result.footprint
    assert fp["ra_min_deg"] < group.ra_centres[0] and fp["ra_max_deg"] > group.ra_centres[-1]
    assert fp["dec_min_deg"] < group.dec0 < fp["dec_max_deg"]


def test_g4_nan_blanked_tile_region_is_ignored_not_zeroed(tmp_path):
    g = make_group(tmp_path / "t", n_tiles=3, n_bright=6, n_faint=0, seed=9)
    # blank a 40 px box in the middle tile where a source sits: the other tiles
    # must still give the source, and the blanking must not spread (cubic spline)
    opts = MosaicOptions(noise_weighting="scalar")  # local rms boxes would see the hole too
    before = build_mosaic(g.tiles, opts)
    with fits.open(g.tiles[1].image_fits, mode="update") as h:
        h[0].data[..., 100:140, 100:140] = np.nan
    m = build_mosaic(g.tiles, opts)
    assert np.array_equal(m.valid, before.valid)  # the other tiles cover the hole
    lost = before.coverage.astype(int) - m.coverage
    assert set(np.unique(lost)) == {0, 1}
    assert 40 * 40 <= lost.sum() <= 50 * 50  # the hole plus at most ~5 px of spline reach
    far = m.valid & (maximum_filter(lost, size=9) == 0)
    assert np.max(np.abs(m.image[far] - before.image[far])) < 0.05 * np.median(m.noise[m.valid])
    r = combine(g.tiles, tmp_path / "o", "mos_nan", catalogue=g.truth)
    cat = r.qa["catalogue"]
    assert cat["n_matched"] == cat["n_expected"] > 0
    assert all(abs(x["flux_ratio"] - 1) < 0.05 for x in cat["matches"])


def test_g4_qa_fails_on_thresholds_and_on_missed_sources(group, tmp_path):
    # a catalogue source that is not in the data makes recovery < 1; with a strict
    # threshold the mosaic fails QA and says why
    fake = [{"name": "ghost", "ra_deg": 150.0, "dec_deg": group.dec0 + 0.12, "flux_jy": 1.0}]
    opts = MosaicOptions(min_source_recovery_fraction=0.99, max_noise_jy=1e-5)
    r = combine(group.tiles, tmp_path, "mos_qa", opts, catalogue=group.truth + fake)
    assert r.qa["status"] == "failed"
    assert {c["check"] for c in r.qa["checks"] if not c["passed"]} == {"noise_jy", "recovery_fraction"}
    assert any(f.startswith("noise_jy ") and "> max_noise_jy 1e-05" in f for f in r.qa["failed"])
    assert any(f.startswith("recovery_fraction 0.973 < 0.99 (36/37") for f in r.qa["failed"]), r.qa["failed"]
    cat = r.qa["catalogue"]
    assert cat["n_expected"] == 37 and cat["n_matched"] == 36
    assert [x["name"] for x in cat["matches"] if not x["matched"]] == ["ghost"]
    assert fits.getheader(r.mosaic_fits)["QASTATUS"] == "failed"


def test_g4_qa_passes_with_figures(result):
    qa = result.qa
    assert qa["status"] == "passed" and qa["failed"] == []
    assert result.noise_jy == pytest.approx(qa["noise_map_jy_median"])
    assert result.dynamic_range == pytest.approx(result.peak_jy / result.noise_jy)
    assert 0.85 < qa["noise_ratio"] < 1.15
    assert result.dynamic_range > 500
