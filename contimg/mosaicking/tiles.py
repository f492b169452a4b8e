"""Mosaic members (tiles), options, and the checks made before combining them.

G3: every member file must exist and be readable, and the error names every bad
file at once (an operator fixes them all in one go, not one per retry).
G4: members must agree in frequency, synthesized beam, pixel scale and pointing
declination; otherwise the primary-beam weights and the single restoring beam in
the mosaic header would misrepresent the data.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import proj_plane_pixel_scales


@dataclass
class Tile:
    """One imaged observation, as the mosaic needs it.

    ``image_fits`` is the image NOT corrected for the primary beam (Jy/beam) and
    ``pb_fits`` the effective primary beam on the same grid; ``noise_jy`` is the
    residual rms of the (uncorrected) image, so s_k in the weights.
    """

    name: str
    image_fits: Path
    pb_fits: Path
    noise_jy: float
    beam_major_arcsec: float
    beam_minor_arcsec: float
    beam_pa_deg: float
    freq_hz: float
    cell_arcsec: float
    dec_deg: float
    start_mjd: float | None = None  # time range of the data (FITS DATE-OBS/DATE-END of the mosaic)
    end_mjd: float | None = None
    residual_fits: Path | None = None  # residual image: its local rms weights the tile (noise_weighting)

    def __post_init__(self):
        self.image_fits = Path(self.image_fits)
        self.pb_fits = Path(self.pb_fits)
        self.residual_fits = None if self.residual_fits is None else Path(self.residual_fits)


@dataclass
class MosaicOptions:
    """Every threshold of combination, validation and QA; None disables a QA check."""

    pb_cutoff: float = 0.2  # a tile contributes only where its beam is >= this
    max_beam_ratio: float = 1.2  # max/min of the members' beam axes
    freq_tol_hz: float = 5e6  # |freq - median| allowed (one subband is ~11.7 MHz)
    cell_tol: float = 0.01  # fractional |cell - median| / median allowed
    dec_tol_deg: float = 0.1  # |pointing dec - median| allowed
    projection: str = "SIN"  # of the common grid, centred on the members' mean position
    interp_order: str = "bicubic"  # reproject_interp order; bilinear loses ~5-20 % of peaks
    block_rows: int = 512  # rows per regridding block: bounds transient memory
    regrid: str = "coarse"  # coarse: exact pixel map every map_step px, splined; reproject: per pixel
    map_step: int = 32  # output pixels between exact coordinate transforms (regrid='coarse')
    workers: int = 1  # processes regridding tiles (forked); 1: in this process
    # local: each tile weighted by the local rms of its residual (noisemap.py); scalar: by noise_jy
    noise_weighting: str = "local"
    noise_box_beams: float = 10.0  # box side of the local rms, in restoring-beam major axes
    common_beam: bool = True  # convolve every member to one beam containing all (commonbeam.py)
    # source finding and QA
    detect_sigma: float = 5.0  # peaks above this many local sigma are sources
    max_sources: int = 5000  # brightest kept; guards against a broken map
    match_radius_arcsec: float | None = None  # None: half the mosaic beam major axis
    min_catalog_snr: float = 10.0  # catalogue sources expected to be found above this
    max_noise_jy: float | None = None  # median of the noise map
    min_dynamic_range: float | None = 10.0
    max_noise_ratio: float | None = 1.5  # measured MAD rms / noise map (artefacts, bad cal)
    min_source_recovery_fraction: float | None = 0.8  # only with a catalogue
    flux_ratio_range: tuple[float, float] | None = (0.8, 1.2)  # median measured/catalogue
    max_offset_arcsec: float | None = 3.0  # median astrometric offset from the catalogue
    # negated-image detections / detections (5 sigma): reported; not a hold criterion by default,
    # since negative sidelobes of a bright source count too (55 vs 36 in a 24-antenna demo mosaic)
    max_false_fraction: float | None = None
    max_radiometer_ratio: float | None = None  # median tile rms / radiometer noise (needs sefd_jy)
    sefd_jy: float | None = None  # per-dish system equivalent flux density for the radiometer noise
    bandwidth_hz: float = 187.5e6  # imaged bandwidth (16 subbands)
    n_antennas: int = 96
    find_sources: bool = True  # False: no catalogue (an empty one is written), e.g. to time combination
    finder_thresh_pix: float = 5.0  # PyBDSF: island peak above this many local rms is a source
    finder_thresh_isl: float = 3.0  # PyBDSF: island boundary
    finder_fix_to_beam: bool = True  # PyBDSF: Gaussians of the header beam's shape (only with common_beam)


def load_plane(path: Path) -> tuple[np.ndarray, WCS, fits.Header]:
    """First image plane (float32, 2-D) of a FITS file, its celestial WCS and header.

    CASA writes 4-D images (RA, Dec, Stokes, Freq); the degenerate axes are dropped.
    """
    with fits.open(path, memmap=False) as hdul:
        hdu = _image_hdu(hdul)
        if hdu is None:
            raise ValueError(f"{path}: no image data")
        header = hdu.header.copy()
        data = np.asarray(hdu.data)
    while data.ndim > 2:
        data = data[0]
    return data.astype(np.float32, copy=False), celestial_wcs(header, path), header


def cell_arcsec_of(w: WCS) -> float:
    """Mean pixel scale of a celestial WCS, arcsec."""
    return float(np.mean(proj_plane_pixel_scales(w))) * 3600.0


def read_wcs(path: Path) -> WCS:
    """Celestial WCS of a FITS image file without reading its data."""
    with fits.open(path, memmap=True) as hdul:
        hdu = _image_hdu(hdul)
        if hdu is None:
            raise ValueError(f"{path}: no image data")
        return celestial_wcs(hdu.header, path)


def celestial_wcs(header: fits.Header, path: Path | str = "") -> WCS:
    """The 2-D celestial WCS of a header (raises ValueError if there is none)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        w = WCS(header).celestial
    if w.naxis != 2 or not w.has_celestial:
        raise ValueError(f"{path}: no celestial WCS")
    return w


