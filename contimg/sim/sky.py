"""Sky for the simulator: default pointing, default source list, apparent source tracks.

Source positions are followed as hour angle and declination in the frame of the
files' uvw (ITRF rotated by the array longitude), where the correlator's phase
centre is (HA = 0, Dec = pointing): RA = apparent LST(t).
"""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy.coordinates import ICRS, ITRS, CartesianRepresentation, SkyCoord
from astropy.time import Time

from contimg.astro import times
from contimg.astro.catalog import (
    Source,
    calibrators_near_dec,
    find_source,
    load_calibrators,
)
from contimg.astro.site import LONGITUDE_RAD, dsa110_location

DEFAULT_CALIBRATOR = "3C286"
DEFAULT_DATE_ISO = "2025-06-15T00:00:00"  # fixed so default runs are reproducible


def apparent_hadec(src: Source, jd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hour angle and declination of ``src`` at each JD (radians), as the array sees it.

    The source's topocentric direction in ITRS (astropy: precession, nutation,
    aberration, polar motion) is rotated by the array longitude into the frame
    in which the files' uvw are defined (X to the local meridian on the equator,
    Z to the pole). Expressed as (LST - HA, Dec) these equal pyuvdata's apparent
    coordinates (checked to < 1 mas), so re-phasing the data with pyuvdata to the
    source's ICRS position makes it real.
    """
    times.configure_astropy_offline()
    jd = np.atleast_1d(jd)
    t = Time(jd, format="jd", scale="utc")
    c = SkyCoord(ra=src.ra_deg * u.deg, dec=src.dec_deg * u.deg, frame="icrs")
    xyz = c.transform_to(ITRS(obstime=t, location=dsa110_location())).cartesian.xyz.value  # (3, Nt)
    xyz = xyz / np.linalg.norm(xyz, axis=0)
    lon = LONGITUDE_RAD
    x = np.cos(lon) * xyz[0] + np.sin(lon) * xyz[1]
    y = -np.sin(lon) * xyz[0] + np.cos(lon) * xyz[1]
    return np.arctan2(-y, x), np.arcsin(np.clip(xyz[2], -1, 1))


def source_tracks(sources: list[Source], jd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hour angle and declination (see :func:`apparent_hadec`), each (Nsrc, Nt), radians."""
    return hadec_many(np.array([s.ra_deg for s in sources]), np.array([s.dec_deg for s in sources]), jd)


