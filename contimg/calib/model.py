"""MODEL_DATA for point sources at their true positions, written with numpy.

Why not componentlist + ft: the calibrator is seen through the primary beam of a
dish fixed on the meridian, so its apparent flux changes by ~10 % across one
5-minute observation and by a few % across the band; ft has no such beam.  And a
source ~0.5 deg from the phase centre on a 2.6 km baseline needs its geometric
delay to a few mas (differential aberration alone is ~0.2 arcsec there), which we
get by using the very w the MS was phased with.

Model, per row (baseline ij, time t) and channel nu:

    M = sum_s S_s(nu) A_s(t, nu) exp(+2 pi i nu/c (w_s - W))

W is the MS's own UVW[2] (the phase centre's w) and w_s the same projection of
the baseline onto the source's apparent topocentric direction (astropy ITRS
with the array location: precession, nutation, aberration), with the baseline
oriented as the MS's uvw are (the orientation is checked against the FIELD
phase centre, so a wrong phase centre or uvw raises instead of silently giving
a wrong model).  This is the MS (CASA) convention: pyuvdata's writer conjugates
the data and negates uvw, so it is V_pyuvdata = S exp(+2 pi i nu/c b.(s - s0))
expressed in MS quantities.  A_s is the Airy power beam of a 4.65 m dish
pointed at (HA = 0, Dec = pointing).  See docs/calibration.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import ITRS, EarthLocation, SkyCoord
from astropy.time import Time

from contimg import casa
from contimg.astro.beam import beam_power
from contimg.astro.times import configure_astropy_offline

from .types import CalibrationError, Source

C_M_S = 299792458.0
BLOCK_VIS = 8_000_000  # complex visibilities per written block (~64 MB complex64)
ORIENT_TOL_M = 1.0  # |W - b.s0| allowed when checking the uvw orientation
PARALLEL_HANDS = {5, 8, 9, 12, 1}  # RR, LL, XX, YY, I: a Stokes-I source appears here


def _tb():
    return casa.tools().table()


def _read_subtable(ms: Path, name: str, cols: list[str]) -> dict:
    tb = _tb()
    try:
        tb.open(f"{ms}/{name}")
        return {c: tb.getcol(c) for c in cols}
    finally:
        tb.close()


def ms_geometry(ms: Path) -> dict:
    """What the model needs from an MS: antennas, frequencies, pols, phase centre, pointing."""
    ant = _read_subtable(ms, "ANTENNA", ["POSITION", "DISH_DIAMETER", "NAME"])
    spw = _read_subtable(ms, "SPECTRAL_WINDOW", ["CHAN_FREQ"])
    pol = _read_subtable(ms, "POLARIZATION", ["CORR_TYPE"])
    field = _read_subtable(ms, "FIELD", ["PHASE_DIR"])
    dd = _read_subtable(ms, "DATA_DESCRIPTION", ["SPECTRAL_WINDOW_ID", "POLARIZATION_ID"])
    tb = _tb()
    try:
        tb.open(str(ms))
        kw = tb.getkeywords()
        ddids = np.unique(tb.getcol("DATA_DESC_ID"))
        fields = np.unique(tb.getcol("FIELD_ID"))
    finally:
        tb.close()
    if ddids.size != 1 or fields.size != 1:
        raise CalibrationError(f"{ms}: write_model expects one spectral window and one field "
                               f"(found data descriptions {ddids.tolist()}, fields {fields.tolist()})")
    spw_id = int(dd["SPECTRAL_WINDOW_ID"][ddids[0]])
    pol_id = int(dd["POLARIZATION_ID"][ddids[0]])
    pos = np.asarray(ant["POSITION"]).T  # (nant, 3) ITRF metres
    dec0 = None
    extra = kw.get("pyuvdata_extra")
    if isinstance(extra, dict) and "phase_center_dec" in extra:
        dec0 = float(extra["phase_center_dec"])
    centre = np.asarray(field["PHASE_DIR"])[..., int(fields[0])].ravel()  # (ra, dec) rad
    return {
        "positions": pos,
        "dish_m": float(np.median(ant["DISH_DIAMETER"])) or 4.65,
        "freqs": np.asarray(spw["CHAN_FREQ"])[:, spw_id].astype(float),
        "corr_types": np.asarray(pol["CORR_TYPE"])[:, pol_id].astype(int),
        "centre_rad": (float(centre[0]), float(centre[1])),
        "pointing_dec_rad": dec0 if dec0 is not None else float(centre[1]),
    }


def _array_location(positions: np.ndarray) -> EarthLocation:
    """Mean position of the antennas that have one (unused ANTENNA rows may be zero)."""
    good = np.linalg.norm(positions, axis=1) > 6.0e6
    x, y, z = positions[good].mean(axis=0)
    return EarthLocation.from_geocentric(x * u.m, y * u.m, z * u.m)


def topocentric_directions(ra_deg, dec_deg, mjd_s: np.ndarray, loc: EarthLocation) -> np.ndarray:
    """Apparent unit vectors (ITRS axes) of ICRS directions at times; shape (Nt, Nsrc, 3)."""
    configure_astropy_offline()
    t = Time(np.asarray(mjd_s) / 86400.0, format="mjd", scale="utc")
    c = SkyCoord(ra=np.atleast_1d(ra_deg) * u.deg, dec=np.atleast_1d(dec_deg) * u.deg, frame="icrs")
    out = np.empty((t.size, c.size, 3))
    for k in range(c.size):  # astropy broadcasts times for one coordinate cheaply
        xyz = c[k].transform_to(ITRS(obstime=t, location=loc)).cartesian.xyz.value  # (3, Nt)
        out[:, k, :] = (xyz / np.linalg.norm(xyz, axis=0)).T
    return out


def hadec_from_itrs(s: np.ndarray, lon_rad: float) -> tuple[np.ndarray, np.ndarray]:
    """Hour angle and declination (rad) of ITRS unit vectors at a site longitude."""
    x = np.cos(lon_rad) * s[..., 0] + np.sin(lon_rad) * s[..., 1]
    y = -np.sin(lon_rad) * s[..., 0] + np.cos(lon_rad) * s[..., 1]
    return np.arctan2(-y, x), np.arcsin(np.clip(s[..., 2], -1, 1))


def _turns(x: np.ndarray) -> np.ndarray:
    return x - np.round(x)


def _phasor(path_m: np.ndarray, freqs: np.ndarray, dtype=np.complex128) -> np.ndarray:
    """exp(+2 pi i nu path / c) (rows x chans), phases reduced mod 1 turn in float64.

    Equally spaced channels (the MS's comb): one exp for the first channel and one
    for the step, then a running product over channels in ``dtype``, ~4x cheaper than
    an exp per visibility and exact to ~1e-13 over 768 channels in complex128.
    """
    base = path_m / C_M_S
    step = np.diff(freqs)
    if freqs.size > 2 and np.allclose(step, step[0], rtol=0.0, atol=0.01):
        out = np.empty((path_m.size, freqs.size), dtype)
        out[:, 0] = np.exp(2j * np.pi * _turns(base * freqs[0]))
        out[:, 1:] = np.exp(2j * np.pi * _turns(base * step[0]))[:, None]
        return np.cumprod(out, axis=1, out=out)
    return np.exp(2j * np.pi * _turns(np.multiply.outer(base, freqs))).astype(dtype, copy=False)


def _phasor32(path_m: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """As _phasor, in complex64 (half the memory for the averaged solve's model)."""
    return _phasor(path_m, freqs, np.complex64)


def _ensure_model_column(tb) -> None:
    """Add MODEL_DATA shaped like DATA (tiled storage) if the MS has none."""
    if "MODEL_DATA" in tb.colnames():
        return
    desc = tb.getcoldesc("DATA")
    desc["comment"] = "model data"
    desc.pop("dataManagerGroup", None)
    desc.pop("dataManagerType", None)
    dminfo = {"TYPE": "TiledShapeStMan", "NAME": "ModelTiled", "SPEC": {"DEFAULTTILESHAPE": [2, 64, 512]}}
    tb.addcols({"MODEL_DATA": desc}, dminfo)


class Predictor:
    """Model visibilities of point sources for rows of one MS, block by block.

    Built once per MS (geometry, apparent directions and beam at every unique
    time); ``rows(a1, a2, w_ms, tidx)`` gives the parallel-hand model (rows x
    chans, complex128) of those rows.  Used by write_model and by the averaging
    solver, which never writes a full-resolution MODEL_DATA.
    """

    def __init__(self, tb, ms: Path, sources: list[Source], times: np.ndarray, *,
                 pointing_dec_deg: float | None = None, apply_beam: bool = True):
        self.srcs = [Source.from_any(s) for s in sources]
        geo = ms_geometry(ms)
        self.geo = geo
        self.dec0 = (np.radians(pointing_dec_deg) if pointing_dec_deg is not None
                     else geo["pointing_dec_rad"])
        self.freqs, self.pos = geo["freqs"], geo["positions"]
        loc = _array_location(self.pos)
        self.hands = np.isin(geo["corr_types"], list(PARALLEL_HANDS))
        flux = np.array([s.flux_at(self.freqs) for s in self.srcs])  # (Nsrc, Nchan)
        self.ut, tidx = np.unique(times, return_inverse=True)
        self.s_src = topocentric_directions([s.ra_deg for s in self.srcs], [s.dec_deg for s in self.srcs],
                                            self.ut, loc)
        s_cen = topocentric_directions(np.degrees(geo["centre_rad"][0]),
                                       np.degrees(geo["centre_rad"][1]), self.ut, loc)[:, 0]
        ha, dec = hadec_from_itrs(self.s_src, float(loc.lon.rad))  # (Nt, Nsrc)
        self.amp = flux[None] * (beam_power(ha[..., None], dec[..., None], self.dec0,
                                            self.freqs[None, None, :], geo["dish_m"])
                                 if apply_beam else 1.0)  # (Nt, Nsrc, Nchan)
        self.orient = _uvw_orientation(tb, self.pos, s_cen, tidx, ms)

    def time_index(self, times: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.ut, times)

    def rows_at(self, a1: np.ndarray, a2: np.ndarray, w_ms: np.ndarray, ti: int) -> np.ndarray:
        """Model (rows x chans, complex64) of rows that share one time index ``ti``.

        The fast path of the averaging solver: the beam-weighted flux is one channel
        vector per source, and the per-channel phasor is a complex64 running product
        (relative error ~1e-5 over 768 channels, far below the noise).
        """
        b = self.orient * (self.pos[a2] - self.pos[a1])
        vis = np.zeros((a1.size, self.freqs.size), np.complex64)
        amp = self.amp[ti].astype(np.float32)  # (Nsrc, Nchan)
        for k in range(len(self.srcs)):
            ph = _phasor32(b @ self.s_src[ti, k] - w_ms, self.freqs)
            ph *= amp[k][None, :]
            vis += ph
        return vis

    def rows(self, a1: np.ndarray, a2: np.ndarray, w_ms: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Model (rows x chans) for baselines a1-a2 with MS w ``w_ms`` at time indices ``t``."""
        b = self.orient * (self.pos[a2] - self.pos[a1])  # baseline oriented as the MS uvw
        vis = np.zeros((a1.size, self.freqs.size), np.complex128)
        for k in range(len(self.srcs)):
            w_src = np.einsum("rk,rk->r", b, self.s_src[t, k])
            vis += self.amp[t, k] * _phasor(w_src - w_ms, self.freqs)
        return vis


def write_model(ms: Path, sources: list[Source], *, pointing_dec_deg: float | None = None,
                apply_beam: bool = True) -> dict:
    """Write MODEL_DATA of point ``sources`` into ``ms`` (all rows); returns a summary.

    Sources sit at their true (catalogue) positions with S(nu) = S_1.4 (nu/1.4
    GHz)^alpha, attenuated by the primary beam (``apply_beam``; the calibrator
    drifts through the fixed beam, so leaving the beam out would bias gains by
    up to ~10 %).  The pointing declination comes from the MS (pyuvdata extra
    keyword ``phase_center_dec``, else the phase centre) unless given.
    Cross-hand correlations get 0 (unpolarised model).  Needs casa.start().
    The pipeline's solver no longer calls this (see average.py); kept for tests
    and diagnostics.
    """
    ms = Path(ms)
    if not sources:
        raise CalibrationError(f"{ms}: no model sources given")
    tb = _tb()
    try:
        tb.open(str(ms), nomodify=False)
        _ensure_model_column(tb)
        nrow = tb.nrows()
        times = tb.getcol("TIME")
        pred = Predictor(tb, ms, sources, times, pointing_dec_deg=pointing_dec_deg,
                         apply_beam=apply_beam)
        tidx = pred.time_index(times)
        hands, nchan = pred.hands, pred.freqs.size
        block = max(1, BLOCK_VIS // max(1, nchan * hands.size))
        for r0 in range(0, nrow, block):
            n = min(block, nrow - r0)
            vis = pred.rows(tb.getcol("ANTENNA1", r0, n), tb.getcol("ANTENNA2", r0, n),
                            tb.getcol("UVW", r0, n)[2], tidx[r0:r0 + n])
            model = np.zeros((hands.size, nchan, n), np.complex64)
            model[hands] = vis.T.astype(np.complex64)[None]
            tb.putcol("MODEL_DATA", model, r0, n)
        tb.flush()
    finally:
        tb.close()
    return {"sources": [s.name for s in pred.srcs], "rows": int(nrow),
            "pointing_dec_deg": float(np.degrees(pred.dec0)), "beam": apply_beam,
            "uvw_orientation": "ant2-ant1" if pred.orient > 0 else "ant1-ant2"}


def _uvw_orientation(tb, pos: np.ndarray, s_cen: np.ndarray, tidx: np.ndarray, ms: Path) -> float:
    """+1 if the MS's W = (pos2 - pos1).s0, -1 if = (pos1 - pos2).s0; else raise.

    Checked on up to 20000 cross-correlation rows: this catches an MS whose uvw
    or FIELD direction are not those of one phase centre before a wrong model is
    written.
    """
    n = min(tb.nrows(), 20000)
    a1, a2 = tb.getcol("ANTENNA1", 0, n), tb.getcol("ANTENNA2", 0, n)
    w = tb.getcol("UVW", 0, n)[2]
    cross = a1 != a2
    proj = np.einsum("rk,rk->r", pos[a2] - pos[a1], s_cen[tidx[:n]])[cross]
    w = w[cross]
    for sign in (1.0, -1.0):
        if np.max(np.abs(w - sign * proj), initial=0.0) < ORIENT_TOL_M:
            return sign
    err = min(np.max(np.abs(w - proj)), np.max(np.abs(w + proj)))
    raise CalibrationError(f"{ms}: UVW do not match the FIELD phase centre (max |W - b.s0| = "
                           f"{err:.2f} m): the MS geometry is inconsistent, the model would be wrong")


def sources_in_beam(ms: Path, candidates, min_apparent_jy: float = 0.1) -> list[Source]:
    """Candidates whose peak beam-attenuated 1.4 GHz flux during ``ms`` is >= ``min_apparent_jy``,
    brightest first.

    Why: any bright source in the beam that the model leaves out biases the gains
    by roughly its apparent flux over the calibrator's (a 1.7 Jy neighbour of
    3C286 gave ~2 % rms, 8 % worst-case errors with 16 antennas), so the model
    should hold the calibrator plus every catalogue source this returns.
    """
    ms = Path(ms)
    srcs = [Source.from_any(s) for s in candidates]
    if not srcs:
        return []
    geo = ms_geometry(ms)
    loc = _array_location(geo["positions"])
    tb = _tb()
    try:
        tb.open(str(ms))
        ut = np.unique(tb.getcol("TIME"))
    finally:
        tb.close()
    s = topocentric_directions([c.ra_deg for c in srcs], [c.dec_deg for c in srcs], ut, loc)
    ha, dec = hadec_from_itrs(s, float(loc.lon.rad))
    peak = (beam_power(ha, dec, geo["pointing_dec_rad"], 1.4e9, geo["dish_m"])
            * np.array([c.flux_jy for c in srcs])[None, :]).max(axis=0)
    keep = np.flatnonzero(peak >= min_apparent_jy)
    return [srcs[i] for i in keep[np.argsort(-peak[keep])]]
