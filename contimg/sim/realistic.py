"""The realistic sky of one simulation: which sources, which of them each observation
needs, their truth entries, and the reference catalogue a survey would give.

Reference catalogue (``<first timestamp>_refcat.csv`` and ``.fits`` beside the truth,
format of :mod:`contimg.astro.refcat`): every simulated source except a random
``REFCAT_MISSING`` fraction, with flux x N(1, ``REFCAT_FLUX_SCATTER``) (kept positive),
a position error N(0, sigma) per coordinate with sigma uniform in 1-2 arcsec per
source, spectral index + N(0, 0.1), and resolved sources' axes x N(1, 0.1).
"""

from __future__ import annotations

import numpy as np

from contimg.astro import refcat
from contimg.names import refcat_names
from contimg.astro.beam import angular_distance_from_pointing
from contimg.sim import counts, sky
from contimg.sim.counts import SkyArrays
from contimg.sim.instrument import sim_beam_power

REFCAT_FLUX_SCATTER = 0.15
REFCAT_POS_SIGMA_ARCSEC = (1.0, 2.0)
REFCAT_MISSING = 0.05
MARGIN_DEG = 0.3
BAND_LOW_HZ, REF_HZ = 1311.25e6, 1.4e9


def stokes_i_beam(theta_l, theta_m, freq_hz, opts) -> np.ndarray:
    """Simulated Stokes-I power beam (mean of XX and YY)."""
    return sim_beam_power(theta_l, theta_m, freq_hz, opts.effective("beam_scale"),
                          opts.effective("beam_ellipticity")).mean(-1)


def _widen(opts) -> float:
    return opts.effective("beam_scale") * (1 + abs(opts.effective("beam_ellipticity")))


def _closest(sky_: SkyArrays, ra_m0: float, ra_m1: float, dec0_icrs: float):
    """(hour angle, distance) of closest approach to the pointing while the meridian ICRS RA
    runs from ra_m0 to ra_m1 (deg); ICRS approximations, good to ~0.01 deg."""
    span = np.mod(ra_m1 - ra_m0, 360.0)
    d0 = np.mod(ra_m0 - sky_.ra_deg + 180.0, 360.0) - 180.0  # HA at the start, deg
    ha = np.where((d0 <= 0) & (d0 + span >= 0), 0.0, np.where(d0 > 0, d0, d0 + span))
    dist = angular_distance_from_pointing(np.radians(ha), np.radians(sky_.dec_deg), np.radians(dec0_icrs))
    return np.radians(ha), dist


def best_beam(sky_: SkyArrays, ra_m0, ra_m1, dec0_icrs, opts) -> np.ndarray:
    """Stokes-I beam at 1.4 GHz at each source's closest approach during [ra_m0, ra_m1]."""
    ha, dist = _closest(sky_, ra_m0, ra_m1, dec0_icrs)
    dec = np.radians(sky_.dec_deg)
    d0 = np.radians(dec0_icrs)
    l = -np.cos(dec) * np.sin(ha)
    m = np.sin(dec) * np.cos(d0) - np.cos(dec) * np.sin(d0) * np.cos(ha)
    b = stokes_i_beam(l, m, REF_HZ, opts)
    return np.where(dist < np.pi / 2, b, 0.0)


