"""Mosaic QA (G4): noise, dynamic range, sources found and matched to a catalogue.

Sources are local maxima of the signal-to-noise map M / sigma_M (so the deeper
overlap regions and the noisier edges get the same false-detection rate) above
``detect_sigma``. Each peak is refined by fitting a 2-D quadratic to the log of its
3x3 neighbourhood, which is exact for a Gaussian restoring beam: the peak (Jy/beam)
is then the flux of a point source, free of the up-to-a-pixel sampling loss of
the brightest pixel.
"""

from __future__ import annotations

import warnings

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from scipy.ndimage import maximum_filter

from contimg.astro.catalog import Source
from contimg.mosaicking.grid import MosaicArrays
from contimg.mosaicking.tiles import MosaicOptions

MAD_TO_SIGMA = 1.4826

_DX, _DY = np.meshgrid([-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0])
_DESIGN = np.stack([np.ones(9), _DX.ravel(), _DY.ravel(), _DX.ravel() ** 2, (_DX * _DY).ravel(), _DY.ravel() ** 2], 1)
_PINV = np.linalg.pinv(_DESIGN)  # (6, 9): log-values of a 3x3 patch -> quadratic coefficients


def _refine(image: np.ndarray, ys: np.ndarray, xs: np.ndarray):
    """Sub-pixel position and peak for every (y, x) at once; falls back to the pixel."""
    ny, nx = image.shape
    fx, fy, peak = xs.astype(float), ys.astype(float), image[ys, xs].astype(float)
    inner = (ys > 0) & (ys < ny - 1) & (xs > 0) & (xs < nx - 1)
    idx = np.flatnonzero(inner)
    if idx.size == 0:
        return fx, fy, peak
    oy, ox = np.meshgrid([-1, 0, 1], [-1, 0, 1], indexing="ij")
    patch = image[ys[idx, None] + oy.ravel(), xs[idx, None] + ox.ravel()].astype(float)  # (n, 9)
    usable = np.all(np.isfinite(patch) & (patch > 0), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.log(np.where(usable[:, None], patch, 1.0)) @ _PINV.T  # (n, 6): a b c d e f
        a, b, cc, d, e, f = c.T
        det = 4 * d * f - e * e
        x = (-2 * f * b + e * cc) / det
        y = (-2 * d * cc + e * b) / det
        good = usable & (d < 0) & (det > 0) & (np.abs(x) <= 1) & (np.abs(y) <= 1)
        val = np.exp(a + b * x + cc * y + d * x * x + e * x * y + f * y * y)
    g = idx[good]
    fx[g] += x[good]
    fy[g] += y[good]
    peak[g] = val[good]
    return fx, fy, peak


def local_rms(image: np.ndarray, valid: np.ndarray, block: int = 64) -> np.ndarray:
    """Robust rms (1.4826 MAD) of the image in blocks, at full resolution.

    Near bright sources the noise is set by their sidelobes and calibration errors,
    not by the thermal noise map; judging peaks against this local rms keeps
    sidelobes out of the source list.
    """
    ny, nx = image.shape
    py, px = -ny % block, -nx % block
    a = np.pad(np.where(valid, image, np.nan), ((0, py), (0, px)), constant_values=np.nan)
    b = a.reshape(a.shape[0] // block, block, a.shape[1] // block, block).transpose(0, 2, 1, 3)
    b = b.reshape(b.shape[0], b.shape[1], -1)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(b, axis=2)
        rms = MAD_TO_SIGMA * np.nanmedian(np.abs(b - med[..., None]), axis=2)
    full = np.repeat(np.repeat(rms, block, axis=0), block, axis=1)[:ny, :nx]
    return np.where(np.isfinite(full), full, 0.0)


def find_sources(m: MosaicArrays, opts: MosaicOptions, beam_minor_arcsec: float) -> list[dict]:
    """Peaks of M / max(sigma_M, local rms) above ``detect_sigma``, one per beam, brightest first."""
    sigma = np.maximum(m.noise, local_rms(m.image, m.valid))
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = np.where(m.valid, m.image / sigma, -np.inf).astype(np.float32)
    cell = abs(m.wcs.wcs.cdelt[1]) * 3600.0
    size = max(3, int(np.ceil(beam_minor_arcsec / cell)) | 1)
    peaks = (snr > opts.detect_sigma) & (snr == maximum_filter(snr, size=size, mode="constant", cval=-np.inf))
    ys, xs = np.nonzero(peaks)
    order = np.argsort(snr[ys, xs])[::-1][: opts.max_sources]
    ys, xs = ys[order], xs[order]
    fx, fy, flux = _refine(m.image, ys, xs)
    ra, dec = m.wcs.pixel_to_world_values(fx, fy)
    noise = sigma[ys, xs].astype(float)
    return [
        {"ra_deg": float(r), "dec_deg": float(d), "flux_jy": float(s), "snr": float(s / n),
         "x": float(x), "y": float(y), "local_noise_jy": float(n)}
        for r, d, s, n, x, y in zip(np.atleast_1d(ra), np.atleast_1d(dec), flux, noise, fx, fy)
    ]


def _catalog_sources(catalogue) -> list[Source]:
    out = []
    for i, obj in enumerate(catalogue):
        if not isinstance(obj, Source) and "name" not in obj:
            obj = {**obj, "name": f"cat{i:04d}"}
        out.append(Source.from_any(obj))
    return out


def match_catalogue(m: MosaicArrays, found: list[dict], catalogue, freq_hz: float, radius_arcsec: float,
                    min_snr: float) -> dict:
    """Recovery of catalogue sources expected above ``min_snr`` at their local noise."""
    cat = _catalog_sources(catalogue)
    if not cat:
        return {"n_catalog_in_field": 0, "n_expected": 0, "n_matched": 0, "recovery_fraction": None, "matches": []}
    ra = np.array([s.ra_deg for s in cat])
    dec = np.array([s.dec_deg for s in cat])
    flux = np.array([float(s.flux_at(freq_hz)) for s in cat])
    px, py = m.wcs.world_to_pixel_values(ra, dec)
    px, py = np.asarray(px, float), np.asarray(py, float)
    fin = np.isfinite(px) & np.isfinite(py)  # SIN: NaN for sources on the far hemisphere
    ix = np.where(fin, np.round(np.where(fin, px, -1)), -1).astype(int)
    iy = np.where(fin, np.round(np.where(fin, py, -1)), -1).astype(int)
    inside = fin & (ix >= 0) & (iy >= 0) & (ix < m.image.shape[1]) & (iy < m.image.shape[0])
    local = np.full(len(cat), np.nan)
    local[inside] = m.noise[iy[inside], ix[inside]]
    in_field = np.isfinite(local)
    expected = in_field & (flux / np.where(in_field, local, 1.0) >= min_snr)
    sel = np.flatnonzero(expected)
    matches, offs, ratios = [], [], []
    if found and sel.size:
        fcoord = SkyCoord([s["ra_deg"] for s in found] * u.deg, [s["dec_deg"] for s in found] * u.deg)
        j_near, sep, _ = SkyCoord(ra[sel] * u.deg, dec[sel] * u.deg).match_to_catalog_sky(fcoord)
        sep = np.atleast_1d(sep.arcsec)
        j_near = np.atleast_1d(j_near)
    else:
        j_near, sep = np.zeros(sel.size, int), np.full(sel.size, np.inf)
    for i, j, d in zip(sel, j_near, sep):
        row = {"name": cat[i].name, "ra_deg": float(ra[i]), "dec_deg": float(dec[i]), "flux_jy": float(flux[i]),
               "expected_snr": float(flux[i] / local[i]), "matched": bool(d <= radius_arcsec)}
        if row["matched"]:
            ratio = found[j]["flux_jy"] / float(flux[i])
            row.update(found_flux_jy=found[j]["flux_jy"], offset_arcsec=float(d), flux_ratio=ratio)
            offs.append(float(d))
            ratios.append(ratio)
        matches.append(row)
    n_exp = int(expected.sum())
    return {
        "n_catalog_in_field": int(in_field.sum()), "n_expected": n_exp, "n_matched": len(offs),
        "recovery_fraction": len(offs) / n_exp if n_exp else None,
        "flux_ratio_median": float(np.median(ratios)) if ratios else None,
        "offset_arcsec_median": float(np.median(offs)) if offs else None,
        "offset_arcsec_max": float(np.max(offs)) if offs else None,
        "match_radius_arcsec": radius_arcsec, "matches": matches,
    }


def noise_figures(m: MosaicArrays, opts: MosaicOptions, beam_major_arcsec: float) -> dict:
    """Noise-map statistics and the measured rms (MAD) away from sources.

    The measured rms of M / sigma_M should be ~1 where the weights are right; a
    larger value means artefacts, bad calibration or understated tile noise.
    """
    valid = m.valid
    nm = m.noise[valid]
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = np.where(valid, m.image / m.noise, 0.0)
    cell = abs(m.wcs.wcs.cdelt[1]) * 3600.0
    reach = 2 * int(np.ceil(1.5 * beam_major_arcsec / cell)) + 1
    near_src = maximum_filter((np.abs(snr) > opts.detect_sigma).astype(np.uint8), size=reach) > 0
    free = valid & ~near_src
    img, s = m.image[free].astype(float), snr[free]
    return {
        "noise_map_jy_median": float(np.median(nm)), "noise_map_jy_min": float(nm.min()),
        "noise_map_jy_p90": float(np.percentile(nm, 90)), "noise_map_jy_max": float(nm.max()),
        "measured_noise_jy": float(MAD_TO_SIGMA * np.median(np.abs(img - np.median(img)))) if img.size else None,
        "noise_ratio": float(MAD_TO_SIGMA * np.median(np.abs(s - np.median(s)))) if s.size else None,
        "source_free_fraction": float(free.sum() / max(valid.sum(), 1)),
    }


def assess(figures: dict, opts: MosaicOptions) -> dict:
    """Pass/fail of every configured threshold; a disabled (None) threshold is skipped."""
    checks = []

    def check(name, value, limit, ok):
        if limit is None:
            return
        checks.append({"check": name, "value": value, "limit": limit, "passed": bool(value is not None and ok(value))})

    check("noise_jy <= max_noise_jy", figures["noise_jy"], opts.max_noise_jy, lambda v: v <= opts.max_noise_jy)
    check("dynamic_range >= min_dynamic_range", figures["dynamic_range"], opts.min_dynamic_range,
          lambda v: v >= opts.min_dynamic_range)
    check("noise_ratio <= max_noise_ratio", figures["noise_ratio"], opts.max_noise_ratio,
          lambda v: v <= opts.max_noise_ratio)
    cat = figures.get("catalogue")
    if cat is not None and cat["n_expected"]:
        check("recovery_fraction >= min_source_recovery_fraction", cat["recovery_fraction"],
              opts.min_source_recovery_fraction, lambda v: v >= opts.min_source_recovery_fraction)
        if opts.flux_ratio_range is not None:
            lo, hi = opts.flux_ratio_range
            check("flux_ratio_median within flux_ratio_range", cat["flux_ratio_median"], [lo, hi],
                  lambda v: lo <= v <= hi)
    failed = [c["check"] for c in checks if not c["passed"]]
    return {"status": "failed" if failed else "passed", "failed": failed, "checks": checks, **figures}
