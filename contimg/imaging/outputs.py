"""Output names, atomic commit and verification of an observation's image products (M1).

Everything is made in a staging directory beside ``out_dir`` (same filesystem; its
temporary name and the cleaning of crashed attempts' ones from contimg.paths), then
committed: if ``out_dir`` does not exist yet the whole directory is renamed into place
(one atomic step); otherwise each file is renamed in, the ``<name>.image.json``
record last.  The record is the commit mark: :func:`verify_outputs` accepts a set only
when the record exists and every file it names reads back as valid, so a crash
mid-commit leaves nothing that passes as done, and the next run simply redoes it.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

from .options import ImageResult
from contimg import paths
from contimg.names import IMAGE_SUFFIX as KINDS
from contimg.names import image_file_names as output_names  # noqa: F401 - the names live in contimg.names

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def staging_dir(out_dir: Path, name: str) -> Path:
    """A fresh private staging directory beside ``out_dir`` (contimg.paths.temp_path);
    the caller removes it with contimg.paths.release."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    d = paths.temp_path(out_dir)
    d.mkdir()
    return d


def remove_leftovers(out_dir: Path, name: str | None = None) -> list[Path]:
    """Delete staging directories of crashed attempts at ``out_dir`` (their writer is gone)."""
    out_dir = Path(out_dir)
    return paths.clean_leftovers(out_dir.parent, out_dir.name)


def ms_provenance(ms: Path) -> dict:
    """Time range and applied calibration tables of an MS, from its OBSERVATION and HISTORY
    tables (CASA's applycal records its gaintable there); {} where unreadable."""
    out: dict = {}
    try:
        from contimg import casa

        tb = casa.tools().table()
    except Exception:  # noqa: BLE001 - CASA not started here: provenance is best effort
        return out
    try:
        tb.open(str(ms))  # the data's own times: OBSERVATION/TIME_RANGE may be left 0 by writers
        t, dt = tb.getcol("TIME"), tb.getcol("INTERVAL")
        tb.close()
        if t.size and float(t.min()) > 0:
            out["start_mjd"] = float((t - dt / 2).min()) / 86400.0
            out["end_mjd"] = float((t + dt / 2).max()) / 86400.0
        tb.open(str(Path(ms) / "HISTORY"))
        msgs = [str(m) for m in tb.getcol("MESSAGE")] if tb.nrows() else []
        tb.close()
        out["caltables"] = [m.split("=", 1)[1].strip().strip("[]").replace("'", "")
                            for m in msgs if m.strip().startswith("gaintable")]
    except Exception:  # noqa: BLE001
        pass
    finally:
        tb.done()
    return out


def stamp_headers(products: Path, name: str, record: dict, provenance: dict | None = None) -> None:
    """Archive cards and provenance HISTORY on the four FITS products (contimg.fitsmeta)."""
    from astropy.io import fits
    from astropy.time import Time

    from contimg.fitsmeta import field_name, stamp_file

    names = output_names(name)
    prov = dict(provenance or {})
    hdr = fits.getheader(Path(products) / names["image_fits"])
    def valid(v):  # MJD 0 (1858): a writer left the time unset
        return float(v) if v is not None and float(v) > 40000 else None

    start = valid(record.get("start_mjd")) or valid(prov.get("start_mjd"))
    end = valid(record.get("end_mjd")) or valid(prov.get("end_mjd"))
    if start is None and hdr.get("DATE-OBS"):
        start = valid(Time(hdr["DATE-OBS"], scale="utc").mjd)
    opts = record.get("options") or {}
    history = {"observation": name, "MS": record.get("ms"), "data column": record.get("datacolumn"),
               "calibration tables": ", ".join(prov.get("caltables") or []) or None,
               "sky model": record.get("sky_model"), "flags": record.get("flags"),
               "imaging": ", ".join(f"{k}={v}" for k, v in opts.items()),
               "gridder": f"{record.get('gridder')}, channels averaged {record.get('chanbin')}",
               "self-calibration": _selfcal_line((record.get("deconvolution") or {}).get("selfcal")),
               "noise": f"{record.get('noise_jy')} Jy/beam (residual MAD)",
               "primary beam": f"Airy D=4.65 m averaged over HA and band, cutoff {record.get('pb_cutoff')}"}
    obj = field_name(float(hdr.get("CRVAL1", 0.0)), float(hdr.get("CRVAL2", 0.0)))
    for key, kind in (("image_fits", "image"), ("residual_fits", "residual"), ("pb_fits", "pb"),
                      ("pbcor_fits", "pbcor")):
        stamp_file(Path(products) / names[key], kind, obj=obj, start_mjd=start, end_mjd=end, history=history)


