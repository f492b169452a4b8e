"""Synthetic drift-scan tiles for the mosaicking tests (no CASA).

A scaled-down DSA-110 hour: N tiles of 256^2 pixels along one declination, each
shifted in RA by the sky drift of one observation. The dish diameter is scaled up
(``scale``) so that the beam-limited field shrinks by the same factor as the RA
step, keeping the real overlap geometry (each sky point seen by ~6 tiles) while
the synthesized beam keeps ~4 pixels per FWHM. Per tile:

    B_k = Airy power (contimg.astro.beam) averaged over the drift of the observation
    I_k = sum_src B_k(src) S_src PSF(x - x_src) + n_k,   n_k = white noise * PSF, rms s_k

The noise is convolved with the PSF (as in a real image, where noise is correlated
on the beam scale) and scaled to exactly s_k. Everything the tests compare with is
computed here analytically, independently of contimg.mosaicking.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from scipy.signal import fftconvolve

from contimg.astro.beam import airy_power
from contimg.mosaicking import Tile

FREQ = 1.4e9
DRIFT_DEG = 309.0 / 240.0  # RA drift of one 309 s observation (15 arcsec/s)


@dataclass
class Group:
    tiles: list[Tile]
    truth: list[dict]  # name, ra_deg, dec_deg, flux_jy, snr (analytic, in the mosaic)
    ra_centres: np.ndarray
    dec0: float
    diameter_m: float
    step_deg: float
    noise: np.ndarray
    cell_arcsec: float
    beam: tuple[float, float, float]


def sin_wcs(ra, dec, n, cell_arcsec) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    w.wcs.crval = [ra, dec]
    w.wcs.cdelt = [-cell_arcsec / 3600.0, cell_arcsec / 3600.0]
    w.wcs.crpix = [n / 2 + 1, n / 2 + 1]
    w.wcs.radesys = "ICRS"
    return w


def sep_rad(ra1, dec1, ra2, dec2):
    """Great-circle separation (deg inputs, rad output), broadcasting."""
    r1, d1, r2, d2 = (np.radians(v) for v in (ra1, dec1, ra2, dec2))
    c = np.sin(d1) * np.sin(d2) + np.cos(d1) * np.cos(d2) * np.cos(r1 - r2)
    return np.arccos(np.clip(c, -1, 1))


def drift_beam(ra, dec, ra_c, dec0, step_deg, diameter_m, n_t: int = 16):
    """Effective beam of one observation: Airy power averaged over the RA drift."""
    offs = (np.arange(n_t) + 0.5) / n_t * step_deg - step_deg / 2
    ra, dec = np.asarray(ra, float)[..., None], np.asarray(dec, float)[..., None]
    return airy_power(sep_rad(ra, dec, ra_c + offs, dec0), FREQ, diameter_m).mean(axis=-1)


def psf(dx, dy, bmaj_px, bmin_px, pa_deg):
    """Elliptical Gaussian, peak 1; PA east of north (east = -x, north = +y)."""
    pa = np.radians(pa_deg)
    a = -dx * np.sin(pa) + dy * np.cos(pa)
    b = dx * np.cos(pa) + dy * np.sin(pa)
    return np.exp(-4 * np.log(2) * ((a / bmaj_px) ** 2 + (b / bmin_px) ** 2))


def analytic_noise(group: Group, ra, dec, cutoff: float = 0.2):
    """sigma_M = 1/sqrt(sum_k B_k^2/s_k^2) over tiles with B_k >= cutoff (inf if none)."""
    acc = 0.0
    for ra_c, s in zip(group.ra_centres, group.noise):
        b = drift_beam(ra, dec, ra_c, group.dec0, group.step_deg, group.diameter_m)
        acc = acc + np.where(b >= cutoff, b * b / s**2, 0.0)
    with np.errstate(divide="ignore"):
        return 1.0 / np.sqrt(acc)


def _write(path: Path, data, w: WCS, beam, four_d: bool):
    h = w.to_header()
    if four_d:  # CASA-style (RA, Dec, Stokes, Freq) cube with degenerate axes
        h["CTYPE3"], h["CRVAL3"], h["CDELT3"], h["CRPIX3"] = "STOKES", 1.0, 1.0, 1.0
        h["CTYPE4"], h["CRVAL4"], h["CDELT4"], h["CRPIX4"] = "FREQ", FREQ, 1.875e8, 1.0
        data = data[None, None]
    h["BUNIT"] = "Jy/beam"
    h["BMAJ"], h["BMIN"], h["BPA"] = beam[0] / 3600, beam[1] / 3600, beam[2]
    fits.PrimaryHDU(data.astype(np.float32), h).writeto(path, overwrite=True)


def make_group(out: Path, n_tiles: int = 12, npix: int = 256, cell_arcsec: float = 5.0, dec0: float = 55.0,
               scale: float = 14.0, beam=(20.0, 16.0, 30.0), noise0: float = 1e-3, n_bright: int = 24,
               n_faint: int = 12, seed: int = 1, sources: bool = True) -> Group:
    """Write ``n_tiles`` tiles (image + pb FITS) into ``out`` with known sources."""
    rng = np.random.default_rng(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    step = DRIFT_DEG / scale
    diameter = 4.65 * scale
    ra_c = 150.0 + (np.arange(n_tiles) - (n_tiles - 1) / 2) * step
    noise = noise0 * (1.0 + 0.05 * np.arange(n_tiles))
    g = Group([], [], ra_c, dec0, diameter, step, noise, cell_arcsec, beam)
    if sources:
        g.truth = _place_sources(g, rng, n_bright, n_faint, cell_arcsec)
    bmaj_px, bmin_px = beam[0] / cell_arcsec, beam[1] / cell_arcsec
    k = np.arange(-12, 13)
    kern = psf(k[None, :], k[:, None], bmaj_px, bmin_px, beam[2])
    yy, xx = np.mgrid[0:npix, 0:npix]
    for i, (rc, s) in enumerate(zip(ra_c, noise)):
        w = sin_wcs(rc, dec0, npix, cell_arcsec)
        ra, dec = w.pixel_to_world_values(xx, yy)
        pb = drift_beam(ra, dec, rc, dec0, step, diameter)
        n = fftconvolve(rng.normal(size=(npix, npix)), kern, mode="same")
        img = n * (s / n.std())
        if g.truth:
            sra = np.array([t["ra_deg"] for t in g.truth])
            sdec = np.array([t["dec_deg"] for t in g.truth])
            sx, sy = w.world_to_pixel_values(sra, sdec)
            amp = np.array([t["flux_jy"] for t in g.truth]) * drift_beam(sra, sdec, rc, dec0, step, diameter)
            near = (sx > -20) & (sx < npix + 20) & (sy > -20) & (sy < npix + 20)
            for x0, y0, a in zip(sx[near], sy[near], amp[near]):  # few sources: stamps are cheap
                img += a * psf(xx - x0, yy - y0, bmaj_px, bmin_px, beam[2])
        name = f"obs{i:02d}"
        ip, pp = out / f"{name}.image.fits", out / f"{name}.pb.fits"
        _write(ip, img, w, beam, four_d=bool(i % 2))
        _write(pp, pb, w, beam, four_d=bool(i % 2))
        g.tiles.append(Tile(name, ip, pp, float(s), beam[0], beam[1], beam[2], FREQ, cell_arcsec, dec0))
    return g


def _place_sources(g: Group, rng, n_bright: int, n_faint: int, cell: float) -> list[dict]:
    """Positions >= 6 beams apart inside the strip; fluxes set from the analytic mosaic
    noise so that bright ones have S/N 60-2000 and faint ones 10-40."""
    ra_lo, ra_hi = g.ra_centres[0], g.ra_centres[-1]
    half_dec = 0.09
    pos: list[tuple[float, float]] = []
    min_sep = 6 * g.beam[0] / 3600.0
    while len(pos) < n_bright + n_faint:
        ra, dec = rng.uniform(ra_lo, ra_hi), g.dec0 + rng.uniform(-half_dec, half_dec)
        if all(np.degrees(sep_rad(ra, dec, r, d)) > min_sep for r, d in pos):
            pos.append((ra, dec))
    ra, dec = np.array(pos).T
    sig = analytic_noise(g, ra, dec)
    snr = np.concatenate([np.exp(rng.uniform(np.log(60), np.log(2000), n_bright)),
                          rng.uniform(10, 40, n_faint)])
    return [{"name": f"src{i:02d}", "ra_deg": float(r), "dec_deg": float(d), "flux_jy": float(q * s),
             "snr": float(q)} for i, (r, d, s, q) in enumerate(zip(ra, dec, sig, snr))]
