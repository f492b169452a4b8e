"""The tclean backend: CASA tclean (standard gridder) on a channel-averaged copy, then
exportfits and the coplanar w-term remap in the image plane (wterm.correct_image).

Kept as the reference and for comparison (``image.backend = tclean``); see
docs/imaging.md.  CASA runs in the calling process (one image_ms per process).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from . import wterm
from .options import ImageOptions, ImagingError


@contextlib.contextmanager
def casa_call(cwd: Path):
    """Run a CASA task inside ``cwd`` with stdout sent to stderr.

    tclean prints progress bars on fd 1 (keep stdout clean for --json callers) and
    makes TempLattice* scratch tables in the current directory (seen deleted from under
    it in a shared checkout, failing the major cycle): the staging directory is private.
    Changing directory is process-wide, which is why image_ms wants its own process.
    """
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with stdout_to_stderr():
            yield
    finally:
        os.chdir(old)


@contextlib.contextmanager
def stdout_to_stderr():
    """tclean prints progress bars on fd 1; keep stdout clean for --json callers."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


# tclean's stopcode (casatasks imager_base.getStopDescription) -> the record's stopped_by
STOPPED_BY = {1: "niter", 2: "threshold", 3: "force stop", 4: "no change in peak residual",
              5: "diverging", 6: "diverging", 7: "zero mask", 8: "threshold", 9: "nmajor"}


def stop_record(rec, niter: int, nmajor: int) -> dict:
    """The deconvolution record from tclean's summary (iterdone, nmajordone, stopcode).

    ``cap_bound`` is what `contimg status` reports: CLEAN stopped on image.niter or
    image.max_cycles rather than on its threshold, so the image is shallower than asked.
    """
    rec = rec if isinstance(rec, dict) else {}
    code = int(rec.get("stopcode", 0) or 0)
    stop = STOPPED_BY.get(code, f"stopcode {code}" if code else "unknown")
    return {"iterations": int(rec.get("iterdone", 0) or 0),
            "major_cycles": int(rec.get("nmajordone", 0) or 0), "stopped_by": stop,
            "cap_bound": stop in ("niter", "nmajor"), "niter_cap": int(niter), "nmajor_cap": int(nmajor)}


def run_tclean(tasks, ms: Path, imagename: Path, column: str, cell: float, imsize: list[int],
               opts: ImageOptions) -> dict:
    """tclean with the options documented in ImageOptions (never masks by CASA's beam);
    returns its summary record."""
    gridder = "wproject" if opts.gridder == "wproject" else "standard"
    extra = {"wprojplanes": opts.wprojplanes} if gridder == "wproject" else {}
    with casa_call(imagename.parent):
        rec = tasks.tclean(
            vis=str(ms), imagename=str(imagename), datacolumn=column, imsize=imsize,
            cell=f"{cell}arcsec", stokes="I", specmode="mfs", gridder=gridder, deconvolver="hogbom",
            weighting="briggs", robust=float(opts.robust), niter=opts.niter_for("tclean"), gain=0.1,
            threshold="0Jy", nsigma=opts.threshold_sigma_for("tclean"), cyclefactor=float(opts.cyclefactor),
            nmajor=int(opts.nmajor),
            pblimit=-1e-4,  # negative: never mask by CASA's own beam (we compute ours)
            savemodel="none", restoration=True, pbcor=False, interactive=False, parallel=False,
            **extra)
    if not (imagename.parent / f"{imagename.name}.image").exists():
        raise ImagingError(f"{ms}: tclean made no image ({rec!r}); see the CASA log")
    return rec


def average_channels(tasks, ms: Path, out: Path, column: str, chanbin: int) -> Path:
    """Channel-averaged copy (DATA column) in the staging area: gridding cost is per
    visibility, so 4 x fewer channels make every major cycle ~4x cheaper."""
    with casa_call(out.parent):
        tasks.mstransform(vis=str(ms), outputvis=str(out), datacolumn=column, chanaverage=True,
                          chanbin=chanbin, keepflags=True)
    if not (out / "table.dat").exists():
        raise ImagingError(f"{ms}: mstransform (channel averaging) wrote nothing")
    return out


def export(tasks, image: Path, fits_path: Path) -> None:
    with casa_call(fits_path.parent):
        tasks.exportfits(imagename=str(image), fitsimage=str(fits_path), dropdeg=False,
                         overwrite=True, velocity=False, bitpix=-32, history=False)
    if not fits_path.exists():
        raise ImagingError(f"exportfits wrote nothing for {image}")


def tclean_images(tasks, ms: Path, column: str, cell: float, imsize: list[int], chanbin: int,
                  plane: dict, opts: ImageOptions, work: Path, products: Path, names: dict,
                  lap) -> tuple:
    """(4-D FITS header, restored image, residual, deconvolution info) made by tclean,
    w-corrected by resampling.  ``lap(key)`` records a stage time."""
    from astropy.io import fits

    vis, vis_column = ms, column
    if chanbin > 1:
        vis, vis_column = average_channels(tasks, ms, work / "avg.ms", column, chanbin), "data"
        lap("average")
    name = names["image_fits"][: -len(".image.fits")]
    rec = run_tclean(tasks, vis, work / name, vis_column, cell, imsize, opts)
    lap("tclean")
    export(tasks, work / f"{name}.image", products / names["image_fits"])
    export(tasks, work / f"{name}.residual", products / names["residual_fits"])
    shutil.rmtree(work, ignore_errors=True)
    lap("exportfits")
    with fits.open(products / names["image_fits"], memmap=False) as h:
        hdr, img4 = h[0].header.copy(), h[0].data.astype(np.float32)
    with fits.open(products / names["residual_fits"], memmap=False) as h:
        res4 = h[0].data.astype(np.float32)
    shape = img4.shape[-2:]
    img, res = img4.reshape(shape), res4.reshape(shape)
    if opts.gridder == "coplanar":
        crpix, cdelt = (hdr["CRPIX1"], hdr["CRPIX2"]), (hdr["CDELT1"], hdr["CDELT2"])
        img = wterm.correct_image(img, crpix, cdelt, plane["a"], plane["b"])
        res = wterm.correct_image(res, crpix, cdelt, plane["a"], plane["b"])
        lap("wterm")
    info = stop_record(rec, opts.niter_for("tclean"), opts.nmajor)
    return hdr, img, res, info
