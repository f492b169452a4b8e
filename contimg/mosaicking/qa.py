"""Mosaic QA (G4): noise, dynamic range, and the catalogue (contimg.catalogs, PyBDSF)
matched to a reference catalogue; every threshold is an option, and a failed check
is named with its value and limit.

Matching: reference sources expected above ``min_catalog_snr`` at their local noise
(sigma_M) are looked for within ``match_radius_arcsec``; recovery fraction, median
flux ratio (peak for point sources, integrated flux for resolved ones, reference
taken to the mosaic frequency) and astrometric offsets (median RA/Dec and total).
False detections: islands in the negated mosaic passing the same peak threshold,
as a fraction of the sources found.
"""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from scipy.ndimage import maximum_filter

from contimg.astro.catalog import Source
from contimg.astro.refcat import RefCatalog
from contimg.mosaicking.grid import MosaicArrays
from contimg.mosaicking.tiles import MosaicOptions

MAD_TO_SIGMA = 1.4826

def _catalog_sources(catalogue) -> list[Source]:
    if isinstance(catalogue, RefCatalog):
        catalogue = [{"name": f"ref{i:05d}", "ra_deg": r, "dec_deg": d, "flux_jy": f, "spectral_index": a}
                     for i, (r, d, f, a) in enumerate(zip(catalogue.ra_deg, catalogue.dec_deg,
                                                           catalogue.flux_jy, catalogue.spectral_index))]
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
    matches, offs, ratios, dras, ddecs = [], [], [], [], []
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
            dra = ((found[j]["ra_deg"] - ra[i] + 180.0) % 360.0 - 180.0) * np.cos(np.radians(dec[i])) * 3600.0
            ddec = (found[j]["dec_deg"] - dec[i]) * 3600.0
            row.update(found_flux_jy=found[j]["flux_jy"], offset_arcsec=float(d), flux_ratio=ratio,
                       dra_arcsec=float(dra), ddec_arcsec=float(ddec))
            offs.append(float(d))
            dras.append(float(dra))
            ddecs.append(float(ddec))
            ratios.append(ratio)
        matches.append(row)
    n_exp = int(expected.sum())
    return {
        "n_catalog_in_field": int(in_field.sum()), "n_expected": n_exp, "n_matched": len(offs),
        "recovery_fraction": len(offs) / n_exp if n_exp else None,
        "flux_ratio_median": float(np.median(ratios)) if ratios else None,
        "offset_arcsec_median": float(np.median(offs)) if offs else None,
        "offset_arcsec_max": float(np.max(offs)) if offs else None,
        "dra_arcsec_median": float(np.median(dras)) if dras else None,
        "ddec_arcsec_median": float(np.median(ddecs)) if ddecs else None,
        "astrometric_offset_arcsec": float(np.hypot(np.median(dras), np.median(ddecs))) if dras else None,
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
    """Pass/fail of every configured threshold; a disabled (None) threshold is skipped.

    ``failed`` names each failed check with its value and limit, e.g.
    'flux_ratio_median 0.41 outside [0.8, 1.2]', for status and publish to show.
    """
    checks = []

    def check(name, value, limit, ok, text):
        if limit is None:
            return
        passed = bool(value is not None and ok(value))
        checks.append({"check": name, "value": value, "limit": limit, "passed": passed,
                       "reason": None if passed else text(value)})

    def fmt(v):
        return "none" if v is None else f"{v:.3g}"

    check("noise_jy", figures["noise_jy"], opts.max_noise_jy, lambda v: v <= opts.max_noise_jy,
          lambda v: f"noise_jy {fmt(v)} > max_noise_jy {opts.max_noise_jy:g}")
    check("dynamic_range", figures["dynamic_range"], opts.min_dynamic_range,
          lambda v: v >= opts.min_dynamic_range,
          lambda v: f"dynamic_range {fmt(v)} < min_dynamic_range {opts.min_dynamic_range:g}")
    check("noise_ratio", figures["noise_ratio"], opts.max_noise_ratio, lambda v: v <= opts.max_noise_ratio,
          lambda v: f"noise_ratio (measured/expected rms) {fmt(v)} > {opts.max_noise_ratio:g}")
    check("radiometer_ratio", figures.get("radiometer_ratio"),  # only where sefd_jy gave a figure
          opts.max_radiometer_ratio if "radiometer_ratio" in figures else None,
          lambda v: v <= opts.max_radiometer_ratio,
          lambda v: f"radiometer_ratio (tile rms/radiometer noise) {fmt(v)} > {opts.max_radiometer_ratio:g}")
    check("false_detection_fraction", figures.get("false_detection_fraction"),
          opts.max_false_fraction if "false_detection_fraction" in figures else None,
          lambda v: v <= opts.max_false_fraction,
          lambda v: f"false_detection_fraction (negated image) {fmt(v)} > {opts.max_false_fraction:g}")
    cat = figures.get("catalogue")
    if cat is not None and cat["n_expected"]:
        check("recovery_fraction", cat["recovery_fraction"], opts.min_source_recovery_fraction,
              lambda v: v >= opts.min_source_recovery_fraction,
              lambda v: f"recovery_fraction {fmt(v)} < {opts.min_source_recovery_fraction:g} "
                        f"({cat['n_matched']}/{cat['n_expected']} {cat.get('name', 'catalogue')} sources)")
        if opts.flux_ratio_range is not None:
            lo, hi = opts.flux_ratio_range
            check("flux_ratio_median", cat["flux_ratio_median"], [lo, hi], lambda v: lo <= v <= hi,
                  lambda v: f"flux_ratio_median {fmt(v)} outside [{lo:g}, {hi:g}]")
        check("astrometric_offset_arcsec", cat.get("astrometric_offset_arcsec"), opts.max_offset_arcsec,
              lambda v: v <= opts.max_offset_arcsec,
              lambda v: f"astrometric_offset_arcsec {fmt(v)} > {opts.max_offset_arcsec:g}")
    failed = [c["reason"] for c in checks if not c["passed"]]
    return {"status": "failed" if failed else "passed", "failed": failed, "checks": checks, **figures}
