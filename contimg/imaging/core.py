"""Image one calibrated observation: a backend (ducc0 + radler by default, or CASA
tclean) makes the restored image and residual with the w-term handled -> effective
primary beam -> pb-corrected image, noise, sources, quicklook (issue 6, M1; issue 14).

CASA runs in the calling process through contimg.casa (the caller gives each job its
own process; the ducc backend reads visibilities in a child process, visread.py);
python-casacore is never imported here.  See docs/imaging.md.
"""

from __future__ import annotations

import json
import shutil
import time
import warnings
from pathlib import Path

import numpy as np

from . import outputs, pbeam, wterm
from .engine_tclean import tclean_images
from .geometry import choose_geometry
from .options import ImageOptions, ImageResult, ImagingError
from .quicklook import write_png
from .sources import find_sources, robust_noise
from contimg.paths import release

PHASE_CENTRE_TOL_ARCSEC = 1.0


def read_ms_summary(tools, ms: Path) -> dict:
    """What imaging needs from the MS, read with casatools' table tool."""
    tb = tools.table()
    try:
        tb.open(str(ms))
        cols = list(tb.colnames())
        if tb.nrows() == 0:
            raise ImagingError(f"{ms}: the main table has no rows")
        uvw, time_ = tb.getcol("UVW"), tb.getcol("TIME")
        cross = (tb.getcol("ANTENNA1") != tb.getcol("ANTENNA2")) & ~tb.getcol("FLAG_ROW")
        tb.close()
        tb.open(str(ms / "SPECTRAL_WINDOW"))
        freqs, widths = tb.getcol("CHAN_FREQ").ravel(), np.abs(tb.getcol("CHAN_WIDTH").ravel())
        nspw = tb.nrows()
        tb.close()
        tb.open(str(ms / "FIELD"))
        phase = tb.getcol("PHASE_DIR")[:, 0, 0]
        tb.close()
    except RuntimeError as exc:
        raise ImagingError(f"{ms}: cannot read the measurement set ({exc})") from exc
    finally:
        tb.done()
    if not cross.any():
        raise ImagingError(f"{ms}: no unflagged cross-correlation rows to image")
    return {"columns": cols, "uvw": uvw, "time": time_, "cross": cross,
            "f_lo": float(np.min(freqs - widths / 2)), "f_hi": float(np.max(freqs + widths / 2)),
            "f_max": float(freqs.max()), "nchan": int(freqs.size // max(nspw, 1)),
            "chan_width_hz": float(np.median(widths)),
            "uv_max_m": float(np.max(np.hypot(uvw[0, cross], uvw[1, cross]))),
            "ra0_deg": float(np.degrees(phase[0]) % 360), "dec0_deg": float(np.degrees(phase[1]))}


def chanbin_for(summary: dict, opts: ImageOptions) -> int:
    """Channels to average: the largest divisor of nchan keeping width <= avg_chan_width_hz."""
    if not opts.avg_chan_width_hz:
        return 1
    limit = max(1, int(opts.avg_chan_width_hz // summary["chan_width_hz"]))
    return max(k for k in range(1, limit + 1) if summary["nchan"] % k == 0)


def fix_observatory(hdr) -> None:
    """Replace OBSGEO-X/Y/Z, which CASA fills from casadata's broken OVRO_MMA entry
    (height -6377 km), with the DSA-110 array reference (ITRF, metres)."""
    from contimg.astro.site import reference_ecef

    for axis, value in zip("XYZ", reference_ecef()):
        hdr[f"OBSGEO-{axis}"] = float(value)


def image_ms(ms: Path, out_dir: Path, name: str, opts: ImageOptions | None = None, *,
             pointing_dec_deg: float, mid_mjd: float, start_mjd: float, end_mjd: float) -> ImageResult:
    """Image ``ms`` into ``out_dir/<name>.{image,residual,pb,pbcor}.fits``, ``.png`` and
    ``.image.json`` (the record verify_outputs reads).  Call contimg.casa.start first.

    Raises ImagingError if the MS is missing/unreadable or CASA fails; never leaves
    partial products under the final names (outputs.py).
    """
    from astropy.io import fits
    from astropy.wcs import WCS, FITSFixedWarning

    from contimg import casa

    opts = opts or ImageOptions()
    ms, out_dir = Path(ms), Path(out_dir)
    t0 = time.monotonic()
    timings: dict = {}

    def lap(key: str, since: float) -> float:
        now = time.monotonic()
        timings[key] = round(now - since, 2)
        return now

    if not (ms.is_dir() and (ms / "table.dat").exists()):
        raise ImagingError(f"{ms}: measurement set not found (expected a directory with table.dat)")
    tools = casa.tools()
    summary = read_ms_summary(tools, ms)
    column, note = opts.datacolumn, ""
    if column == "corrected" and "CORRECTED_DATA" not in summary["columns"]:
        column, note = "data", "MS has no CORRECTED_DATA column: imaged DATA"
    beam_kw = {"pointing_dec_deg": pointing_dec_deg, "start_mjd": start_mjd, "end_mjd": end_mjd,
                "freqs_hz": pbeam.band_samples(summary["f_lo"], summary["f_hi"])}
    cell, imsize, geo_notes = choose_geometry(summary, opts, beam_kw)
    chanbin = chanbin_for(summary, opts)
    plane = wterm.fit_plane(summary["uvw"], summary["time"], summary["cross"])
    del summary["uvw"], summary["time"], summary["cross"]
    outputs.remove_leftovers(out_dir, name)
    stage = outputs.staging_dir(out_dir, name)
    work, products = stage / "work", stage / "products"
    work.mkdir()
    products.mkdir()
    names = outputs.output_names(name)
    t = lap("setup", t0)
    clock = [t]

    def stage_done(key: str) -> None:
        clock[0] = lap(key, clock[0])

    try:
        if opts.backend == "tclean":
            hdr, img, res, deconv = tclean_images(casa.tasks(), ms, column, cell, imsize, chanbin, plane, opts,
                                                  work, products, names, stage_done)
        else:
            from .engine_ducc import ducc_images

            hdr, img, res, deconv = ducc_images(ms, column, summary, cell, imsize, chanbin,
                                                plane, opts, work, stage_done, beam_kw)
            shutil.rmtree(work, ignore_errors=True)
        t = clock[0]
        fix_observatory(hdr)
        if "DATE-OBS" not in hdr:  # tclean writes it from the MS; the ducc header gets it here
            from astropy.time import Time

            hdr["DATE-OBS"] = Time(start_mjd, format="mjd", scale="utc").isot
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs2 = WCS(hdr).celestial
        ra_c, dec_c = wcs2.wcs.crval
        d_ra = abs((ra_c - summary["ra0_deg"] + 180) % 360 - 180) * np.cos(np.radians(dec_c))
        if max(d_ra, abs(dec_c - summary["dec0_deg"])) * 3600 > PHASE_CENTRE_TOL_ARCSEC:
            raise ImagingError(f"{ms}: the image centre ({ra_c:.5f}, {dec_c:.5f}) is not the MS "
                               f"phase centre ({summary['ra0_deg']:.5f}, {summary['dec0_deg']:.5f})")
        shape = img.shape
        shape4 = (1, 1, *shape)
        fits.writeto(products / names["image_fits"], img.reshape(shape4), hdr, overwrite=True)
        fits.writeto(products / names["residual_fits"], res.reshape(shape4), hdr, overwrite=True)
        t = lap("write_fits", t)
        pb = pbeam.beam_on_wcs(wcs2, shape, **beam_kw)
        inside = pb >= opts.pb_cutoff
        if not inside.any():
            raise ImagingError(f"{ms}: no pixel has pb >= {opts.pb_cutoff}")
        pbcor = np.where(inside, img / np.where(inside, pb, 1.0), np.nan).astype(np.float32)
        pb_hdr = hdr.copy()
        pb_hdr["BUNIT"] = ""
        pb_hdr["COMMENT"] = "contimg effective primary beam: Airy (D=4.65 m) averaged over HA and band"
        fits.writeto(products / names["pb_fits"], pb.astype(np.float32).reshape(shape4), pb_hdr)
        pbcor_hdr = hdr.copy()
        pbcor_hdr["COMMENT"] = f"primary-beam corrected: image / pb where pb >= {opts.pb_cutoff}, else NaN"
        fits.writeto(products / names["pbcor_fits"], pbcor.reshape(shape4), pbcor_hdr)
        t = lap("primary_beam", t)
        noise = robust_noise(res[inside])
        peak = float(np.max(img[inside]))
        sources = find_sources(img, wcs2, noise, opts.find_snr, pb=pb, pb_cutoff=opts.pb_cutoff,
                               residual=np.where(inside, res, np.nan))
        beam = (hdr["BMAJ"] * 3600, hdr["BMIN"] * 3600, hdr["BPA"])
        t = lap("sources", t)
        write_png(products / names["png"], pbcor, wcs2, noise=noise, beam_arcsec=beam, sources=sources,
                  title=f"{name} ({column.upper()}, robust {opts.robust:g}, {opts.backend}, {opts.gridder})")
        t = lap("png", t)
        timings["total"] = round(time.monotonic() - t0, 2)
        result = ImageResult(
            image_fits=out_dir / names["image_fits"], residual_fits=out_dir / names["residual_fits"],
            pb_fits=out_dir / names["pb_fits"], pbcor_fits=out_dir / names["pbcor_fits"],
            png=out_dir / names["png"], beam_major_arcsec=float(beam[0]),
            beam_minor_arcsec=float(beam[1]), beam_pa_deg=float(beam[2]), noise_jy=noise,
            peak_jy=peak, dynamic_range=peak / noise if noise > 0 else float("inf"),
            sources=sources, timings=timings, datacolumn=column, datacolumn_note=note,
            freq_hz=float(hdr.get("CRVAL3", 0.0)), cell_arcsec=float(cell), shape=list(shape),
            gridder=opts.gridder, wterm=plane, chanbin=chanbin, geometry=geo_notes,
            backend=opts.backend, deconvolution=deconv)
        record = {**result.to_dict(), "pb_cutoff": opts.pb_cutoff, "ms": str(ms),
                  "options": vars(opts)}
        for key in outputs.KINDS:
            record[key] = names[key]  # relative: the set stays valid if out_dir is moved
        (products / names["record"]).write_text(json.dumps(record, indent=1))
        outputs.commit(products, out_dir, name)
    finally:
        release(stage)
    return result
