"""Quicklook stretch readable without a hand stretch; radiometer QA figure and check."""

from __future__ import annotations

import dataclasses

import numpy as np

from contimg.imaging.quicklook import block_mean, display_norm, display_step, obs_time_label
from contimg.mosaicking import MosaicOptions, Tile
from contimg.mosaicking.catalog import radiometer_figures
from contimg.mosaicking.qa import assess


def test_m1_g5_quicklook_stretch_follows_the_noise_not_a_15_jy_peak():
    rng = np.random.default_rng(1)
    img = rng.normal(0, 1e-3, (400, 400))
    img[200, 200] = 15.0  # a calibrator: used to turn the whole map black
    img[100, 100] = 0.02  # a 20 sigma source
    n = display_norm(img, 1e-3)
    assert float(n(-3e-3)) == 0.0 and float(n(15.0)) >= 1.0  # above the top colour (colour bar "extend")
    assert 0.15 < float(n(3e-3)) < 0.35  # noise visible as texture
    assert float(n(2e-2)) > 0.5  # a 20 sigma source bright
    assert float(n(0.0)) < float(n(3e-3)) < float(n(1e-2)) < float(n(2e-2))
    assert obs_time_label("20250615T034258 (CORRECTED)") == "2025-06-15 03:42:58 UTC"
    assert obs_time_label("obs") == ""


def _tile(noise, t_s=309.0):
    return Tile("o", "a.fits", "b.fits", noise, 15, 12, 0, 1.4e9, 3, 55, start_mjd=60841.0,
                end_mjd=60841.0 + t_s / 86400)


def test_issue15_quicklook_block_means_keep_sources_where_the_wcs_says():
    """A 4500-pixel image is shown as 3 x 3 block means: a source's block sits at the
    source's sky position in the reduced WCS, and its block keeps most of its flux."""
    from astropy.wcs import WCS

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    w.wcs.crval = [198.0, 30.5]
    w.wcs.crpix = [2251.0, 2161.0]
    w.wcs.cdelt = [-3.5 / 3600, 3.5 / 3600]
    img = np.zeros((4320, 4500), np.float32)
    yy, xx = np.mgrid[-6:7, -6:7]
    y0, x0 = 1000, 3001
    img[y0 - 6:y0 + 7, x0 - 6:x0 + 7] = np.exp(-(xx ** 2 + yy ** 2) / (2 * 2.5 ** 2))
    img[:50] = np.nan
    step = display_step(img.shape)
    small, ws = block_mean(img, w, step)
    assert step == 3 and small.shape == (1440, 1500) and np.isnan(small[:16]).all()
    by, bx = np.unravel_index(np.nanargmax(small), small.shape)
    ra, dec = w.pixel_to_world_values(x0, y0)
    px, py = ws.world_to_pixel_values(ra, dec)
    assert (round(float(px)), round(float(py))) == (bx, by)
    assert small[by, bx] > 0.8  # a 2.5-pixel-sigma source keeps its peak within 20 %


def test_g4_radiometer_noise_figure_and_check():
    opts = MosaicOptions(sefd_jy=5800.0, max_radiometer_ratio=3.0)
    expected = 5800.0 / np.sqrt(2 * 96 * 95 / 2 * 187.5e6 * 309.0)
    fig = radiometer_figures([_tile(1.5 * expected), _tile(2.0 * expected), _tile(2.5 * expected)], opts)
    assert abs(fig["radiometer_noise_jy"] / expected - 1) < 1e-9
    assert abs(fig["radiometer_ratio"] - 2.0) < 1e-9
    base = {"noise_jy": 1e-3, "dynamic_range": 100.0, "noise_ratio": 1.0}
    assert assess({**base, **fig}, opts)["status"] == "passed"
    bad = radiometer_figures([_tile(10 * expected)] * 3, opts)
    qa = assess({**base, **bad}, opts)
    assert qa["status"] == "failed" and qa["failed"][0].startswith("radiometer_ratio (tile rms/radiometer noise) 10 > 3")
    # without an SEFD there is no figure and nothing is checked
    none = dataclasses.replace(opts, sefd_jy=None)
    assert radiometer_figures([_tile(expected)], none) == {}
    assert assess(base, none)["status"] == "passed"