def hadec_many(ra_deg: np.ndarray, dec_deg: np.ndarray, jd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`apparent_hadec` for many sources at the same times in one astropy call: (Nsrc, Nt) each."""
    times.configure_astropy_offline()
    ra = np.asarray(ra_deg, float).reshape(-1, 1)
    jd = np.atleast_1d(np.asarray(jd, float))
    if ra.shape[0] == 0:
        return np.empty((0, jd.size)), np.empty((0, jd.size))
    t = Time(jd[None, :], format="jd", scale="utc")
    c = SkyCoord(ra=ra * u.deg, dec=np.asarray(dec_deg, float).reshape(-1, 1) * u.deg, frame="icrs")
    xyz = c.transform_to(ITRS(obstime=t, location=dsa110_location())).cartesian.xyz.value  # (3, Nsrc, Nt)
    xyz = xyz / np.linalg.norm(xyz, axis=0)
    lon = LONGITUDE_RAD
    x = np.cos(lon) * xyz[0] + np.sin(lon) * xyz[1]
    y = -np.sin(lon) * xyz[0] + np.cos(lon) * xyz[1]
    return np.arctan2(-y, x), np.arcsin(np.clip(xyz[2], -1, 1))


def hadec_at(ra_deg: np.ndarray, dec_deg: np.ndarray, jd_each: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apparent (HA, Dec) of each source at its own time ``jd_each`` (all (Nsrc,))."""
    times.configure_astropy_offline()
    ra = np.asarray(ra_deg, float)
    if ra.size == 0:
        return np.empty(0), np.empty(0)
    t = Time(np.asarray(jd_each, float), format="jd", scale="utc")
    c = SkyCoord(ra=ra * u.deg, dec=np.asarray(dec_deg, float) * u.deg, frame="icrs")
    xyz = c.transform_to(ITRS(obstime=t, location=dsa110_location())).cartesian.xyz.value
    xyz = xyz / np.linalg.norm(xyz, axis=0)
    lon = LONGITUDE_RAD
    x = np.cos(lon) * xyz[0] + np.sin(lon) * xyz[1]
    y = -np.sin(lon) * xyz[0] + np.cos(lon) * xyz[1]
    return np.arctan2(-y, x), np.arcsin(np.clip(xyz[2], -1, 1))


def transit_jd_many(ra_deg: np.ndarray, dec_deg: np.ndarray, near_jd: float) -> np.ndarray:
    """Transit (HA = 0) JD of each source nearest ``near_jd`` (two Newton steps on the
    apparent hour angle; good to well under a second)."""
    ra = np.asarray(ra_deg, float)
    tr = np.full(ra.shape, float(near_jd))
    for _ in range(3):
        ha, _ = hadec_at(ra, dec_deg, tr)
        tr = tr - ha / (2 * np.pi) * 0.99726958
    return tr


def meridian_icrs(jd: np.ndarray, dec_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ICRS RA/Dec (deg) of the points (HA = 0, Dec = dec_deg) at each JD.

    The inverse of :func:`apparent_hadec` (same frame: the meridian direction is
    built in the array's equatorial frame, rotated to ITRS and transformed to
    ICRS by astropy), so a source placed here transits exactly at ``jd``.
    """
    times.configure_astropy_offline()
    jd = np.atleast_1d(jd)
    dec = np.radians(np.broadcast_to(dec_deg, jd.shape))
    lon = LONGITUDE_RAD
    x, z = np.cos(dec), np.sin(dec)  # HA = 0: no east component
    itrs = ITRS(CartesianRepresentation(np.cos(lon) * x, np.sin(lon) * x, z),
                obstime=Time(jd, format="jd", scale="utc"), location=dsa110_location())
    icrs = SkyCoord(itrs).transform_to(ICRS())
    return icrs.ra.to_value(u.deg), icrs.dec.to_value(u.deg)


def _apparent_ra(src: Source, jd: float) -> float:
    return float(times.apparent_lst_rad(jd)[0] - apparent_hadec(src, jd)[0][0])


def transit_jd(src: Source, after_jd: float) -> float:
    """JD of the first transit (HA = 0) of ``src`` after ``after_jd``."""
    jd = times.next_transit_jd(_apparent_ra(src, after_jd), after_jd)
    # one more pass with the apparent RA at the transit epoch itself
    return times.next_transit_jd(_apparent_ra(src, jd), jd - 0.01)


def default_calibrator(dec_deg: float | None) -> Source:
    """3C286 when no declination is given; else the brightest compact source within 2 deg.

    Falls back to the compact source nearest in declination when none is within 2 deg.
    """
    if dec_deg is None:
        return find_source(DEFAULT_CALIBRATOR)
    near = calibrators_near_dec(dec_deg, 2.0)
    if near:
        return near[0]
    return min(load_calibrators(compact_only=True), key=lambda s: abs(s.dec_deg - dec_deg))


def catalogue_sources_in_span(dec0_deg: float, jd0: float, jd1: float, max_offset_deg: float = 5.0) -> list[Source]:
    """Compact catalogue sources that pass within ``max_offset_deg`` of the pointing during [jd0, jd1]."""
    out = []
    lst = times.apparent_lst_rad(np.array([jd0, jd1]))
    for s in load_calibrators(compact_only=True):
        if abs(s.dec_deg - dec0_deg) > max_offset_deg:
            continue
        # HA range over the span; the beam matters only near the meridian
        ha = np.angle(np.exp(1j * (lst - np.radians(s.ra_deg))))
        margin = np.radians(max_offset_deg) / max(np.cos(np.radians(s.dec_deg)), 0.05)
        if ha[0] <= margin and ha[1] >= -margin:
            out.append(s)
    return out


def field_sources(rng: np.random.Generator, n: int, dec0_deg: float, jd0: float, jd1: float) -> list[Source]:
    """``n`` fainter point sources (0.1-2 Jy, log-uniform) within 2 deg of the pointing
    declination, each transiting at a random time inside [jd0, jd1]."""
    if n <= 0:
        return []
    t_transit = rng.uniform(jd0, jd1, n)
    ddec = rng.uniform(-2.0, 2.0, n)
    flux = np.exp(rng.uniform(np.log(0.1), np.log(2.0), n))
    alpha = rng.normal(-0.7, 0.2, n)
    ra, dec = meridian_icrs(t_transit, dec0_deg + ddec)
    return [
        Source(name=f"SIM{k:02d}", ra_deg=float(ra[k]), dec_deg=float(dec[k]), flux_jy=float(flux[k]),
               spectral_index=float(alpha[k]), ref="simulated field source")
        for k in range(n)
    ]