def build_sky(opts, dec0_deg: float, jd0: float, jd1: float, catalogue_sources) -> SkyArrays:
    """Catalogue sources in the span + a counts-model field + sidelobe sources, floor applied."""
    rng = np.random.default_rng([opts.seed, 0x5C, 0xA1])
    jd_grid = np.linspace(jd0, jd1, 16)
    ra_mer, dec_mer = sky.meridian_icrs(jd_grid, dec0_deg)
    ra_mer = np.degrees(np.unwrap(np.radians(ra_mer)))
    dec0_icrs = float(np.mean(dec_mer))
    widen = _widen(opts)
    r1 = np.degrees(counts.null_radius_rad(BAND_LOW_HZ, widen))
    r2 = np.degrees(counts.null_radius_rad(BAND_LOW_HZ, widen, counts.SECOND_NULL_X))
    pad = (r1 + MARGIN_DEG) / max(np.cos(np.radians(min(89.0, abs(dec0_icrs) + r1))), 0.05)
    fld, area = counts.draw_field(rng, dec0_icrs, ra_mer[0] - pad, ra_mer[-1] + pad, r1 + MARGIN_DEG,
                                  s_min=max(opts.flux_floor_jy, counts.S_MIN_MODEL_JY),
                                  scale=opts.counts_scale)
    side = counts.draw_sidelobe(rng, ra_mer, dec0_icrs, r1, r2)
    cat = SkyArrays.from_sources(catalogue_sources, "catalogue")
    full = cat.concat(fld).concat(side)
    keep = full.flux_jy * best_beam(full, ra_mer[0], ra_mer[-1], dec0_icrs, opts) >= opts.flux_floor_jy
    keep |= np.array([k != "field" for k in full.kind])
    out = full.select(np.flatnonzero(keep))
    out.meta = {
        "model": "Hopkins et al. 2003 (AJ 125, 465) 1.4 GHz Euclidean-normalised counts polynomial",
        "counts_scale": opts.counts_scale,
        "per_deg2_above_2.5mJy": counts.integral_counts_per_deg2(2.5e-3, opts.counts_scale),
        "drawn_field_sources": len(fld),
        "field_area_deg2": area,
        "field_radius_deg": r1 + MARGIN_DEG,
        "field_ra_range_deg": [float(ra_mer[0] - pad), float(ra_mer[-1] + pad)],
        "field_dec_centre_icrs_deg": dec0_icrs,
        "first_null_deg": r1,
        "second_null_deg": r2,
        "s_min_drawn_jy": max(opts.flux_floor_jy, counts.S_MIN_MODEL_JY),
        "flux_floor_jy": opts.flux_floor_jy,
        "floor_rule": "field sources kept if flux(1.4 GHz) x Stokes-I beam at closest approach >= floor",
        "kept_by_kind": {k: int(sum(1 for x in out.kind if x == k)) for k in ("catalogue", "field", "sidelobe")},
        "resolved_fraction_drawn": counts.RESOLVED_FRACTION,
    }
    return out


def active_in_observation(sky_: SkyArrays, opts, dec0_deg: float, jd0: float, jd1: float) -> np.ndarray:
    """Indices of the sources that reach the floor (or are non-field) during [jd0, jd1]
    and lie inside the second null of the beam at closest approach."""
    ra_m, dec_m = sky.meridian_icrs(np.array([jd0, jd1]), dec0_deg)
    dec0_icrs = float(np.mean(dec_m))
    b = best_beam(sky_, ra_m[0], ra_m[1], dec0_icrs, opts)
    _, dist = _closest(sky_, ra_m[0], ra_m[1], dec0_icrs)
    r2 = counts.null_radius_rad(BAND_LOW_HZ, _widen(opts), counts.SECOND_NULL_X) + np.radians(MARGIN_DEG)
    field = np.array([k == "field" for k in sky_.kind], bool)
    ok = (dist < r2) & ((sky_.flux_jy * b >= opts.flux_floor_jy) | ~field)
    return np.flatnonzero(ok)


