"""Meridian phasing of DSA-110 data: recognise it, then re-phase to one ICRS centre.

The correlator fringe-stops every integration on the meridian at the pointing
declination (apparent frame of date: HA = 0, Dec = dec0), so the phase centre's RA
follows the apparent LST, 15 arcsec per second, although the header says "drift".
See docs/phasing.md.  All geometry goes through pyuvdata's ``calc_uvw`` so the uvw
written to the MS follow exactly the conventions pyuvdata's MS writer uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy import units as u
from astropy.coordinates import ICRS, TETE, EarthLocation, SkyCoord
from astropy.time import Time
from pyuvdata.utils import phasing as phs
from pyuvdata.utils.times import get_lst_for_time

from .inputs import ConvertError
from contimg.astro.times import configure_astropy_offline  # noqa: F401 - convert calls it from here

C_M_S = 299792458.0
ARCSEC = np.pi / 180 / 3600
DOC = "docs/phasing.md"
# Allowed offset of the recorded phase centre from (RA = LST(t), Dec = dec0).  Another
# writer may stamp times at the start of an integration (6.4 s = 96 arcsec) or use mean
# sidereal time (up to 16 arcsec); the fitted offset is then re-phased exactly, so the
# tolerance only has to tell meridian phasing from a fixed RA (1.3 deg across one file)
# or zenith phasing (degrees).
MERIDIAN_TOL_ARCSEC = 300.0
# uvw left over after fitting a small phase-centre offset: float32 storage plus
# position rounding; a larger residual means uvw not of one direction at all.
UVW_RESID_TOL_M = 0.05


@dataclass
class Geometry:
    """Per-row quantities needed to re-phase (all float64, shape (Nblts,) or (Nblts,3))."""

    lst: np.ndarray
    w_meridian: np.ndarray
    uvw_meridian: np.ndarray


def lst_rows(times_jd: np.ndarray, loc: EarthLocation) -> np.ndarray:
    """Apparent LST (rad) per row, computed once per unique time."""
    ut, inv = np.unique(times_jd, return_inverse=True)
    lst = get_lst_for_time(ut, telescope_loc=loc)
    return lst[inv]


def baseline_uvw(app_ra, app_dec, frame_pa, lst, tel) -> np.ndarray:
    """uvw (m) of every row for a given apparent direction per row (pyuvdata convention)."""
    return phs.calc_uvw(
        app_ra=app_ra, app_dec=app_dec, frame_pa=frame_pa, lst_array=lst, use_ant_pos=True,
        antenna_positions=tel["positions"], antenna_numbers=tel["numbers"],
        ant_1_array=tel["ant1"], ant_2_array=tel["ant2"],
        telescope_lat=tel["loc"].lat.rad, telescope_lon=tel["loc"].lon.rad,
    )


def meridian_geometry(times_jd, dec0, tel) -> Geometry:
    """uvw of the correlator's phase centre (HA = 0, Dec = dec0) for every row."""
    lst = lst_rows(times_jd, tel["loc"])
    uvw = baseline_uvw(lst, np.full_like(lst, dec0), np.zeros_like(lst), lst, tel)
    return Geometry(lst=lst, w_meridian=uvw[:, 2].copy(), uvw_meridian=uvw)


