"""Instrument effects of the realistic simulation: a primary beam unlike the pipeline's,
fast antenna phase noise, and bandwidth/time smearing factors.

Beam: the pipeline assumes a circular Airy pattern of a 4.65 m dish
(``contimg.astro.beam``). The simulated dish is ``scale`` times wider and elliptical
with opposite sense in the two polarisations: in the direction cosines (l east,
m north) about the pointing, XX sees the Airy pattern at
rho = sqrt((l / (s (1 + e)))^2 + (m / (s (1 - e)))^2) and YY with the axes swapped,
so the XX beam is s (1 + e) times the model's width east-west and s (1 - e) north-south.
"""

from __future__ import annotations

import numpy as np
from scipy.special import j1

from contimg.astro.beam import C_M_S
from contimg.astro.site import DISH_DIAMETER_M

SIDEREAL_RATE_RAD_S = 7.2921150e-5


def sim_beam_power(l, m, freq_hz, scale: float = 1.0, ellipticity: float = 0.0) -> np.ndarray:
    """Power beam for (XX, YY): array of shape broadcast(l, m, freq) + (2,)."""
    l, m, f = np.broadcast_arrays(np.asarray(l, float), np.asarray(m, float), np.asarray(freq_hz, float))
    out = np.empty(l.shape + (2,))
    for p, (ax, ay) in enumerate(((1 + ellipticity, 1 - ellipticity), (1 - ellipticity, 1 + ellipticity))):
        rho = np.sqrt((l / (scale * ax)) ** 2 + (m / (scale * ay)) ** 2)
        x = np.pi * DISH_DIAMETER_M * rho * f / C_M_S
        safe = np.where(x < 1e-8, 1.0, x)
        out[..., p] = np.where(x < 1e-8, 1.0, (2.0 * j1(safe) / safe) ** 2)
    return out


def rotated_uvw(uvw: np.ndarray, dec0_rad: float, angle_rad: float) -> np.ndarray:
    """uvw of the baselines after the Earth turns by ``angle_rad`` with the phase centre
    tracking the sky (centre at HA = angle): equivalently, the baseline rotated by
    -angle about the pole seen from the fixed (HA = 0) frame."""
    sd, cd = np.sin(dec0_rad), np.cos(dec0_rad)
    u, v, w = uvw.T
    x = cd * w - sd * v  # back to (X meridian, Y, Z pole) of baseline_uvw
    z = sd * w + cd * v
    y = u
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    xr, yr = c * x + s * y, -s * x + c * y
    return np.stack([yr, -sd * xr + cd * z, cd * xr + sd * z], axis=1)


def smearing_factors(uvw: np.ndarray, lmn1: np.ndarray, dec0_rad: float, chan_width_hz: float,
                     freq_hz: float, t_int_s: float, time_smear: bool = True,
                     band_smear: bool = True) -> np.ndarray:
    """Amplitude factors (Nsrc, Nbls) for averaging over a channel and an integration.

    Bandwidth: the phase 2 pi nu tau (tau = uvw . lmn1 / c, the geometric delay left
    after fringe-stopping) is linear in nu across a channel of width dnu, so the mean
    of exp(i phase) has modulus sinc(dnu tau) (numpy's sinc). Time: the correlator
    fringe-stops on the moving meridian point, so within an integration the
    delay of a source offset from it changes linearly by dpath = (uvw(+wT/2) - uvw(-wT/2))
    . lmn1 (Earth rotation w); the mean has modulus sinc(nu dpath / c), evaluated at
    the subband's centre frequency ``freq_hz``. The two averages factorise to second order.
    """
    out = np.ones((lmn1.shape[0], uvw.shape[0]))
    if band_smear:
        out *= np.sinc(chan_width_hz * (lmn1 @ uvw.T) / C_M_S)
    if time_smear:
        half = 0.5 * SIDEREAL_RATE_RAD_S * t_int_s
        duvw = rotated_uvw(uvw, dec0_rad, half) - rotated_uvw(uvw, dec0_rad, -half)
        out *= np.sinc(freq_hz * (lmn1 @ duvw.T) / C_M_S)
    return out


def gaussian_factors(uvw: np.ndarray, maj_arcsec, min_arcsec, pa_deg, freq_hz: float) -> np.ndarray:
    """Visibility of unit-flux elliptical Gaussians (Nsrc, Nbls) at ``freq_hz``:
    exp(-pi^2 (a^2 u'^2 + b^2 v'^2) / (4 ln 2)), a, b the FWHM axes (rad), (u', v') the
    baseline in wavelengths rotated to the source's axes (PA east of north); the centre's
    (u, v) stand in for the source's own tangent plane (error ~ offset^2, < 0.5 %)."""
    k = freq_hz / C_M_S
    u, v = uvw[:, 0] * k, uvw[:, 1] * k
    pa = np.radians(np.asarray(pa_deg))[:, None]
    a = np.radians(np.asarray(maj_arcsec) / 3600.0)[:, None]
    b = np.radians(np.asarray(min_arcsec) / 3600.0)[:, None]
    up = u[None, :] * np.sin(pa) + v[None, :] * np.cos(pa)  # along the major axis
    vp = u[None, :] * np.cos(pa) - v[None, :] * np.sin(pa)
    return np.exp(-(np.pi ** 2) * ((a * up) ** 2 + (b * vp) ** 2) / (4 * np.log(2)))


class PhaseNoise:
    """Per-antenna fast phase noise: a sum of 16 sinusoids with periods of 1-10 minutes
    and random phases, scaled to ``rms_deg``; a smooth, deterministic function of time,
    so consecutive observations continue each other."""

    N_MODES = 16

    def __init__(self, seed: int, n_stations: int, rms_deg: float):
        r = np.random.default_rng([seed, 0xF4])
        self.period_s = r.uniform(60.0, 600.0, (n_stations, self.N_MODES))
        self.phi = r.uniform(0, 2 * np.pi, (n_stations, self.N_MODES))
        amp = r.rayleigh(1.0, (n_stations, self.N_MODES))
        # rms of sum a_k sin(...) is sqrt(sum a_k^2 / 2): normalise per station
        self.amp = np.radians(rms_deg) * amp / np.sqrt(0.5 * (amp ** 2).sum(1, keepdims=True))

    def __call__(self, t_s: np.ndarray, stations: np.ndarray) -> np.ndarray:
        """Phase (rad), shape (Nt, len(stations))."""
        t = np.atleast_1d(np.asarray(t_s, float))[:, None, None]
        st = np.asarray(stations)
        return (self.amp[st] * np.sin(2 * np.pi * t / self.period_s[st] + self.phi[st])).sum(-1)
