"""One source finder for images and mosaics: PyBDSF (bdsf), run in-process and quietly.

Chosen over Aegean+BANE by measurement (docs/catalogues.md): as complete, as few
false detections once each uses its own background and rms maps, and 3-4x faster
(Aegean's pure-Python fitting and BANE's box statistics dominate on big maps).

bdsf writes a log file beside its input and prints progress: the image is handed
to it as a FITS file in a private scratch directory (removed afterwards), with
stdout silenced at the file-descriptor level and its loggers muted. Background
and rms maps come from contimg.catalogs.background (clipped box statistics, a small
box near bright sources, so their sidelobes and calibration artefacts raise the
local rms instead of becoming sources; PyBDSF's own maps with background="bdsf"); islands
are fitted with Gaussians and grouped into sources with integrated fluxes, sizes
and errors. The false-detection estimate applies the same peak criterion to the
negated image with the same background and rms maps.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy import ndimage

COLUMNS = ("ra_deg", "dec_deg", "ra_err_arcsec", "dec_err_arcsec", "peak_jy", "peak_err_jy",
           "int_flux_jy", "int_flux_err_jy", "maj_arcsec", "min_arcsec", "pa_deg", "maj_err_arcsec",
           "min_err_arcsec", "pa_err_deg", "local_rms_jy", "snr", "x", "y", "n_gauss")


@dataclass
class FinderOptions:
    thresh_pix: float = 5.0  # island peak must exceed this many local rms
    thresh_isl: float = 3.0  # island boundary, local rms
    rms_box: tuple[int, int] | None = None  # (box, step) pixels; None: bdsf chooses
    adaptive_rms_box: bool = True  # smaller box near bright sources (their artefacts)
    background: str = "box"  # "box": contimg.catalogs.background maps; "bdsf": PyBDSF's own
    fix_to_beam: bool = False  # True: Gaussians of the beam's shape, only flux and position fitted (docs/catalogues.md)
    max_sources: int = 20000  # guard against a broken map
    # bdsf flags (drops) a Gaussian with axis ratio > 2 whose contour at this fraction of
    # its FWHM leaves the island's box. Its default 0.5 dropped isolated 15-sigma point
    # sources whenever the restoring beam itself is that elongated; 0 turns the check off
    # (the size flags stay). docs/catalogues.md
    flag_maxsize_fwhm: float = 0.0


@dataclass
class FoundSources:
    """Columns (numpy arrays, one entry per source, brightest peak first) and maps' figures."""

    columns: dict = field(default_factory=dict)
    n_negative: int = 0  # islands in the negated image passing the same peak threshold
    n_negative_gt10: int = 0
    rms_median_jy: float = float("nan")
    finder: str = "PyBDSF"
    version: str = ""
    note: str = ""  # how the finder deviated from its normal run, if it did

    def __len__(self) -> int:
        return len(self.columns.get("ra_deg", ()))

    def rows(self) -> list[dict]:
        keys = list(self.columns)
        return [{k: _py(self.columns[k][i]) for k in keys} for i in range(len(self))]


def _py(v):
    return v.item() if hasattr(v, "item") else v


