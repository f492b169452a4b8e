"""G4 speed path: the coarse pixel map and the one-pass regridding agree with reproject."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from mosaicking_helpers import make_group, sin_wcs

from contimg.mosaicking import MosaicOptions, build_mosaic
from contimg.mosaicking.resample import PixelMap


def test_g4_coarse_pixel_map_within_a_thousandth_pixel_over_four_degrees():
    w_in = sin_wcs(150.0, 55.0, 3000, 5.3)
    w_out = sin_wcs(153.0, 55.2, 4000, 5.3)
    pm = PixelMap(w_in, w_out, (3000, 4000), step=32)
    assert pm.ok
    ys = np.array([0, 17, 1499, 2999])
    xs = np.arange(0, 4000, 7, dtype=float)
    x, y = pm.rows(0, 3000)
    xe, ye = w_in.world_to_pixel_values(*w_out.pixel_to_world_values(xs[None, :], ys[:, None].astype(float)))
    assert np.max(np.abs(x[ys][:, ::7] - xe)) < 1e-3
    assert np.max(np.abs(y[ys][:, ::7] - ye)) < 1e-3


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    g = make_group(tmp_path_factory.mktemp("tiles"), n_tiles=6, n_bright=10, n_faint=4, seed=3)
    nan_tile = g.tiles[2]  # a CASA-like NaN hole in one tile
    from astropy.io import fits

    with fits.open(nan_tile.image_fits, mode="update") as h:
        d = h[0].data
        d[..., 100:120, 100:130] = np.nan
    new = build_mosaic(g.tiles, MosaicOptions())
    old = build_mosaic(g.tiles, dataclasses.replace(MosaicOptions(), regrid="reproject"))
    return g, old, new


def test_g4_one_pass_regridding_matches_reproject_within_half_a_percent(both):
    g, old, new = both
    assert old.image.shape == new.image.shape
    # the same valid area (up to a pixel ring at mask edges)
    assert abs(int(old.valid.sum()) - int(new.valid.sum())) < 0.005 * old.valid.sum()
    both_ok = old.valid & new.valid
    peak = np.nanmax(old.image)
    diff = np.abs(old.image[both_ok] - new.image[both_ok])
    assert np.max(diff) < 0.005 * peak
    # the noise map: identical but for a ring of pixels round the NaN hole, where the
    # two validity rules (cubic validity plane > 0.999 / kernel-reach dilation) differ
    rel = np.abs(old.noise[both_ok] / new.noise[both_ok] - 1)
    assert np.median(rel) < 1e-4 and (rel > 0.005).mean() < 0.005
    # every true source: peak within 0.5 % in both
    for t in g.truth:
        x, y = new.wcs.world_to_pixel_values(t["ra_deg"], t["dec_deg"])
        iy, ix = int(round(float(y))), int(round(float(x)))
        if both_ok[iy - 2:iy + 3, ix - 2:ix + 3].all():
            a = old.image[iy - 2:iy + 3, ix - 2:ix + 3].max()
            b = new.image[iy - 2:iy + 3, ix - 2:ix + 3].max()
            assert b == pytest.approx(a, rel=0.005), t
