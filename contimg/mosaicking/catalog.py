"""The mosaic's source catalogue (contimg.catalogs: PyBDSF) and the QA figures built on it.

The finder runs on the mosaic itself, whose noise varies (deep overlaps, noisy
edges): PyBDSF's own rms map follows that, and near bright sources its adaptive box
follows their artefacts. ``pb_level`` of a mosaic source is its relative sensitivity
sigma_min / sigma_M (1 where the mosaic is deepest).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from contimg.catalogs.finder import FinderOptions, FoundSources, _empty, find_sources
from contimg.mosaicking.grid import MosaicArrays
from contimg.mosaicking.tiles import MosaicOptions, Tile


def finder_header(m: MosaicArrays, beam: dict, freq_hz: float) -> fits.Header:
    h = m.wcs.to_header()
    h["BUNIT"] = "Jy/beam"
    h["BMAJ"], h["BMIN"], h["BPA"] = beam["major_arcsec"] / 3600.0, beam["minor_arcsec"] / 3600.0, beam["pa_deg"]
    h["FREQ"] = freq_hz
    return h


def mosaic_sources(m: MosaicArrays, beam: dict, freq_hz: float, opts: MosaicOptions,
                   scratch: Path) -> tuple[FoundSources, list[dict], np.ndarray]:
    """(finder output, source dicts for QA and the quicklook, pb_level per source)."""
    fopts = FinderOptions(thresh_pix=opts.finder_thresh_pix, thresh_isl=opts.finder_thresh_isl,
                          max_sources=opts.max_sources,
                          fix_to_beam=opts.finder_fix_to_beam and m.beam is not None)
    if opts.find_sources:
        found = find_sources(m.image, finder_header(m, beam, freq_hz), fopts, scratch=scratch, noise_floor=m.noise)
    else:
        found = FoundSources(columns=_empty())
    c = found.columns
    ny, nx = m.noise.shape
    ix = np.clip(np.round(c["x"]).astype(int), 0, nx - 1)
    iy = np.clip(np.round(c["y"]).astype(int), 0, ny - 1)
    sig = m.noise[iy, ix].astype(float)
    sig_min = float(np.nanmin(m.noise))
    with np.errstate(invalid="ignore", divide="ignore"):
        pb_level = np.where(np.isfinite(sig), sig_min / sig, np.nan)
    sources = [{"ra_deg": float(c["ra_deg"][i]), "dec_deg": float(c["dec_deg"][i]),
                "flux_jy": float(c["peak_jy"][i]), "int_flux_jy": float(c["int_flux_jy"][i]),
                "snr": float(c["snr"][i]), "x": float(c["x"][i]), "y": float(c["y"][i]),
                "local_noise_jy": float(c["local_rms_jy"][i]), "maj_arcsec": float(c["maj_arcsec"][i]),
                "min_arcsec": float(c["min_arcsec"][i])} for i in range(len(found))]
    return found, sources, pb_level


def detection_figures(found: FoundSources) -> dict:
    """False detections estimated from the negated image, above 5 (thresh) and 10 sigma."""
    n = len(found)
    snr = found.columns["snr"]
    n10 = int(np.sum(snr >= 10)) if n else 0
    return {"n_sources": n, "n_sources_gt10": n10, "n_negative": found.n_negative,
            "n_negative_gt10": found.n_negative_gt10,
            "false_detection_fraction": found.n_negative / n if n else (1.0 if found.n_negative else 0.0),
            "false_detection_fraction_gt10": found.n_negative_gt10 / n10 if n10 else 0.0,
            "finder_rms_median_jy": found.rms_median_jy}


def radiometer_noise_jy(tile: Tile, opts: MosaicOptions) -> float | None:
    """Natural-weighting thermal noise of one tile's image: SEFD / sqrt(2 N_bl dnu t)."""
    if not opts.sefd_jy or tile.start_mjd is None or tile.end_mjd is None:
        return None
    t = (tile.end_mjd - tile.start_mjd) * 86400.0
    nbl = opts.n_antennas * (opts.n_antennas - 1) / 2
    return float(opts.sefd_jy / np.sqrt(2.0 * nbl * opts.bandwidth_hz * t)) if t > 0 else None


def radiometer_figures(tiles: list[Tile], opts: MosaicOptions) -> dict:
    exp = [radiometer_noise_jy(t, opts) for t in tiles]
    ratios = [t.noise_jy / e for t, e in zip(tiles, exp) if e]
    if not ratios:
        return {}
    return {"radiometer_noise_jy": float(np.median([e for e in exp if e])),
            "radiometer_ratio": float(np.median(ratios)), "radiometer_ratio_max": float(np.max(ratios))}
