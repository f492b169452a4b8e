"""Primary beam of a DSA-110 dish: Airy power pattern of a 4.65 m aperture.

A(theta) = (2 J1(x) / x)^2, x = pi D sin(theta) / lambda. The dishes are fixed
on the meridian, so a dish points at (HA = 0, Dec = dec0) for days; a source at
(HA, Dec) sits at the great-circle distance theta from that point.
"""

from __future__ import annotations

import numpy as np
from scipy.special import j1

from contimg.astro.site import DISH_DIAMETER_M

C_M_S = 299792458.0


def airy_power(theta_rad, freq_hz, diameter_m: float = DISH_DIAMETER_M) -> np.ndarray:
    """Airy power pattern (peak 1) at angle ``theta_rad`` off axis; broadcasts."""
    x = np.pi * diameter_m * np.sin(np.asarray(theta_rad, dtype=float)) * np.asarray(freq_hz) / C_M_S
    x = np.asarray(x, dtype=float)
    small = np.abs(x) < 1e-8
    safe = np.where(small, 1.0, x)
    return np.where(small, 1.0, (2.0 * j1(safe) / safe) ** 2)


def angular_distance_from_pointing(ha_rad, dec_rad, dec0_rad) -> np.ndarray:
    """Great-circle distance from (HA = 0, dec0) to (ha, dec), radians; broadcasts."""
    cos_t = np.sin(dec_rad) * np.sin(dec0_rad) + np.cos(dec_rad) * np.cos(dec0_rad) * np.cos(ha_rad)
    return np.arccos(np.clip(cos_t, -1.0, 1.0))


def beam_power(ha_rad, dec_rad, dec0_rad, freq_hz, diameter_m: float = DISH_DIAMETER_M) -> np.ndarray:
    """Power response to a source at (ha, dec) of a dish pointed at (HA = 0, dec0).

    Vectorised: every argument broadcasts (e.g. times x 1 against 1 x channels).
    """
    theta = angular_distance_from_pointing(ha_rad, dec_rad, dec0_rad)
    return airy_power(theta, freq_hz, diameter_m)


def fwhm_rad(freq_hz: float, diameter_m: float = DISH_DIAMETER_M) -> float:
    """Half-power full width, 1.029 lambda / D for the Airy pattern."""
    return 1.02899 * C_M_S / freq_hz / diameter_m
