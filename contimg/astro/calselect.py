"""Which observation holds a calibrator transit (requirement K1).

The dishes stay on the meridian, so a source is calibratable only while it
transits: the observation whose time span contains the source's transit
(HA = 0 in the apparent frame of date, i.e. apparent LST = apparent RA) and
whose pointing declination is within the beam's reach is the calibrator
observation.  Among candidates the brightest *beam-weighted* flux wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy import units as u
from astropy.coordinates import TETE, SkyCoord
from astropy.time import Time

from contimg.astro.beam import airy_power
from contimg.astro.catalog import Source, load_calibrators
from contimg.astro.site import dsa110_location
from contimg.astro.times import configure_astropy_offline

SIDEREAL_RATE = 1.00273781191135448  # sidereal days per solar day


@dataclass(frozen=True)
class CalibratorChoice:
    source: Source
    transit_mjd: float
    beam_weighted_jy: float
    offset_deg: float


def apparent_ra_rad(source: Source, mjd: float) -> float:
    """RA of date (true equator and equinox) of a J2000 source at ``mjd``."""
    t = Time(mjd, format="mjd", scale="utc")
    c = SkyCoord(source.ra_deg * u.deg, source.dec_deg * u.deg, frame="icrs")
    return float(c.transform_to(TETE(obstime=t, location=dsa110_location())).ra.rad)


def transit_mjd_near(source: Source, mjd: float) -> float:
    """The transit of ``source`` nearest to ``mjd`` (within half a sidereal day)."""
    configure_astropy_offline()
    t = Time(mjd, format="mjd", scale="utc")
    lst = t.sidereal_time("apparent", longitude=dsa110_location().lon).rad
    ha = (lst - apparent_ra_rad(source, mjd) + np.pi) % (2 * np.pi) - np.pi
    return mjd - ha / (2 * np.pi) / SIDEREAL_RATE


def choose_calibrator(start_mjd: float, end_mjd: float, dec_deg: float, *,
                      max_offset_deg: float = 2.0, min_beam_jy: float = 1.0,
                      freq_hz: float = 1.405e9,
                      catalogue: list[Source] | None = None) -> CalibratorChoice | None:
    """The brightest beam-weighted catalogue source transiting in [start, end], or None."""
    sources = catalogue if catalogue is not None else load_calibrators(compact_only=True)
    mid = 0.5 * (start_mjd + end_mjd)
    best: CalibratorChoice | None = None
    for src in sources:
        offset = abs(src.dec_deg - dec_deg)
        if offset > max_offset_deg:
            continue
        transit = transit_mjd_near(src, mid)
        if not (start_mjd <= transit <= end_mjd):
            continue
        weighted = float(src.flux_at(freq_hz) * airy_power(np.radians(offset), freq_hz))
        if weighted < min_beam_jy:
            continue
        if best is None or weighted > best.beam_weighted_jy:
            best = CalibratorChoice(src, float(transit), weighted, float(offset))
    return best
