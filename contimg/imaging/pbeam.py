"""Effective primary beam of one drift-scan observation.

The dishes stay on the meridian at the pointing declination while the sky drifts,
so a sky position at apparent (RA, Dec) is seen through the Airy pattern at hour
angles LST(t) - RA for t in [start, end].  Its effective beam is that pattern
averaged over the observation and over the band (the MFS image averages all
channels and integrations with about equal weights):

    B_eff(RA, Dec) = mean_t mean_nu A(theta(LST(t) - RA, Dec), nu)

The time average uses the midpoint rule with ``n_times`` samples (24 = the
integration midpoints of a 309 s observation) and the band average equally weighted
frequency samples, folded into one tabulated radial profile mean_nu A(theta, nu).
ICRS pixel positions are taken to the apparent frame of date by the IAU 2006/2000A
bias-precession-nutation matrix, plus a small rotation (aberration, ~20 arcsec)
fixed at the field centre from astropy's exact ICRS -> TETE transformation; the
differential aberration across a 5 deg field is ~1 arcsec, far below the beam scale.
"""

from __future__ import annotations

import erfa
import numpy as np
from astropy import units as u
from astropy.coordinates import ICRS, TETE, SkyCoord
from astropy.time import Time

from contimg.astro import times
from contimg.astro.beam import airy_power
from contimg.astro.site import DISH_DIAMETER_M, dsa110_location

DSA_BAND_HZ = (1311.25e6, 1498.75e6)
N_PROFILE = 8192
CHUNK = 200_000  # pixels per block: n_times x CHUNK float64 temporaries stay ~40 MB


def band_samples(f_lo_hz: float, f_hi_hz: float, n: int = 8) -> np.ndarray:
    """``n`` equally weighted frequencies: midpoints of n equal slices of [f_lo, f_hi]."""
    return f_lo_hz + (np.arange(n) + 0.5) * (f_hi_hz - f_lo_hz) / n


