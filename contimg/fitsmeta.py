"""FITS metadata an archive accepts, the same for every contimg product.

CASA's exportfits writes TELESCOP 'OVRO_MMA' (casadata's entry for the site) and
no provenance; mosaics had no times at all. Every image and mosaic file gets here:
TELESCOP/INSTRUME 'DSA-110', an OBJECT named from the field centre, ORIGIN with
the contimg version, DATE-OBS/DATE-END/MJD-OBS/MJD-END (UTC), BTYPE/BUNIT for what
the file holds, and HISTORY lines with what the product was made from.
"""

from __future__ import annotations

import textwrap
from datetime import datetime, timezone

from astropy.io import fits
from astropy.time import Time

from contimg import __version__

TELESCOPE = "DSA-110"

# kind -> (BTYPE, BUNIT): a beam or a weight is not 'Intensity'
KINDS = {
    "image": ("Intensity", "Jy/beam"),
    "residual": ("Intensity", "Jy/beam"),
    "pbcor": ("Intensity", "Jy/beam"),
    "pb": ("Beam gain", ""),  # dimensionless primary-beam response, 1 at the pointing centre
    "mosaic": ("Intensity", "Jy/beam"),
    "noise": ("noise", "Jy/beam"),  # 1-sigma map of the mosaic
}


def field_name(ra_deg: float, dec_deg: float, prefix: str = "DSA110") -> str:
    """IAU-style field name of a centre, e.g. DSA110_J0945+5500 (J2000 truncated)."""
    ra_h = (ra_deg % 360.0) / 15.0
    hh, mm = int(ra_h), int((ra_h % 1) * 60)
    sign = "+" if dec_deg >= 0 else "-"
    d = abs(dec_deg)
    dd, dm = int(d), int((d % 1) * 60)
    return f"{prefix}_J{hh:02d}{mm:02d}{sign}{dd:02d}{dm:02d}"


def history_lines(items: dict) -> list[str]:
    """``key: value`` lines wrapped to fit HISTORY cards (72 characters)."""
    out = []
    for k, v in items.items():
        if v is None or v == "" or v == [] or v == {}:
            continue
        out.extend(textwrap.wrap(f"{k}: {v}", 70, subsequent_indent="  ", break_long_words=True))
    return out


def stamp(header: fits.Header, kind: str, *, obj: str, start_mjd: float | None, end_mjd: float | None,
          history: dict | None = None) -> fits.Header:
    """Set the archive cards on ``header`` (in place; also returned)."""
    btype, bunit = KINDS[kind]
    naxes = max([i for i in range(1, 10) if f"CTYPE{i}" in header] or [0])
    if "WCSAXES" in header and header["WCSAXES"] < naxes:  # keys beyond WCSAXES are illegal
        header["WCSAXES"] = naxes
    header["TELESCOP"] = (TELESCOPE, "Deep Synoptic Array, 110 antennas")
    header["INSTRUME"] = (TELESCOPE, "")
    header["OBSERVER"] = ("DSA-110 drift survey", "")
    header["OBJECT"] = (obj, "field centre name")
    header["ORIGIN"] = (f"contimg {__version__}", "software that wrote this file")
    header["DATE"] = (datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"), "file written (UTC)")
    header["TIMESYS"] = ("UTC", "")
    for key, value in (("MJD-OBS", start_mjd), ("DATE-END", end_mjd), ("MJD-END", end_mjd)):
        if value is None:
            header.remove(key, ignore_missing=True)  # no stale time from an earlier stamp
    if start_mjd is not None:
        header["DATE-OBS"] = (Time(start_mjd, format="mjd", scale="utc").isot, "start of data (UTC)")
        header["MJD-OBS"] = (float(start_mjd), "start of data, MJD (UTC)")
    if end_mjd is not None:
        header["DATE-END"] = (Time(end_mjd, format="mjd", scale="utc").isot, "end of data (UTC)")
        header["MJD-END"] = (float(end_mjd), "end of data, MJD (UTC)")
    header["BTYPE"] = (btype, "what the pixels hold")
    header["BUNIT"] = (bunit, "pixel unit" if bunit else "dimensionless")
    for k in ("HISTORY",):
        header.remove(k, ignore_missing=True, remove_all=True)
    header.add_history(f"contimg {__version__} {kind} product")
    for line in history_lines(history or {}):
        header.add_history(line)
    return header


def stamp_file(path, kind: str, **kw) -> None:
    """Stamp the primary header of a FITS file in place (data untouched)."""
    with fits.open(path, mode="update", memmap=False) as hdul:
        stamp(hdul[0].header, kind, **kw)
        hdul.flush()