def _image_hdu(hdul):
    for hdu in hdul:
        if getattr(hdu, "data", None) is not None and hdu.header.get("NAXIS", 0) >= 2:
            return hdu
    return None


def _check_file(path: Path, what: str, tile: str) -> list[str]:
    """Problems of one member file: exists, is a file, opens as FITS with a 2-D+ image."""
    where = f"tile {tile}: {what} {path}"
    if not path.exists():
        return [f"{where}: missing"]
    if not path.is_file():
        return [f"{where}: not a regular file"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "may have been truncated": the data read decides
        try:
            with fits.open(path, memmap=False) as hdul:
                hdu = _image_hdu(hdul)
                if hdu is None:
                    return [f"{where}: unreadable: no image data"]
                shape = hdu.data.shape  # forces the data read: catches truncation
                celestial_wcs(hdu.header, path)
                if min(shape[-2:]) < 2:
                    return [f"{where}: unreadable: image shape {shape}"]
        except Exception as exc:  # noqa: BLE001 - any failure to read is a problem to report, not a crash
            return [f"{where}: unreadable: {type(exc).__name__}: {exc}"]
    return []


def check_tiles(tiles: list[Tile]) -> list[str]:
    """G3: every problem with every member file (image and beam), each naming the file.

    Empty when all files exist and read as FITS images with a celestial WCS.
    """
    if not tiles:
        return ["no tiles given"]
    problems: list[str] = []
    for t in tiles:
        problems += _check_file(t.image_fits, "image", t.name)
        problems += _check_file(t.pb_fits, "primary beam", t.name)
    return problems


def _outliers(names, values, ref, tol) -> list[str]:
    bad = np.abs(np.asarray(values) - ref) > tol
    return [f"{n} ({v:.6g})" for n, v, b in zip(names, values, bad) if b]


def validate_tiles(tiles: list[Tile], opts: MosaicOptions | None = None) -> dict:
    """G4: consistency of the members (frequency, beam, pixel scale, declination).

    Each member is compared with the group median, so a problem names the odd tile
    out; the beam check is on the group's max/min ratio per axis. When the files
    are readable their headers are checked too (image and beam on the same grid,
    header cell equal to ``cell_arcsec``). Returns status, problems and figures.
    """
    opts = opts or MosaicOptions()
    if not tiles:
        return {"status": "invalid", "problems": ["no tiles given"], "figures": {"n_tiles": 0}}
    names = [t.name for t in tiles]
    problems: list[str] = []
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        problems.append(f"duplicate tile names: {', '.join(dup)}")
    freq = np.array([t.freq_hz for t in tiles], float)
    cell = np.array([t.cell_arcsec for t in tiles], float)
    dec = np.array([t.dec_deg for t in tiles], float)
    bmaj = np.array([t.beam_major_arcsec for t in tiles], float)
    bmin = np.array([t.beam_minor_arcsec for t in tiles], float)
    noise = np.array([t.noise_jy for t in tiles], float)

    for label, vals, unit in (("frequency", freq, "Hz"), ("cell", cell, "arcsec"), ("beam major", bmaj, "arcsec"),
                              ("beam minor", bmin, "arcsec"), ("noise", noise, "Jy")):
        bad = [n for n, v in zip(names, vals) if not (np.isfinite(v) and v > 0)]
        if bad:
            problems.append(f"{label} not a positive number ({unit}) for: {', '.join(bad)}")

    fmed, cmed, dmed = np.median(freq), np.median(cell), np.median(dec)
    if odd := _outliers(names, freq, fmed, opts.freq_tol_hz):
        problems.append(f"frequency differs from median {fmed:.6g} Hz by > {opts.freq_tol_hz:g} Hz: {', '.join(odd)}")
    if odd := _outliers(names, cell, cmed, opts.cell_tol * cmed):
        problems.append(f"pixel scale differs from median {cmed:.4g} arcsec by > {opts.cell_tol:.1%}: {', '.join(odd)}")
    if odd := _outliers(names, dec, dmed, opts.dec_tol_deg):
        problems.append(f"pointing declination differs from median {dmed:.4f} deg by > {opts.dec_tol_deg:g} deg: "
                        f"{', '.join(odd)}")
    ratios = {}
    for label, vals in (("major", bmaj), ("minor", bmin)):
        with np.errstate(divide="ignore", invalid="ignore"):
            r = float(np.max(vals) / np.min(vals))
        ratios[label] = r
        if not r <= opts.max_beam_ratio:
            hi, lo = int(np.argmax(vals)), int(np.argmin(vals))
            problems.append(f"beam {label} axes disagree: max/min {r:.3f} > {opts.max_beam_ratio:g} "
                            f"(largest {names[hi]} {vals[hi]:.3g}\", smallest {names[lo]} {vals[lo]:.3g}\")")
    problems += _header_problems(tiles, opts)
    figures = {
        "n_tiles": len(tiles),
        "freq_hz_median": float(fmed), "freq_hz_spread": float(np.ptp(freq)),
        "cell_arcsec_median": float(cmed), "cell_frac_spread": float(np.ptp(cell) / cmed) if cmed else None,
        "dec_deg_median": float(dmed), "dec_deg_spread": float(np.ptp(dec)),
        "beam_major_ratio": ratios["major"], "beam_minor_ratio": ratios["minor"],
        "beam_pa_deg_spread": float(np.ptp(np.mod([t.beam_pa_deg for t in tiles], 180.0))),
        "noise_jy_min": float(np.min(noise)), "noise_jy_max": float(np.max(noise)),
    }
    return {"status": "invalid" if problems else "valid", "problems": problems, "figures": figures}


def _header_problems(tiles: list[Tile], opts: MosaicOptions) -> list[str]:
    """Grid problems visible in the headers of readable files (unreadable ones are G3's)."""
    out = []
    for t in tiles:
        try:
            hi, hp = fits.getheader(t.image_fits), fits.getheader(t.pb_fits)
            wi, wp = celestial_wcs(hi), celestial_wcs(hp)
        except Exception:  # noqa: BLE001, S112 - unreadable files are check_tiles' (G3) problems
            continue
        shape_i = (hi.get("NAXIS2"), hi.get("NAXIS1"))
        shape_p = (hp.get("NAXIS2"), hp.get("NAXIS1"))
        if shape_i != shape_p or not np.allclose(wi.wcs.crval, wp.wcs.crval, atol=1e-9) \
                or not np.allclose(wi.wcs.crpix, wp.wcs.crpix) \
                or not np.allclose(proj_plane_pixel_scales(wi), proj_plane_pixel_scales(wp)):
            out.append(f"tile {t.name}: primary beam {t.pb_fits} is not on the image's grid {t.image_fits}")
        hdr_cell = cell_arcsec_of(wi)
        if abs(hdr_cell - t.cell_arcsec) > opts.cell_tol * t.cell_arcsec:
            out.append(f"tile {t.name}: header cell {hdr_cell:.4g} arcsec of {t.image_fits} "
                       f"differs from cell_arcsec {t.cell_arcsec:.4g}")
    return out
