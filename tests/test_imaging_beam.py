"""Effective primary beam, w-term remap and source finder (numpy only, no CASA).

The direct averages here follow a source's apparent track through astropy's ITRS
transformation (contimg.sim.sky.apparent_hadec), independent of the precession-
nutation matrix that contimg.imaging.pbeam uses.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.wcs import WCS
from imaging_helpers import DEC0, DURATION_S, START_ISO, field_centre, offset_source

from contimg.astro import times
from contimg.astro.beam import airy_power, beam_power
from contimg.astro.catalog import Source
from contimg.imaging import beam_on_wcs, effective_beam, find_sources
from contimg.imaging.geometry import good_size
from contimg.imaging.pbeam import band_samples, field_extent_deg
from contimg.imaging.wterm import correct_image, distorted_pixels, fit_plane
from contimg.sim import sky

START_MJD = float(times.jd_to_mjd(times.iso_to_jd(START_ISO)))
END_MJD = START_MJD + DURATION_S / 86400
FREQS = band_samples(1311.25e6, 1498.75e6, 8)


def direct_average(ra_deg: float, dec_deg: float, start_mjd: float, end_mjd: float, n: int = 400) -> float:
    """mean over t in [start, end] (n midpoints) and over FREQS of the Airy power."""
    src = Source(name="p", ra_deg=ra_deg, dec_deg=dec_deg, flux_jy=1.0)
    t = start_mjd + (np.arange(n) + 0.5) * (end_mjd - start_mjd) / n
    ha, dec = sky.apparent_hadec(src, times.mjd_to_jd(t))
    return float(beam_power(ha[:, None], dec[:, None], np.radians(DEC0), FREQS[None, :]).mean())


@pytest.mark.parametrize("l_deg,m_deg", [(0.0, 0.0), (0.0, 1.2), (1.4, 0.3), (-1.0, -0.9), (-2.0, 1.5)])
def test_m1_effective_beam_equals_direct_time_and_band_average(l_deg, m_deg):
    _, ra_c, dec_c = field_centre()
    ra, dec = offset_source(ra_c, dec_c, np.radians(l_deg), np.radians(m_deg))
    got = effective_beam(ra, dec, pointing_dec_deg=DEC0, start_mjd=START_MJD, end_mjd=END_MJD,
                         freqs_hz=FREQS)
    want = direct_average(ra, dec, START_MJD, END_MJD)
    assert abs(got - want) < 2e-4, (got, want)


def test_m1_effective_beam_at_phase_centre_is_below_one_but_airy_at_transit():
    _, ra_c, dec_c = field_centre()
    kw = {"pointing_dec_deg": DEC0, "freqs_hz": FREQS}
    centre = effective_beam(ra_c, dec_c, start_mjd=START_MJD, end_mjd=END_MJD, **kw)
    # the centre is the meridian at mid time: it drifts +-0.37 deg through the beam
    assert 0.95 < centre < 0.995
    # a zero-length span at the centre's transit (mid time) is the Airy pattern itself: 1
    mid = 0.5 * (START_MJD + END_MJD)
    assert effective_beam(ra_c, dec_c, start_mjd=mid, end_mjd=mid, **kw) == pytest.approx(1.0, abs=1e-6)
    # ...and 1 deg north of it, the band-averaged Airy at 1 deg
    ra_n, dec_n = offset_source(ra_c, dec_c, 0.0, np.radians(1.0))
    airy = airy_power(np.radians(1.0), FREQS).mean()
    assert effective_beam(ra_n, dec_n, start_mjd=mid, end_mjd=mid, **kw) == pytest.approx(airy, abs=2e-4)


def test_m1_beam_on_grid_spline_matches_exact_pixels():
    _, ra_c, dec_c = field_centre()
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    w.wcs.crval = [ra_c, dec_c]
    w.wcs.crpix = [601, 501]
    w.wcs.cdelt = [-12 / 3600, 12 / 3600]
    kw = {"pointing_dec_deg": DEC0, "start_mjd": START_MJD, "end_mjd": END_MJD, "freqs_hz": FREQS}
    pb = beam_on_wcs(w, (1000, 1200), **kw)
    rng = np.random.default_rng(5)
    y, x = rng.integers(0, 1000, 300), rng.integers(0, 1200, 300)
    ra, dec = w.all_pix2world(x, y, 0)
    assert np.abs(pb[y, x] - effective_beam(ra, dec, **kw)).max() < 1e-5
    # wider in RA than in Dec (the drift), 20 % contour ~4 deg across at 1.4 GHz
    wl, wm = field_extent_deg(ra_c, dec_c, 0.2, **kw)
    assert 3.8 < wm < 4.4 and wm <= wl < wm + 0.6, (wl, wm)


def test_m1_wterm_remap_and_plane_fit():
    # w = a u + b v exactly (plus 0.5 m of scatter): fit_plane recovers a and b
    rng = np.random.default_rng(2)
    u, v = rng.uniform(-2000, 2000, (2, 4000))
    t = np.repeat(np.arange(4), 1000)
    w = 0.01 * u + 0.32 * v + rng.normal(0, 0.5, 4000)
    plane = fit_plane(np.stack([u, v, w]), t)
    assert plane["a"] == pytest.approx(0.01, abs=1e-3) and plane["b"] == pytest.approx(0.32, abs=1e-3)
    assert plane["resid_rms_m"] == pytest.approx(0.5, rel=0.1)
    # a Gaussian drawn where an uncorrected image puts a source 1.5 deg north moves back
    ny, nx, cell = 400, 400, 40 / 3600
    crpix, cdelt = (201.0, 201.0), (-cell, cell)
    y_true, x_true = 200 + 1.5 / cell * 0.5, 200.0  # 0.75 deg north (inside the 4.4 deg image)
    yp, xp = distorted_pixels((ny, nx), crpix, cdelt, 0.0, 0.32)
    y_dist, x_dist = yp[int(y_true), int(x_true)], xp[int(y_true), int(x_true)]
    assert abs(y_dist - y_true) * cell * 3600 > 5  # the w-term shift is several arcsec
    yy, xx = np.mgrid[0:ny, 0:nx]
    sig = 2.0
    img = np.exp(-((yy - y_dist) ** 2 + (xx - x_dist) ** 2) / (2 * sig**2))
    fixed = correct_image(img, crpix, cdelt, 0.0, 0.32)
    y_pk, x_pk = np.unravel_index(np.argmax(fixed), fixed.shape)
    assert (y_pk, x_pk) == (int(y_true), int(x_true))
    assert fixed.max() == pytest.approx(1.0, abs=0.01)


def test_m1_find_sources_subpixel_position_and_peak():
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    w.wcs.crval = [120.0, 55.0]
    w.wcs.crpix = [101, 101]
    w.wcs.cdelt = [-5 / 3600, 5 / 3600]
    yy, xx = np.mgrid[0:200, 0:200]
    rng = np.random.default_rng(1)
    img = rng.normal(0, 0.001, (200, 200))
    truth = [(60.4, 70.3, 1.0), (140.7, 120.5, 0.2), (30.0, 150.6, 0.05)]
    sig = 18 / 2.3548 / 5  # 18 arcsec FWHM in pixels
    for y, x, s in truth:
        img += s * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * sig**2))
    pb = np.full(img.shape, 0.5)
    found = find_sources(img, w, 0.001, snr=10, pb=pb)
    assert len(found) == 3
    for (y, x, s), f in zip(truth, found):
        assert abs(f["y"] - y) < 0.1 and abs(f["x"] - x) < 0.1
        assert f["peak_jy"] == pytest.approx(s, rel=0.02) and f["flux_jy"] == pytest.approx(2 * s, rel=0.02)
        ra, dec = w.all_pix2world([[x, y]], 0)[0]
        d_arcsec = np.hypot((f["ra_deg"] - ra) * np.cos(np.radians(dec)), f["dec_deg"] - dec) * 3600
        assert d_arcsec < 0.6  # 0.12 pixel
    assert find_sources(img, w, 0.001, snr=10, pb=np.full(img.shape, 0.1)) == []
    # a bump inside a patch of uncleaned sidelobes (residual rms 20 mJy) is not a source
    # when the residual is given; the true sources still are
    resid = rng.normal(0, 0.001, img.shape)
    resid[150:200, 0:50] = rng.normal(0, 0.02, (50, 50))
    img[170, 20] += 0.05
    assert len(find_sources(img, w, 0.001, snr=10)) == 4
    kept = find_sources(img, w, 0.001, snr=10, residual=resid, box=50)
    assert [round(f["y"]) for f in kept] == [60, 141, 30]


def test_m1_good_fft_sizes():
    assert [good_size(n) for n in (1, 2781, 2880, 3001)] == [2, 2880, 2880, 3072]