def _selfcal_line(figures: dict | None) -> str | None:
    if not figures:
        return None
    applied = "applied, CLEAN restarted" if figures.get("applied", True) else "not applied (within noise)"
    return (f"phase-only against the observation's own CLEAN model, solint {figures.get('solint_s')} s, "
            f"{figures.get('bins')} solutions per antenna, phase rms {figures.get('phase_rms_deg')} deg, "
            f"failed (interpolated) {figures.get('failed_fraction')}; {applied}")


def commit(products: Path, out_dir: Path, name: str) -> None:
    """Move the finished products (files named by :func:`output_names`) into out_dir.

    First the FITS headers get their archive cards and provenance (stamp_headers)."""
    out_dir = Path(out_dir)
    names = output_names(name)
    record = json.loads((Path(products) / names["record"]).read_text())
    stamp_headers(products, name, record, ms_provenance(Path(record["ms"])) if record.get("ms") else {})
    if not out_dir.exists():
        try:
            os.rename(products, out_dir)
            return
        except OSError:  # created meanwhile by someone else: fall back to per-file renames
            pass
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / names["record"]).unlink(missing_ok=True)  # old set stops counting as done first
    for key, fname in names.items():
        if key != "record":
            os.replace(products / fname, out_dir / fname)
    os.replace(products / names["record"], out_dir / names["record"])


def _read_fits(path: Path):
    from astropy.io import fits

    with warnings.catch_warnings():  # a truncated file is reported by returning None
        warnings.simplefilter("ignore")
        with fits.open(path, memmap=False) as hdul:
            return np.asarray(hdul[0].data), hdul[0].header.copy()


def verify_outputs(out_dir: Path, name: str) -> ImageResult | None:
    """M1: the recorded result if every product exists and reads back valid, else None.

    Valid: the record parses; the four FITS open, have the recorded shape and matching
    WCS; image, residual and pb are finite everywhere; pbcor is finite exactly where
    pb >= the recorded cutoff (NaN elsewhere); the PNG has a PNG signature.  No
    re-imaging is done.
    """
    out_dir = Path(out_dir)
    names = output_names(name)
    try:
        rec = json.loads((out_dir / names["record"]).read_text())
        res = ImageResult.from_dict(rec, base=out_dir)
        shape = tuple(rec["shape"])
        cutoff = float(rec["pb_cutoff"])
        arrays, ref = {}, None
        for key in ("image_fits", "residual_fits", "pb_fits", "pbcor_fits"):
            path = out_dir / names[key]
            if getattr(res, key) != path:
                return None
            data, hdr = _read_fits(path)
            if data.shape[-2:] != shape or data.size != shape[0] * shape[1]:
                return None
            wcs_key = tuple(hdr.get(k) for k in ("CRVAL1", "CRVAL2", "CDELT1", "CDELT2", "CRPIX1", "CRPIX2"))
            if ref is None:
                ref = wcs_key
            elif wcs_key != ref:
                return None
            arrays[key] = data.reshape(shape)
        for key in ("image_fits", "residual_fits", "pb_fits"):
            if not np.all(np.isfinite(arrays[key])):
                return None
        inside = arrays["pb_fits"] >= cutoff
        if not inside.any() or not np.array_equal(np.isfinite(arrays["pbcor_fits"]), inside):
            return None
        with open(out_dir / names["png"], "rb") as fh:
            if fh.read(8) != PNG_MAGIC:
                return None
    except Exception:  # noqa: BLE001 - anything unreadable (truncated FITS, bad JSON, ...) is simply not done
        return None
    res.reused = True
    return res