def _unit(ra_rad, dec_rad) -> np.ndarray:
    cd = np.cos(dec_rad)
    return np.stack([cd * np.cos(ra_rad), cd * np.sin(ra_rad), np.sin(dec_rad)], axis=0)


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotation matrix taking unit vector a onto unit vector b (Rodrigues)."""
    axis = np.cross(a, b)
    s, c = np.linalg.norm(axis), float(np.dot(a, b))
    if s < 1e-15:
        return np.eye(3)
    k = axis / s
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * kx + (1 - c) * kx @ kx


def icrs_to_apparent(ra_deg, dec_deg, mjd: float) -> tuple[np.ndarray, np.ndarray]:
    """ICRS (deg) -> apparent RA, Dec of date (rad) at the array, vectorised (see module doc)."""
    times.configure_astropy_offline()
    ra = np.radians(np.asarray(ra_deg, float))
    dec = np.radians(np.asarray(dec_deg, float))
    t = Time(mjd, format="mjd", scale="utc")
    rbpn = erfa.pnm06a(t.tt.jd1, t.tt.jd2)
    # aberration etc.: rotation fixed at the centre so it matches astropy's TETE exactly there
    v_c = _unit(np.radians(np.nanmean(ra_deg)), np.radians(np.nanmean(dec_deg)))
    c = SkyCoord(ra=np.nanmean(ra_deg) * u.deg, dec=np.nanmean(dec_deg) * u.deg, frame=ICRS())
    app = c.transform_to(TETE(obstime=t, location=dsa110_location()))
    rot = _rotation_between(rbpn @ v_c, _unit(app.ra.rad, app.dec.rad)) @ rbpn
    v = np.tensordot(rot, _unit(ra, dec), axes=1)
    return np.arctan2(v[1], v[0]), np.arcsin(np.clip(v[2], -1.0, 1.0))


def band_profile(freqs_hz, diameter_m: float = DISH_DIAMETER_M, theta_max_rad: float = np.pi / 2):
    """Radial profile (theta grid, mean over freqs of the Airy power) for np.interp."""
    theta = np.linspace(0.0, theta_max_rad, N_PROFILE)
    prof = airy_power(theta[:, None], np.asarray(freqs_hz, float)[None, :], diameter_m).mean(axis=1)
    return theta, prof


def effective_beam(ra_deg, dec_deg, *, pointing_dec_deg: float, start_mjd: float, end_mjd: float,
                   freqs_hz=None, n_times: int = 24, diameter_m: float = DISH_DIAMETER_M) -> np.ndarray:
    """Time- and band-averaged Airy power at ICRS positions (any shape; NaN stays NaN).

    freqs_hz: frequency samples weighted equally (default: 8 across 1311-1499 MHz).
    start_mjd == end_mjd gives the instantaneous band-averaged beam.
    """
    ra_deg = np.asarray(ra_deg, float)
    dec_deg = np.asarray(dec_deg, float)
    shape = np.broadcast_shapes(ra_deg.shape, dec_deg.shape)
    ra_f = np.broadcast_to(ra_deg, shape).ravel()
    dec_f = np.broadcast_to(dec_deg, shape).ravel()
    freqs = band_samples(*DSA_BAND_HZ) if freqs_hz is None else np.atleast_1d(freqs_hz)
    mid = 0.5 * (start_mjd + end_mjd)
    ok = np.isfinite(ra_f) & np.isfinite(dec_f)
    out = np.full(ra_f.size, np.nan)
    if not ok.any():
        return out.reshape(shape)
    ra_app, dec_app = icrs_to_apparent(ra_f[ok], dec_f[ok], mid)
    t_mjd = start_mjd + (np.arange(n_times) + 0.5) * (end_mjd - start_mjd) / n_times
    lst = times.apparent_lst_rad(times.mjd_to_jd(t_mjd))
    theta_grid, prof = band_profile(freqs, diameter_m)
    d0 = np.radians(pointing_dec_deg)
    sd0, cd0 = np.sin(d0), np.cos(d0)
    res = np.empty(ra_app.size)
    for a in range(0, ra_app.size, CHUNK):
        b = min(a + CHUNK, ra_app.size)
        sd, cd = np.sin(dec_app[a:b]), np.cos(dec_app[a:b])
        cos_t = sd[:, None] * sd0 + (cd * cd0)[:, None] * np.cos(lst[None, :] - ra_app[a:b, None])
        theta = np.arccos(np.clip(cos_t, -1.0, 1.0))
        res[a:b] = np.interp(theta, theta_grid, prof, right=0.0).mean(axis=1)
    out[ok] = res
    return out.reshape(shape)


def _coarse_grid(shape: tuple[int, int], step: int):
    """Every ``step``-th row and column index of an (ny, nx) grid, the edges included
    (all of them if step <= 1 or the grid is small)."""
    ny, nx = shape
    ys = np.unique(np.append(np.arange(0, ny, max(1, step)), ny - 1))
    xs = np.unique(np.append(np.arange(0, nx, max(1, step)), nx - 1))
    if ys.size < 4 or xs.size < 4 or step <= 1:
        ys, xs = np.arange(ny), np.arange(nx)
    return ys, xs


def _to_full(ys, xs, coarse: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bicubic spline of a coarse map onto every pixel (the coarse map itself if full)."""
    from scipy.interpolate import RectBivariateSpline

    ny, nx = shape
    if ys.size == ny and xs.size == nx:
        return coarse
    return RectBivariateSpline(ys, xs, coarse, kx=3, ky=3)(np.arange(ny), np.arange(nx))


def beam_on_wcs(wcs2d, shape: tuple[int, int], step: int = 16, **kw) -> np.ndarray:
    """Effective beam on an image grid (ny, nx) given its celestial astropy WCS.

    Evaluated exactly on every ``step``-th pixel (edges included) and bicubic-spline
    interpolated in between: the beam varies on degree scales, so with steps of a
    few arcmin the spline error is < 1e-5 while the cost drops ~step^2 (a 3000^2
    image: ~1 s instead of ~30 s).  step=1 evaluates every pixel.
    """
    ys, xs = _coarse_grid(shape, step)
    xx, yy = np.meshgrid(xs, ys)
    ra, dec = wcs2d.all_pix2world(xx, yy, 0)
    return np.clip(_to_full(ys, xs, effective_beam(ra, dec, **kw), shape), 0.0, 1.0)


