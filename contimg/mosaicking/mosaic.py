"""combine(): check, validate, build, assess and write one mosaic atomically.

All files are written into a private temporary directory inside ``out_dir``
(contimg.paths.temp_path) and
renamed into place only when every file is complete (the mosaic FITS last, so its
presence means the set is whole). Every file name carries the mosaic id (G5):
``<id>.fits`` (Jy/beam), ``<id>.noise.fits`` (sigma_M, Jy/beam), ``<id>.png`` and the
source catalogue ``<id>.cat.{fits,csv,vot}`` (contimg.catalogs).
The header beam is the common beam every member was convolved to
(commonbeam.py); with ``common_beam=False`` the largest member beam by area, which
is then only approximately every member's.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

from contimg.fitsmeta import field_name, stamp
from contimg.mosaicking.grid import MosaicArrays, build_mosaic
from contimg.catalogs.products import catalog_table, write_catalog
from contimg.names import catalog_file_names as catalog_names
from contimg.names import mosaic_file_paths as output_paths  # the names live in contimg.names
from contimg.mosaicking.catalog import detection_figures, mosaic_sources, radiometer_figures
from contimg.mosaicking.qa import assess, match_catalogue, noise_figures
from contimg.mosaicking.quicklook import write_png
from contimg.mosaicking.tiles import MosaicOptions, Tile, check_tiles, validate_tiles
from contimg.paths import clean_leftovers, release, temp_path
from contimg.paths import fsync_path as _fsync


class MosaicInputError(Exception):
    """G3: member files missing or unreadable; ``problems`` lists every one."""

    def __init__(self, mosaic_id: str, problems: list[str]):
        self.problems = list(problems)
        super().__init__(f"mosaic {mosaic_id}: {len(problems)} member file problem(s):\n  " + "\n  ".join(problems))


@dataclass
class MosaicResult:
    mosaic_id: str
    mosaic_fits: Path
    noise_fits: Path
    png: Path
    noise_jy: float  # median of the noise map over the valid area
    peak_jy: float
    dynamic_range: float  # peak_jy / noise_jy
    sources: list[dict]  # ra_deg, dec_deg, flux_jy (peak, Jy/beam), snr, x, y, local_noise_jy
    qa: dict  # status passed|failed, failed checks, checks, figures, catalogue matches
    validation: dict  # validate_tiles(): status valid|invalid, problems, figures
    footprint: dict
    members: list[str] = field(default_factory=list)
    beam: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)  # seconds per stage
    catalog: dict = field(default_factory=dict)  # catalog_fits, catalog_csv, catalog_vot paths


def header_beam(tiles: list[Tile], common: tuple | None = None) -> dict:
    """The common beam the members were convolved to, else the largest member beam (by area),
    stated as such in the header."""
    if common is not None:
        return {"major_arcsec": common[0], "minor_arcsec": common[1], "pa_deg": common[2],
                "rule": "common beam: every member convolved to it", "from_tile": "common"}
    k = int(np.argmax([t.beam_major_arcsec * t.beam_minor_arcsec for t in tiles]))
    t = tiles[k]
    return {"major_arcsec": t.beam_major_arcsec, "minor_arcsec": t.beam_minor_arcsec, "pa_deg": t.beam_pa_deg,
            "rule": "largest member beam by area", "from_tile": t.name}


def footprint_of(m: MosaicArrays, step: int = 4) -> dict:
    """Sky extent of the valid area (RA range measured from the centre: safe across 0h)."""
    ys, xs = np.nonzero(m.valid[::step, ::step])
    cell = abs(float(m.wcs.wcs.cdelt[1])) * 3600.0
    ra0, dec0 = (float(v) for v in m.wcs.wcs.crval)
    fp = {"shape": list(m.image.shape), "cell_arcsec": cell, "projection": m.wcs.wcs.ctype[0][-3:],
          "centre_ra_deg": ra0, "centre_dec_deg": dec0, "valid_fraction": float(m.valid.mean()),
          "area_deg2": float(m.valid.sum() * (cell / 3600.0) ** 2)}
    if ys.size:
        ra, dec = m.wcs.pixel_to_world_values(xs * step, ys * step)
        dra = (np.asarray(ra) - ra0 + 180.0) % 360.0 - 180.0
        fp.update(ra_min_deg=float((ra0 + dra.min()) % 360.0), ra_max_deg=float((ra0 + dra.max()) % 360.0),
                  dec_min_deg=float(np.min(dec)), dec_max_deg=float(np.max(dec)))
    return fp


def _header(m: MosaicArrays, mosaic_id: str, tiles: list[Tile], beam: dict, opts: MosaicOptions,
            qa: dict, validation: dict) -> fits.Header:
    h = m.wcs.to_header()
    h["BUNIT"] = ("Jy/beam", "brightness unit")
    h["BMAJ"] = (beam["major_arcsec"] / 3600.0, "deg; " + beam["rule"][:50])
    h["BMIN"] = (beam["minor_arcsec"] / 3600.0, "deg")
    h["BPA"] = (beam["pa_deg"], "deg")
    h["BEAMSRC"] = (beam["from_tile"], "common, or the member whose beam is in BMAJ")
    h["FREQ"] = (float(np.mean([t.freq_hz for t in tiles])), "Hz, mean member frequency")
    h["MOSAICID"] = (mosaic_id, "mosaic identifier (G5)")
    h["WEIGHTNG"] = ("sum(B I/s^2)/sum(B^2/s^2)", "primary-beam weighted linear mosaic")
    h["PBCUTOFF"] = (opts.pb_cutoff, "tile used where its primary beam >= this")
    h["NMEMBERS"] = (len(tiles), "member observations")
    for i, t in enumerate(tiles, 1):
        h[f"MEMB{i:04d}"] = t.name
    h["NOISE"] = (qa["noise_jy"], "Jy/beam, median of the noise map")
    h["PEAK"] = (qa["peak_jy"], "Jy/beam")
    h["QASTATUS"] = qa["status"]
    h["VALIDSTA"] = (validation["status"], "tile consistency (G4)")
    if qa.get("failed"):
        h["QAFAILED"] = "; ".join(qa["failed"])[:68]
    starts = [t.start_mjd for t in tiles if t.start_mjd is not None]
    ends = [t.end_mjd for t in tiles if t.end_mjd is not None]
    ra0, dec0 = (float(v) for v in m.wcs.wcs.crval)
    history = {"mosaic": f"{mosaic_id} of {len(tiles)} observations",
               "weighting": "primary-beam weighted linear, sum(B I/s^2)/sum(B^2/s^2)",
               "regrid": f"{opts.regrid} ({opts.interp_order}), pb cutoff {opts.pb_cutoff}",
               "members": ", ".join(f"{t.name} (noise {t.noise_jy * 1e3:.3g} mJy)" for t in tiles),
               "member images": ", ".join(t.image_fits.name for t in tiles),
               "validation": validation["status"] + ("; " + "; ".join(validation.get("problems", []))
                                                     if validation.get("problems") else ""),
               "qa": qa["status"] + (": " + "; ".join(qa["failed"]) if qa.get("failed") else "")}
    stamp(h, "mosaic", obj=field_name(ra0, dec0), start_mjd=min(starts) if starts else None,
          end_mjd=max(ends) if ends else None, history=history)
    return h



def clean_stale_temps(out_dir: Path, mosaic_id: str) -> list[Path]:
    """Remove temporary dirs of this mosaic left by crashed writers (contimg.paths)."""
    return clean_leftovers(out_dir, mosaic_id)


def _write_atomic(tmp: Path, out_dir: Path, mosaic_id: str, m: MosaicArrays, header: fits.Header, sources,
                  title, table) -> dict:
    """Everything into ``tmp``, then renamed into ``out_dir``, the mosaic FITS last."""
    final = output_paths(out_dir, mosaic_id)
    try:
        staged = {k: tmp / p.name for k, p in final.items()}
        write_catalog(table, tmp, mosaic_id)
        fits.PrimaryHDU(m.image, header).writeto(staged["mosaic"])
        nh = header.copy()
        nh["BTYPE"] = ("noise", "1-sigma: 1/sqrt(sum B^2/s^2)")
        fits.PrimaryHDU(m.noise, nh).writeto(staged["noise"])
        write_png(staged["png"], m, sources, title)
        for p in staged.values():
            _fsync(p)
        for key in [k for k in staged if k != "mosaic"] + ["mosaic"]:  # its presence marks completion
            os.replace(staged[key], final[key])
        _fsync(Path(out_dir))
    finally:
        release(tmp)
    return final


def combine(tiles: list[Tile], out_dir: Path, mosaic_id: str, opts: MosaicOptions | None = None,
            catalogue=None, catalogue_name: str = "catalogue") -> MosaicResult:
    """Make, assess and write one mosaic of ``tiles``.

    Raises MosaicInputError (listing every bad file) if any member is missing or
    unreadable (G3). Inconsistent members (G4) are still combined; the result's
    ``validation`` and the header's VALIDSTA say so, and the caller decides.
    ``catalogue``: Sources or mappings with ra_deg, dec_deg, flux_jy (and
    optionally name, spectral_index, ref_freq_hz) to measure recovery against.
    """
    opts = opts or MosaicOptions()
    out_dir = Path(out_dir)
    t0 = time.monotonic()
    problems = check_tiles(tiles)
    if problems:
        raise MosaicInputError(mosaic_id, problems)
    validation = validate_tiles(tiles, opts)
    out_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(out_dir, mosaic_id)

    t1 = time.monotonic()
    m = build_mosaic(tiles, opts)
    t2 = time.monotonic()
    if not m.valid.any():
        raise ValueError(f"mosaic {mosaic_id}: no pixel has a member beam >= {opts.pb_cutoff}")
    beam = header_beam(tiles, m.beam)
    freq = float(np.mean([t.freq_hz for t in tiles]))
    tmp = temp_path(out_dir / mosaic_id)
    tmp.mkdir()
    try:
        found, sources, pb_level = mosaic_sources(m, beam, freq, opts, tmp)
        t_find = time.monotonic()
        noise_jy = float(np.nanmedian(m.noise))
        peak = float(np.nanmax(m.image))
        figures = {"noise_jy": noise_jy, "peak_jy": peak, "dynamic_range": peak / noise_jy,
                   **detection_figures(found), **noise_figures(m, opts, beam["major_arcsec"]),
                   **radiometer_figures(tiles, opts)}
        if catalogue is not None:
            radius = opts.match_radius_arcsec or 0.5 * beam["major_arcsec"]
            figures["catalogue"] = match_catalogue(m, sources, catalogue, freq, radius, opts.min_catalog_snr)
            figures["catalogue"]["name"] = catalogue_name
        qa = assess(figures, opts)
        table = catalog_table(found, mosaic_id, pb_level, {"FREQ": freq, "QASTATUS": qa["status"]})
        t3 = time.monotonic()
        header = _header(m, mosaic_id, tiles, beam, opts, qa, validation)
        title = f"{mosaic_id}  ({len(tiles)} tiles, {freq / 1e6:.1f} MHz, noise {noise_jy * 1e3:.3g} mJy/beam)"
        if header.get("DATE-OBS") and header.get("DATE-END"):
            title = f"{header['DATE-OBS'][:19].replace('T', ' ')} - {header['DATE-END'][11:19]} UTC\n" + title
    except BaseException:
        release(tmp)
        raise
    paths = _write_atomic(tmp, out_dir, mosaic_id, m, header, sources, title, table)
    t4 = time.monotonic()
    timings = {"check_validate": t1 - t0, **m.timings, "find_sources": t_find - t2, "qa": t3 - t_find,
               "write": t4 - t3, "total": t4 - t0}
    return MosaicResult(mosaic_id, paths["mosaic"], paths["noise"], paths["png"], noise_jy, peak, peak / noise_jy,
                        sources, qa, validation, footprint_of(m), [t.name for t in tiles], beam,
                        {k: round(v, 2) for k, v in timings.items()},
                        {k: paths[k] for k in catalog_names(mosaic_id)})
