"""G4: local-rms weighting and the common restoring beam of a mosaic.

Local weighting: a member whose residual is artefact-limited over part of its field is
down-weighted there, and the mosaic's noise map says how noisy that part really is.
Common beam: every member restored with one beam that contains all of theirs, so the
header beam is every CLEANed source's, point sources keep their peak, and the residual
(uncleaned sources, noise) is not convolved.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from astropy.io import fits
from mosaicking_helpers import make_group

from contimg.mosaicking import MosaicOptions, build_mosaic
from contimg.mosaicking.commonbeam import beam_covariance, beam_of_covariance, common_beam, convolve_to, restore_to


def _gauss(beam, x0, y0, shape, cell):
    y, x = np.mgrid[0:shape[0], 0:shape[1]]
    c = np.linalg.inv(beam_covariance(*beam) / cell**2)
    dx, dy = x - x0, y - y0
    return np.exp(-0.5 * (c[0, 0] * dx * dx + 2 * c[0, 1] * dx * dy + c[1, 1] * dy * dy))


def test_g4_beam_covariance_round_trips_and_position_angle_is_east_of_north():
    for b in ((60.0, 41.0, -89.0), (55.0, 42.0, 30.0), (22.0, 17.0, 40.0)):
        assert beam_of_covariance(beam_covariance(*b)) == pytest.approx(b)
    # PA 0: major axis north (+y); PA 90: east (-x on a standard RA axis), i.e. along x
    assert beam_covariance(30.0, 10.0, 0.0)[1, 1] > beam_covariance(30.0, 10.0, 0.0)[0, 0]
    assert beam_covariance(30.0, 10.0, 90.0)[0, 0] > beam_covariance(30.0, 10.0, 90.0)[1, 1]
    # a Gaussian at PA 45 (north-east) rises towards -x, +y: x and y anti-correlated
    assert beam_covariance(30.0, 10.0, 45.0)[0, 1] < 0


def test_g4_common_beam_contains_every_member_of_a_realistic_hour():
    beams = [(54.6, 42.5, -89.3), (60.9, 40.4, -88.0), (57.0, 42.9, -85.0), (58.1, 41.0, -90.0)]
    c = common_beam(beams)
    for b in beams:
        assert np.linalg.eigvalsh(beam_covariance(*c) - beam_covariance(*b))[0] > -1e-9
    # not grossly larger than the envelope of the axes
    assert 60.9 <= c[0] < 62.0 and 42.9 <= c[1] < 44.0


def test_g4_convolution_to_common_beam_keeps_point_source_peaks_exactly():
    cell, shape = 5.3, (200, 240)
    target = common_beam([(54.6, 42.5, -89.3), (60.9, 40.4, -88.0), (57.0, 42.9, -85.0)])
    for own in ((54.6, 42.5, -89.3), (60.9, 40.4, -88.0), (57.0, 42.9, -85.0)):
        img = 2.0 * _gauss(own, 120.3, 95.7, shape, cell)
        out = convolve_to(img, own, target, cell)
        assert np.abs(out - 2.0 * _gauss(target, 120.3, 95.7, shape, cell)).max() < 1e-5
    with pytest.raises(ValueError, match="not contained"):
        convolve_to(img, target, (40.0, 30.0, 0.0), cell)


def test_g4_restore_to_convolves_the_clean_part_only():
    cell, shape = 5.3, (160, 160)
    own, target = (50.0, 40.0, 10.0), (60.0, 45.0, 0.0)
    tile = type("T", (), {"beam_major_arcsec": own[0], "beam_minor_arcsec": own[1], "beam_pa_deg": own[2],
                          "cell_arcsec": cell, "name": "t"})()
    residual = np.random.default_rng(3).normal(0, 1e-3, shape).astype(np.float32)
    clean = 1.5 * _gauss(own, 80.0, 80.0, shape, cell)
    out = restore_to((clean + residual).astype(np.float32), residual, tile, target)
    assert np.abs(out - residual - 1.5 * _gauss(target, 80.0, 80.0, shape, cell)).max() < 1e-4
    whole = restore_to((clean + residual).astype(np.float32), None, tile, target)
    assert np.std(whole - out) > 1e-4  # without a residual the noise is convolved too


def _artefact_group(tmp_path):
    """Three noise-only tiles; the middle one has 5x the noise over a 60 px square
    (artefacts around a bright source), which its scalar rms hardly shows."""
    g = make_group(tmp_path / "t", n_tiles=3, sources=False, seed=11)
    with fits.open(g.tiles[1].image_fits, mode="update") as h:
        d = h[0].data
        patch = d[..., 98:158, 98:158]
        d[..., 98:158, 98:158] = patch * 5.0
    return g


def _patch_pixels(m, tile):
    """Mosaic pixels inside the middle tile's noisy square."""
    from contimg.mosaicking.tiles import read_wcs

    w = read_wcs(tile.image_fits)
    ys, xs = np.nonzero(m.valid)
    ra, dec = m.wcs.pixel_to_world_values(xs, ys)
    tx, ty = w.world_to_pixel_values(ra, dec)
    inside = (tx > 108) & (tx < 148) & (ty > 108) & (ty < 148)
    return ys[inside], xs[inside]