def source_entries(sky_: SkyArrays, opts, dec0_rad: float, mid_jd: float) -> list[dict]:
    """Truth entries: columns, kind, transit nearest the span, apparent flux at transit
    through the simulated beam and through the pipeline's model beam."""
    from contimg.astro import times
    from contimg.astro.beam import beam_power

    tr = sky.transit_jd_many(sky_.ra_deg, sky_.dec_deg, mid_jd)
    ha, dec = sky.hadec_at(sky_.ra_deg, sky_.dec_deg, tr)
    l = -np.cos(dec) * np.sin(ha)
    m = np.sin(dec) * np.cos(dec0_rad) - np.cos(dec) * np.sin(dec0_rad) * np.cos(ha)
    b_sim = stokes_i_beam(l, m, REF_HZ, opts)
    b_model = beam_power(ha, dec, dec0_rad, REF_HZ)
    out = []
    for k in range(len(sky_)):
        out.append({
            "name": sky_.name[k], "kind": sky_.kind[k],
            "ra_deg": float(sky_.ra_deg[k]), "dec_deg": float(sky_.dec_deg[k]),
            "flux_jy": float(sky_.flux_jy[k]), "spectral_index": float(sky_.spectral_index[k]),
            "ref_freq_hz": REF_HZ,
            "maj_arcsec": float(sky_.maj_arcsec[k]), "min_arcsec": float(sky_.min_arcsec[k]),
            "pa_deg": float(sky_.pa_deg[k]),
            "transit_jd": float(tr[k]), "transit_iso": times.jd_to_iso(float(tr[k])),
            "dec_app_at_transit_rad": float(dec[k]),
            "beam_at_transit_1400MHz": float(b_sim[k]),
            "model_beam_at_transit_1400MHz": float(b_model[k]),
            "apparent_flux_at_transit_1400MHz_jy": float(b_sim[k] * sky_.flux_jy[k]),
        })
    return out


def reference_catalogue(sky_: SkyArrays, seed: int) -> tuple[refcat.RefCatalog, np.ndarray]:
    """The survey's view of the sky (see module doc); returns it and the kept source indices."""
    r = np.random.default_rng([seed, 0x2EF])
    n = len(sky_)
    keep = np.flatnonzero(r.uniform(0, 1, n) >= REFCAT_MISSING)
    sig = r.uniform(*REFCAT_POS_SIGMA_ARCSEC, n) / 3600.0
    ddec = r.normal(0, 1, n) * sig
    dra = r.normal(0, 1, n) * sig / np.cos(np.radians(sky_.dec_deg))
    flux = sky_.flux_jy * np.abs(r.normal(1.0, REFCAT_FLUX_SCATTER, n))
    alpha = sky_.spectral_index + r.normal(0, 0.1, n)
    size = np.abs(r.normal(1.0, 0.1, n))
    cat = refcat.RefCatalog.from_columns({
        "ra_deg": sky_.ra_deg + dra, "dec_deg": np.clip(sky_.dec_deg + ddec, -90, 90), "flux_jy": flux,
        "spectral_index": alpha, "maj_arcsec": sky_.maj_arcsec * size, "min_arcsec": sky_.min_arcsec * size,
        "pa_deg": sky_.pa_deg}, where="simulated reference catalogue")
    return cat.select(keep), keep


def write_reference_catalogue(out_dir, stamp: str, sky_: SkyArrays, seed: int) -> dict:
    """Write ``<stamp>_refcat.csv`` and ``.fits``; return the truth entry describing them."""
    cat, keep = reference_catalogue(sky_, seed)
    note = (f"contimg simulated reference catalogue (seed {seed}): fluxes x N(1, {REFCAT_FLUX_SCATTER}), "
            f"position sigma U{REFCAT_POS_SIGMA_ARCSEC} arcsec per coordinate, {REFCAT_MISSING:.0%} missing")
    files = refcat_names(stamp)
    csv_path = refcat.write_refcat_csv(out_dir / files["csv"], cat, comment=note)
    fits_path = refcat.write_refcat_fits(out_dir / files["fits"], cat, comment=note)
    return {"csv": csv_path.name, "fits": fits_path.name, "rows": len(cat),
            "source_index": keep.tolist(),
            "errors": {"flux_factor": f"N(1, {REFCAT_FLUX_SCATTER})", "position_sigma_arcsec": list(REFCAT_POS_SIGMA_ARCSEC),
                       "missing_fraction": REFCAT_MISSING, "spectral_index": "+ N(0, 0.1)",
                       "size_factor": "N(1, 0.1)"}}