def check_meridian_phasing(path, uvw_file: np.ndarray, geo: Geometry, times_jd, dec0: float,
                           tol_arcsec: float = MERIDIAN_TOL_ARCSEC) -> tuple[float, np.ndarray]:
    """C3: confirm the file's uvw are those of the meridian phase centre at each time.

    For a small offset (dl, dm) of the true phase centre, w_file - w_meridian =
    u dl + v dm; fit that per integration.  Meridian phasing shows as
    RA - LST(t) ~ 0 and Dec ~ dec0 at every time (it is expected; the centre moves
    15 arcsec/s in RA).  Returns the largest offset (arcsec) and, per row, the w of the
    fitted phase centre: the data were fringe-stopped there, so re-phasing starts from
    it (exact, and free of the float32 rounding of the recorded w).  Raises ConvertError
    (pointing to docs/phasing.md) for anything else: a fixed RA (already re-phased
    data), zenith/unprojected uvw, or uvw that are not of any single direction.
    """
    if not np.any(uvw_file):
        raise ConvertError(f"{path}: uvw_array is all zero, so the phasing cannot be "
                           f"verified as the correlator's meridian phasing; see {DOC}")
    dw = uvw_file[:, 2] - geo.w_meridian
    ut, inv = np.unique(times_jd, return_inverse=True)
    dra, ddec, resid = np.zeros(ut.size), np.zeros(ut.size), 0.0
    w_fit = geo.w_meridian.copy()
    for k in range(ut.size):  # one 2-parameter fit per integration (24), not per row
        sel = inv == k
        a = geo.uvw_meridian[sel, :2]
        coef, *_ = np.linalg.lstsq(a, dw[sel], rcond=None)
        w_fit[sel] += a @ coef
        resid = max(resid, float(np.sqrt(np.mean((dw[sel] - a @ coef) ** 2))))
        dra[k] = coef[0] / np.cos(dec0) / ARCSEC  # RA of phase centre minus LST
        ddec[k] = coef[1] / ARCSEC
    worst = float(max(np.max(np.abs(dra) * np.cos(dec0)), np.max(np.abs(ddec))))
    detail = (f"phase centre RA - LST(t) spans {dra.min():+.1f}..{dra.max():+.1f} arcsec, "
              f"Dec - pointing spans {ddec.min():+.1f}..{ddec.max():+.1f} arcsec")
    if resid > UVW_RESID_TOL_M:
        raise ConvertError(
            f"{path}: uvw_array does not match any single phase centre near the meridian "
            f"at the pointing declination (rms residual {resid:.3f} m; {detail}); expected "
            f"the correlator's meridian phasing (RA = LST(t), Dec = phase_center_dec), "
            f"see {DOC}")
    if worst > tol_arcsec:
        span = (ut[-1] - ut[0]) * 86400.0
        drift = (dra.max() - dra.min()) / span if span > 0 else 0.0
        why = (" The phase centre stays at a fixed RA: the data look already re-phased."
               if abs(drift - 15.04) < 3 else "")
        raise ConvertError(
            f"{path}: phase centres are not the meridian at the pointing declination "
            f"({detail}; tolerance {tol_arcsec} arcsec).{why} Meridian phasing (RA following "
            f"LST at 15 arcsec/s) is expected and handled; anything else is not. See {DOC}")
    return worst, w_fit


def mid_time_target(t_mid_jd: float, dec0: float, loc: EarthLocation) -> tuple[float, float]:
    """ICRS (ra, dec) rad of the meridian at mid time: apparent (LST(t_mid), dec0).

    astropy's TETE (true equator and equinox of date, topocentric) -> ICRS: it
    inverts exactly what pyuvdata's ICRS -> apparent conversion does (agreement
    ~1e-7 rad in phase on 2.6 km baselines), whereas pyuvdata's own
    ``transform_app_to_icrs`` lands ~0.3 arcsec away.
    """
    t = Time(t_mid_jd, format="jd", scale="utc")
    lst_mid = float(get_lst_for_time(np.array([t_mid_jd]), telescope_loc=loc)[0])
    app = SkyCoord(ra=lst_mid * u.rad, dec=dec0 * u.rad, frame=TETE(obstime=t, location=loc))
    icrs = app.transform_to(ICRS())
    return float(icrs.ra.rad) % (2 * np.pi), float(icrs.dec.rad)


def phasor(dw_m: np.ndarray, freqs_hz: np.ndarray) -> np.ndarray:
    """exp(-2 pi i (w_new - w_old) nu / c) as complex64 (rows x channels).

    pyuvdata's sign convention (V = S exp(+2 pi i b.s/lambda), uvw = ant2 - ant1):
    moving the phase centre multiplies by exp(-2 pi i dw / lambda).  Phases are
    computed in float64 then reduced mod 2 pi before float32 sin/cos, so precision
    does not depend on baseline length.
    """
    turns = np.multiply.outer(dw_m / C_M_S, freqs_hz)
    turns -= np.round(turns)
    ang = (-2 * np.pi * turns).astype(np.float32)
    out = np.empty(ang.shape, np.complex64)
    out.real = np.cos(ang)
    out.imag = np.sin(ang)
    return out
