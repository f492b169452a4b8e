"""Time helpers: offline astropy, apparent sidereal time at the array, JD/MJD.

Offline use matters: with default settings astropy tries to download IERS-A
tables and raises for dates past its bundled predictions, so every entry point
that computes LSTs calls :func:`configure_astropy_offline` first.
"""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy.time import Time

from contimg.astro.site import LONGITUDE_RAD

SECONDS_PER_DAY = 86400.0
MJD_OFFSET = 2400000.5  # JD - MJD

_configured = False


def configure_astropy_offline() -> None:
    """Never download IERS tables; use the bundled ones, whatever their age."""
    global _configured
    if _configured:
        return
    from astropy.utils import iers

    iers.conf.auto_download = False
    iers.conf.auto_max_age = None
    _configured = True


def apparent_lst_rad(jd: np.ndarray | float) -> np.ndarray:
    """Apparent (equinox-based) local sidereal time at the array, radians in [0, 2 pi).

    This is the RA, in the true equator and equinox of date, of the meridian:
    what the correlator fringe-stops on (HA = 0) and what pyuvdata's
    ``lst_array`` holds.
    """
    configure_astropy_offline()
    t = Time(np.atleast_1d(np.asarray(jd, dtype=float)), format="jd", scale="utc")
    lst = t.sidereal_time("apparent", longitude=LONGITUDE_RAD * u.rad).to_value(u.rad)
    return np.mod(lst, 2 * np.pi)


def jd_to_mjd(jd):
    """Julian Date -> Modified Julian Date."""
    return np.asarray(jd) - MJD_OFFSET


def mjd_to_jd(mjd):
    """Modified Julian Date -> Julian Date."""
    return np.asarray(mjd) + MJD_OFFSET


def iso_to_jd(iso: str) -> float:
    """ISO UTC string (e.g. '2025-06-15T03:00:00') -> JD."""
    return float(Time(iso, format="isot", scale="utc").jd)


def jd_to_iso(jd: float, precision: int = 3) -> str:
    """JD -> ISO UTC string."""
    t = Time(jd, format="jd", scale="utc")
    t.precision = precision
    return t.isot


def next_transit_jd(ra_app_rad: float, after_jd: float) -> float:
    """First JD after ``after_jd`` at which apparent LST equals ``ra_app_rad``.

    Uses the sidereal rate and one refinement step (apparent-LST nonlinearity is
    far below a millisecond over a day).
    """
    sidereal_day = 0.99726958
    jd = after_jd
    for _ in range(3):
        dlst = np.mod(ra_app_rad - apparent_lst_rad(jd)[0], 2 * np.pi)
        if _ > 0 and dlst > np.pi:
            dlst -= 2 * np.pi
        jd = jd + dlst / (2 * np.pi) * sidereal_day
    return float(jd)