def test_g4_local_weighting_downweights_an_artefact_region_and_the_noise_map_shows_it(tmp_path):
    g = _artefact_group(tmp_path)
    scalar = build_mosaic(g.tiles, MosaicOptions(noise_weighting="scalar"))
    local = build_mosaic(g.tiles, MosaicOptions())
    ys, xs = _patch_pixels(local, g.tiles[1])
    assert ys.size > 500
    rms_scalar, rms_local = np.std(scalar.image[ys, xs]), np.std(local.image[ys, xs])
    assert rms_local < 0.6 * rms_scalar  # the other tiles carry the region
    # the noise map is honest where the artefacts are: image / noise has unit rms there
    assert np.std(local.image[ys, xs] / local.noise[ys, xs]) == pytest.approx(1.0, abs=0.25)
    assert np.std(scalar.image[ys, xs] / scalar.noise[ys, xs]) > 1.8  # the scalar map understates it


def test_g4_local_weighting_uses_the_residual_when_there_is_one(tmp_path):
    """A residual file beside the image: its rms, not the image's, weights the tile."""
    g = make_group(tmp_path / "t", n_tiles=3, sources=False, seed=12)
    t = g.tiles[1]
    res_path = t.image_fits.with_name("obs01.residual.fits")
    with fits.open(t.image_fits) as h:
        fits.writeto(res_path, h[0].data * 4.0, h[0].header)  # says: 4x noisier than the image shows
    tiles = list(g.tiles)
    tiles[1] = dataclasses.replace(t, residual_fits=res_path)
    plain = build_mosaic(g.tiles, MosaicOptions(common_beam=False))
    with_res = build_mosaic(tiles, MosaicOptions(common_beam=False))
    ys, xs = _patch_pixels(with_res, t)
    assert np.median(with_res.noise[ys, xs]) > 1.2 * np.median(plain.noise[ys, xs])


def test_g4_common_beam_mosaic_keeps_peaks_of_members_with_different_beams(tmp_path):
    g = make_group(tmp_path / "t", n_tiles=3, n_bright=6, n_faint=0, seed=9, noise0=1e-5)
    tiles = list(g.tiles)
    # re-write the middle tile with a larger beam: its sources are broader
    wide = (24.0, 18.0, 50.0)
    t = tiles[1]
    with fits.open(t.image_fits) as h:
        data, hdr = np.squeeze(h[0].data).astype(float), h[0].header
    conv = convolve_to(data, (t.beam_major_arcsec, t.beam_minor_arcsec, t.beam_pa_deg), wide, t.cell_arcsec)
    p = t.image_fits.with_name("obs01.wide.fits")
    fits.writeto(p, conv.astype(np.float32), hdr)
    tiles[1] = dataclasses.replace(t, image_fits=p, beam_major_arcsec=wide[0], beam_minor_arcsec=wide[1],
                                   beam_pa_deg=wide[2])
    m = build_mosaic(tiles, MosaicOptions(noise_weighting="scalar"))
    assert m.beam[0] >= 24.0 - 1e-9 and m.beam[1] >= 18.0 - 1e-9
    n = 0
    for src in g.truth:
        x, y = (float(v) for v in m.wcs.world_to_pixel_values(src["ra_deg"], src["dec_deg"]))
        ix, iy = int(round(x)), int(round(y))
        if not (3 <= ix < m.image.shape[1] - 3 and 3 <= iy < m.image.shape[0] - 3) or not m.valid[iy, ix]:
            continue
        # the brightest pixel of a common-beam Gaussian of the true flux at the true position
        shape = (5, 5)
        expect = src["flux_jy"] * _gauss(m.beam, x - (ix - 2), y - (iy - 2), shape, 5.0).max()
        assert np.nanmax(m.image[iy - 2:iy + 3, ix - 2:ix + 3]) == pytest.approx(expect, rel=0.015), src
        n += 1
    assert n >= 4
