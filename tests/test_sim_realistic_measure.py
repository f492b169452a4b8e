"""bench/science_measure.py on a synthetic mosaic made from a realistic truth: the
measurement recovers what was put in (completeness, flux ratio, offsets, noise ratio)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from sim_helpers import run

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import science_measure as sm  # noqa: E402


def _mosaic(path: Path, truth: dict, sigma: float, scale: float = 1.0, rng=None):
    rng = rng or np.random.default_rng(0)
    mid = truth["observations"][len(truth["observations"]) // 2]
    ra0, dec0 = (float(x[0]) for x in sm.simsky.meridian_icrs(np.array([0.5 * (mid["start_jd"] + mid["end_jd"])]),
                                                                 truth["pointing_dec_deg"]))
    n, cell = 900, 4.0 / 3600
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    w.wcs.crval = [ra0, dec0]
    w.wcs.crpix = [n / 2 + 1, n / 2 + 1]
    w.wcs.cdelt = [-cell, cell]
    pad = 25
    img = np.zeros((n + 2 * pad, n + 2 * pad))
    b = 15.0 / 3600 / cell / 2.3548  # beam sigma in pixels
    t = sm._truth_arrays(truth, 1.405e9)
    px, py = w.world_to_pixel_values(t["ra_deg"], t["dec_deg"])
    yy, xx = np.mgrid[-12:13, -12:13]
    for x, y, s, a, bb in zip(px, py, t["flux"], t["maj_arcsec"], t["min_arcsec"]):
        if not (-10 < x < n + 10 and -10 < y < n + 10):
            continue
        sx = np.hypot(b, a / 3600 / cell / 2.3548)
        sy = np.hypot(b, bb / 3600 / cell / 2.3548)
        ix, iy = int(round(x)), int(round(y))
        g = np.exp(-0.5 * (((xx + ix - x) / sx) ** 2 + ((yy + iy - y) / sy) ** 2))
        img[iy - 12 + pad:iy + 13 + pad, ix - 12 + pad:ix + 13 + pad] += scale * s * g * b * b / (sx * sy)
    img = img[pad:-pad, pad:-pad] + rng.normal(0, sigma, (n, n))
    h = w.to_header()
    h["BMAJ"] = h["BMIN"] = 15.0 / 3600
    h["RESTFRQ"] = 1.405e9
    fits.PrimaryHDU(img.astype(np.float32), h).writeto(path)
    fits.PrimaryHDU(np.full((n, n), sigma, np.float32), h).writeto(path.with_name(path.name[:-5] + ".noise.fits"))


@pytest.fixture(scope="module")
def truth(tmp_path_factory):
    _, t = run(tmp_path_factory.mktemp("truth"), nants=4, nchan=1, seed=6, sky="realistic", flux_floor_jy=2e-3,
               observations=1)
    return t


@pytest.mark.parametrize("scale", [1.0, 0.8])
def test_science_measure_recovers_a_synthetic_mosaic(tmp_path, truth, scale):
    p = tmp_path / "mos_x.fits"
    _mosaic(p, truth, 2e-4, scale)
    r = sm.measure_mosaic(p, truth, sigma_obs=2e-4)
    assert r["source_list"].startswith("bench simple finder") and r["n_truth_10sigma"] > 10
    assert r["completeness_10sigma"] > 0.95 and r["false_fraction_10sigma"] < 0.05
    assert abs(r["flux_ratio_median"] - scale) < 0.03 and r["flux_ratio_scatter"] < 0.1  # SNR >= 10 and pixel sampling
    assert r["offset_median_arcsec"] < 1.5
    assert r["flux_scale"] == pytest.approx(scale, abs=0.03)