class DriftRatios:
    """Primary beam of each time interval over the observation's mean beam, per band,
    kept on a coarse pixel grid and evaluated where it is needed (at the model's
    non-zero pixels, deconvolve.predict): full maps would cost n_intervals x n_bands
    images of memory for a factor that varies on degree scales.

    ``at(k, j, ys, xs)``: the ratio of interval k, band j at pixels (ys, xs), float32.
    """

    def __init__(self, ys: np.ndarray, xs: np.ndarray, coarse: np.ndarray):
        from scipy.interpolate import RectBivariateSpline

        self.n_intervals, self.n_bands = coarse.shape[:2]
        order = 3 if min(ys.size, xs.size) >= 4 else 1
        self._splines = [[RectBivariateSpline(ys, xs, coarse[k, j], kx=order, ky=order)
                          for j in range(self.n_bands)] for k in range(self.n_intervals)]

    def at(self, k: int, j: int, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        return self._splines[k][j].ev(ys, xs).astype(np.float32)


def drift_ratios(wcs2d, shape: tuple[int, int], *, spans_mjd: list, weights, bands_hz: list,
                 pointing_dec_deg: float, step: int = 16, floor: float = 1e-3) -> DriftRatios:
    """Beam of each time interval over the observation's mean beam, per band (DriftRatios).

    A source off the meridian drifts through the primary beam during an observation, so
    the visibilities of interval k see B_k, not the observation's mean B; a model of the
    mean apparent sky predicts interval k's visibilities exactly when multiplied by
    B_k / B (deconvolve.clean).  spans_mjd: (start, end) of each interval, taken from
    the data so that gaps are honoured; weights: each interval's share of the data (B is
    their weighted mean); bands_hz: frequency samples of each band (equal weights).
    Where B < floor x its peak the ratio is 1 (nothing is seen there).
    """
    ys, xs = _coarse_grid(shape, step)
    xx, yy = np.meshgrid(xs, ys)
    ra, dec = wcs2d.all_pix2world(xx, yy, 0)
    w = np.asarray(weights, float)
    w = w / w.sum()
    coarse = np.empty((len(spans_mjd), len(bands_hz), ys.size, xs.size))
    for j, freqs in enumerate(bands_hz):
        b = np.stack([np.nan_to_num(effective_beam(
            ra, dec, pointing_dec_deg=pointing_dec_deg, start_mjd=t0, end_mjd=t1, freqs_hz=freqs,
            n_times=4)) for t0, t1 in spans_mjd])
        mean = np.tensordot(w, b, axes=1)
        seen = mean >= floor * mean.max()
        coarse[:, j] = np.where(seen, b / np.where(seen, mean, 1.0), 1.0)
    return DriftRatios(ys, xs, coarse)


def field_extent_deg(ra0_deg: float, dec0_deg: float, cutoff: float, n: int = 241,
                     half_width_deg: float = 6.0, **kw) -> tuple[float, float]:
    """Full widths (RA-direction l, Dec-direction m; deg) of the area where the
    effective beam about (ra0, dec0) is >= cutoff, from a coarse SIN grid."""
    from astropy.wcs import WCS

    step = 2 * half_width_deg / (n - 1)
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    w.wcs.crval = [ra0_deg, dec0_deg]
    w.wcs.crpix = [(n + 1) / 2, (n + 1) / 2]
    w.wcs.cdelt = [-step, step]
    pb = beam_on_wcs(w, (n, n), step=1, **kw)
    inside = np.nan_to_num(pb) >= cutoff
    if not inside.any():
        raise ValueError("effective beam never reaches the cutoff around the phase centre")
    c = (n - 1) / 2
    ys, xs = np.nonzero(inside)
    width_l = 2 * (np.abs(xs - c).max() + 1) * step
    width_m = 2 * (np.abs(ys - c).max() + 1) * step
    return float(width_l), float(width_m)