@contextlib.contextmanager
def _quiet():
    """Silence bdsf: fd 1 to /dev/null (its C and print output), loggers and warnings off."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    old_disable = logging.root.manager.disable
    try:
        os.dup2(devnull, 1)
        logging.disable(logging.CRITICAL)
        with warnings.catch_warnings(), contextlib.redirect_stdout(open(os.devnull, "w")):
            warnings.simplefilter("ignore")
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
        logging.disable(old_disable)


def _empty() -> dict:
    return {k: np.zeros(0, int if k == "n_gauss" else float) for k in COLUMNS}


def find_sources(image: np.ndarray, header: fits.Header, opts: FinderOptions | None = None,
                 scratch: Path | None = None, noise_floor: np.ndarray | None = None) -> FoundSources:
    """Sources in a 2-D image (Jy/beam, NaN where blank) whose header has a celestial
    WCS and BMAJ/BMIN/BPA. ``scratch``: a directory for bdsf's files (a private
    temporary one inside it is used and removed).

    ``noise_floor``: a known noise map (a mosaic's sigma_M). The local rms is then
    max(PyBDSF's box rms, floor): a box rms lags where the noise rises steeply (a
    mosaic's edges), and sources must pass the threshold against both, the same
    rule as for the negated image.
    """
    bdsf = _import_bdsf()
    opts = opts or FinderOptions()
    img = np.asarray(image, np.float32)
    if img.ndim != 2:
        raise ValueError(f"find_sources wants a 2-D image, got shape {img.shape}")
    h = header.copy()
    for k in [k for k in h if k.startswith(("HISTORY", "COMMENT"))]:
        h.remove(k, ignore_missing=True, remove_all=True)
    for k in ("BMAJ", "BMIN"):
        if k not in h:
            raise ValueError(f"find_sources: header has no {k} (restoring beam)")
    h.setdefault("BPA", 0.0)
    h.setdefault("CRVAL3", h.get("FREQ", 1.4e9))
    out = FoundSources(columns=_empty(), version=getattr(bdsf, "__version__", ""))
    if not np.isfinite(img).any():
        return out
    tmp = Path(tempfile.mkdtemp(prefix=".bdsf-", dir=scratch))
    try:
        path = tmp / "image.fits"
        fits.PrimaryHDU(img, h).writeto(path)
        kw = {"rms_box": tuple(opts.rms_box)} if opts.rms_box else {}
        if opts.background == "box":
            kw = _box_background(img, h, noise_floor, tmp)
        elif opts.background != "bdsf":
            raise ValueError(f"find_sources: background must be 'box' or 'bdsf', not {opts.background!r}")
        run = dict(quiet=True, thresh="hard", thresh_pix=opts.thresh_pix, thresh_isl=opts.thresh_isl,
                   adaptive_rms_box=opts.adaptive_rms_box, fix_to_beam=opts.fix_to_beam,
                   flag_maxsize_fwhm=float(opts.flag_maxsize_fwhm), ncores=1, output_opts=False,
                   print_timing=False, frequency=float(h.get("FREQ", h["CRVAL3"])))
        run.update(kw)
        try:
            res = _process(bdsf, path, run)
        except (RuntimeError, FloatingPointError) as exc:
            # bdsf refuses a box of its rms map with (almost) no valid pixels, as at the
            # ragged blank edge of a mosaic ("unphysical rms"). Blank pixels are given
            # noise of the image's own level (seeded: the same image gives the same
            # catalogue) so every box has statistics; sources there are dropped below.
            fits.PrimaryHDU(_fill_blank(img), h).writeto(path, overwrite=True)
            res = _process(bdsf, path, run)
            out.note = f"bdsf rms map failed on blank pixels ({exc}); they were filled with noise"
        rms, mean = (_as_image(getattr(res, k), img.shape) for k in ("rms_arr", "mean_arr"))
        if noise_floor is not None:
            rms = np.fmax(rms, np.asarray(noise_floor, np.float32))
        out.rms_median_jy = float(np.nanmedian(rms[np.isfinite(img)]))
        out.columns = _columns(res.sources, rms, opts.max_sources, celestial_wcs(h))
        keep = out.columns["snr"] >= opts.thresh_pix
        if len(keep):   # a source is only where the image has data
            xi = np.clip(np.rint(out.columns["x"]).astype(int), 0, img.shape[1] - 1)
            yi = np.clip(np.rint(out.columns["y"]).astype(int), 0, img.shape[0] - 1)
            keep &= np.isfinite(img[yi, xi])
        out.columns = {k: v[keep] for k, v in out.columns.items()}
        out.n_negative, out.n_negative_gt10 = _negative_islands(img, mean, rms, opts)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _box_background(img: np.ndarray, h: fits.Header, noise_floor, tmp: Path) -> dict:
    """Write our mean and rms maps for bdsf (contimg.catalogs.background) and return the
    bdsf options that make it use them instead of computing its own."""
    from contimg.catalogs.background import background_maps

    beam_px = float(h["BMAJ"]) / abs(float(h.get("CDELT2", h.get("CD2_2", 1.0))))
    mean, rms = background_maps(img, beam_px, noise_floor)
    names = []
    for name, data in (("mean", mean), ("rms", rms)):
        names.append(f"{name}.fits")  # bdsf reads them from the image's directory
        fits.PrimaryHDU(data, h).writeto(tmp / names[-1])
    # bdsf only reads the maps when its rms box is at most a quarter of the image
    box = max(3, min(int(8 * beam_px), min(img.shape) // 4))
    return {"rmsmean_map_filename": names, "rms_box": (box, max(1, box // 3)), "rms_map": True,
            "mean_map": "map", "adaptive_rms_box": False}


def _fill_blank(img: np.ndarray) -> np.ndarray:
    """The image with NaN pixels replaced by seeded Gaussian noise of its robust rms."""
    good = img[np.isfinite(img)]
    sigma = 1.4826 * float(np.median(np.abs(good - np.median(good)))) or float(np.std(good)) or 1.0
    out = img.copy()
    blank = ~np.isfinite(out)
    out[blank] = np.random.default_rng(0).normal(0.0, sigma, int(blank.sum())).astype(out.dtype)
    return out


def _process(bdsf, path: Path, run: dict):
    # divide/invalid must not raise inside bdsf (see _import_bdsf)
    with _quiet(), np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return bdsf.process_image(str(path), **run)


def _import_bdsf():
    """Import bdsf without its side effect on numpy.

    bdsf's gaul2srl module calls ``numpy.seterr(divide='raise')`` at import, for the
    whole process: a later division by zero anywhere (bdsf's own rms-map workers on a
    mosaic with blank boxes, or contimg's code) then raised FloatingPointError and
    failed the mosaic. The error state from before the import is put back.
    """
    saved = np.geterr()
    try:
        import bdsf
    finally:
        np.seterr(**saved)
    return bdsf


def celestial_wcs(h: fits.Header):
    from astropy.wcs import WCS, FITSFixedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return WCS(h).celestial


def _as_image(a, shape) -> np.ndarray:
    """bdsf keeps maps transposed, (x, y); a scalar means a constant map."""
    a = np.asarray(a, np.float32)
    if a.ndim == 0 or a.size == 1:
        return np.full(shape, float(a.ravel()[0]), np.float32)
    return a.T if a.shape == tuple(shape)[::-1] else a.reshape(shape)


def _columns(sources, rms: np.ndarray, max_sources: int, wcs) -> dict:
    if not sources:
        return _empty()
    ny, nx = rms.shape
    rows = []
    pos = np.array([[float(s.posn_sky_centroid[0]), float(s.posn_sky_centroid[1])] for s in sources])
    xs, ys = wcs.world_to_pixel_values(pos[:, 0], pos[:, 1])
    for s, x, y in zip(sources, np.atleast_1d(xs), np.atleast_1d(ys)):
        x, y = float(x), float(y)
        ix, iy = min(max(int(round(x)), 0), nx - 1), min(max(int(round(y)), 0), ny - 1)
        local = float(rms[iy, ix]) if np.isfinite(rms[iy, ix]) and rms[iy, ix] > 0 else float(s.rms_isl)
        size, size_e = list(s.size_sky) + [0.0] * 3, list(s.size_skyE) + [0.0] * 3
        rows.append((float(s.posn_sky_centroid[0]) % 360.0, float(s.posn_sky_centroid[1]),
                     float(s.posn_sky_centroidE[0]) * 3600.0, float(s.posn_sky_centroidE[1]) * 3600.0,
                     float(s.peak_flux_max), float(s.peak_flux_maxE), float(s.total_flux), float(s.total_fluxE),
                     size[0] * 3600.0, size[1] * 3600.0, size[2], size_e[0] * 3600.0, size_e[1] * 3600.0,
                     size_e[2], local, float(s.peak_flux_max) / local if local > 0 else np.inf, x, y,
                     int(getattr(s, "ngaus", 1))))
    arr = np.array(rows, float)
    arr = arr[np.argsort(-arr[:, 4])][:max_sources]
    cols = {k: arr[:, i] for i, k in enumerate(COLUMNS)}
    cols["n_gauss"] = cols["n_gauss"].astype(int)
    return cols


def _negative_islands(img, mean, rms, opts: FinderOptions) -> tuple[int, int]:
    """Islands of the negated image (above thresh_isl) whose peak passes thresh_pix (and 10)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        neg = np.where(np.isfinite(img) & (rms > 0), -(img - mean) / rms, 0.0)
    labels, n = ndimage.label(neg > opts.thresh_isl)
    if n == 0:
        return 0, 0
    peaks = ndimage.maximum(neg, labels, np.arange(1, n + 1))
    return int(np.sum(peaks > opts.thresh_pix)), int(np.sum(peaks > 10.0))
