"""A realistic 1.4 GHz sky: sources drawn from published differential source counts.

Counts: the polynomial fit of Hopkins et al. (2003, AJ 125, 465, eq. 2) to the
Euclidean-normalised differential counts at 1.4 GHz,

    log10( S^2.5 dN/dS / (Jy^1.5 sr^-1) ) = sum_i a_i (log10(S / mJy))^i ,
    a = (0.859, 0.508, 0.376, -0.049, -0.121, 0.057, -0.008),

valid from ~0.05 mJy to ~10 Jy. Integrated, it gives 45 sources per deg^2 above
2.5 mJy, against 53 per deg^2 in NVSS (1.8 million sources over 82 % of the sky,
Condon et al. 1998, AJ 115, 1693); ``counts_scale`` (default 1.15) normalises the
shape to NVSS's density. Positions are uniform on the sphere; spectral indices
N(-0.7, 0.3); about 10 % of sources are elliptical Gaussians with FWHM major axes of
10-60 arcsec (axis ratio 0.3-1, position angle uniform).

The field is the strip swept by the primary beam out to its first null (at the
bottom of the band, for the widened simulated beam) during the simulated span.
Sources whose best apparent flux (flux x simulated Stokes-I beam at closest
approach, 1.4 GHz) stays below ``flux_floor_jy`` are dropped: they would cost time
and change nothing measurable (their sum is far below the thermal noise of one
image; the floor is recorded in the truth). A few bright (1-4 Jy) sources are put
in the first sidelobe.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from contimg.astro.beam import C_M_S
from contimg.astro.site import DISH_DIAMETER_M

HOPKINS03 = (0.859, 0.508, 0.376, -0.049, -0.121, 0.057, -0.008)
S_MIN_MODEL_JY, S_MAX_JY = 5e-5, 10.0
FIRST_NULL_X = 3.8317  # first zero of J1
SECOND_NULL_X = 7.0156
RESOLVED_FRACTION = 0.10
SIDELOBE_SOURCES = 3
DEG2_PER_SR = (180 / np.pi) ** 2


def euclidean_counts(s_jy) -> np.ndarray:
    """S^2.5 dN/dS in Jy^1.5 sr^-1 (Hopkins et al. 2003 polynomial)."""
    x = np.log10(np.asarray(s_jy, float) * 1e3)
    return 10 ** np.polyval(HOPKINS03[::-1], x)


def _grid(s_min: float, s_max: float, n: int = 4000):
    ls = np.linspace(np.log10(s_min), np.log10(s_max), n)
    s = 10 ** ls
    dnds = euclidean_counts(s) * s ** -2.5
    # N(>S) per sr by the trapezium rule in ln S (integrand S dN/dS)
    f = dnds * s
    seg = 0.5 * (f[1:] + f[:-1]) * np.diff(ls) * np.log(10)
    n_gt = np.concatenate([np.cumsum(seg[::-1])[::-1], [0.0]])
    return s, n_gt


def integral_counts_per_deg2(s_jy: float, scale: float = 1.0, s_max: float = S_MAX_JY) -> float:
    """N(>S) per deg^2 of the (scaled) model, sources up to ``s_max``."""
    s, n_gt = _grid(min(s_jy, s_max) * 0.999, s_max)
    return float(scale * np.interp(np.log10(s_jy), np.log10(s), n_gt) / DEG2_PER_SR)


def draw_fluxes(rng: np.random.Generator, n: int, s_min: float, s_max: float = S_MAX_JY) -> np.ndarray:
    """``n`` fluxes from the model between s_min and s_max (inverse CDF on a log grid)."""
    s, n_gt = _grid(s_min, s_max)
    cdf = 1.0 - n_gt / n_gt[0]  # 0 at s_min, 1 at s_max
    return 10 ** np.interp(rng.uniform(0, 1, n), cdf, np.log10(s))


def null_radius_rad(freq_hz: float, widen: float, which: float = FIRST_NULL_X) -> float:
    """Radius of a null of an Airy pattern of a dish widened by ``widen``."""
    return float(np.arcsin(min(1.0, which * C_M_S / (np.pi * DISH_DIAMETER_M * freq_hz) * widen)))


@dataclass
class SkyArrays:
    """A sky as columns; sizes in arcsec (0 = point), kind: 'catalogue', 'field', 'sidelobe'."""

    name: list
    ra_deg: np.ndarray
    dec_deg: np.ndarray
    flux_jy: np.ndarray
    spectral_index: np.ndarray
    maj_arcsec: np.ndarray
    min_arcsec: np.ndarray
    pa_deg: np.ndarray
    kind: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.name)

    @classmethod
    def from_sources(cls, sources, kind: str = "catalogue") -> SkyArrays:
        n = len(sources)
        z = np.zeros(n)
        return cls(name=[s.name for s in sources],
                   ra_deg=np.array([s.ra_deg for s in sources], float).reshape(n),
                   dec_deg=np.array([s.dec_deg for s in sources], float).reshape(n),
                   flux_jy=np.array([s.flux_jy for s in sources], float).reshape(n),
                   spectral_index=np.array([s.spectral_index for s in sources], float).reshape(n),
                   maj_arcsec=z.copy(), min_arcsec=z.copy(), pa_deg=z.copy(), kind=[kind] * n)

    def concat(self, other: SkyArrays) -> SkyArrays:
        cols = {k: np.concatenate([getattr(self, k), getattr(other, k)])
                for k in ("ra_deg", "dec_deg", "flux_jy", "spectral_index", "maj_arcsec", "min_arcsec", "pa_deg")}
        return SkyArrays(name=self.name + other.name, kind=self.kind + other.kind,
                         meta={**other.meta, **self.meta}, **cols)

    def select(self, idx) -> SkyArrays:
        idx = np.asarray(idx)
        cols = {k: getattr(self, k)[idx] for k in ("ra_deg", "dec_deg", "flux_jy", "spectral_index",
                                                    "maj_arcsec", "min_arcsec", "pa_deg")}
        return SkyArrays(name=[self.name[i] for i in idx], kind=[self.kind[i] for i in idx],
                         meta=self.meta, **cols)

    def flux_at(self, freqs_hz) -> np.ndarray:
        """(Nsrc, Nf) flux densities."""
        f = np.atleast_1d(np.asarray(freqs_hz, float))
        return self.flux_jy[:, None] * (f[None, :] / 1.4e9) ** self.spectral_index[:, None]


def _resolved(rng, n):
    res = rng.uniform(0, 1, n) < RESOLVED_FRACTION
    maj = np.where(res, rng.uniform(10.0, 60.0, n), 0.0)
    mn = np.where(res, maj * rng.uniform(0.3, 1.0, n), 0.0)
    pa = np.where(res, rng.uniform(0.0, 180.0, n), 0.0)
    return maj, mn, pa


def draw_field(rng: np.random.Generator, dec0_deg: float, ra_lo: float, ra_hi: float, radius_deg: float,
               s_min: float, scale: float) -> tuple[SkyArrays, float]:
    """Poisson draw of the model over the strip RA in [ra_lo, ra_hi] (ICRS, may exceed 360),
    |Dec - dec0| <= radius; returns the sky and the strip's solid angle (deg^2)."""
    d_lo = np.radians(max(-90.0, dec0_deg - radius_deg))
    d_hi = np.radians(min(90.0, dec0_deg + radius_deg))
    omega_sr = np.radians(ra_hi - ra_lo) * (np.sin(d_hi) - np.sin(d_lo))
    n_exp = scale * integral_counts_per_deg2(s_min) * omega_sr * DEG2_PER_SR
    n = int(rng.poisson(n_exp))
    ra = np.mod(rng.uniform(ra_lo, ra_hi, n), 360.0)
    dec = np.degrees(np.arcsin(rng.uniform(np.sin(d_lo), np.sin(d_hi), n)))
    flux = draw_fluxes(rng, n, s_min)
    alpha = rng.normal(-0.7, 0.3, n)
    maj, mn, pa = _resolved(rng, n)
    sky = SkyArrays(name=[f"R{k:05d}" for k in range(n)], ra_deg=ra, dec_deg=dec, flux_jy=flux,
                    spectral_index=alpha, maj_arcsec=maj, min_arcsec=mn, pa_deg=pa, kind=["field"] * n)
    return sky, float(omega_sr * DEG2_PER_SR)


def draw_sidelobe(rng: np.random.Generator, ra_mer_deg: np.ndarray, dec0_deg: float, r1_deg: float,
                  r2_deg: float, n: int = SIDELOBE_SOURCES) -> SkyArrays:
    """``n`` bright (1-4 Jy) point sources transiting in the span at |Dec - dec0| inside
    the first sidelobe [r1, r2]; ``ra_mer_deg`` are meridian RAs sampled over the span."""
    ra = rng.choice(ra_mer_deg, n)
    dec = dec0_deg + rng.choice([-1.0, 1.0], n) * rng.uniform(r1_deg + 0.2 * (r2_deg - r1_deg),
                                                              r2_deg - 0.2 * (r2_deg - r1_deg), n)
    flux = np.exp(rng.uniform(np.log(1.0), np.log(4.0), n))
    z = np.zeros(n)
    return SkyArrays(name=[f"SL{k:02d}" for k in range(n)], ra_deg=np.mod(ra, 360), dec_deg=dec, flux_jy=flux,
                     spectral_index=rng.normal(-0.7, 0.3, n), maj_arcsec=z, min_arcsec=z.copy(),
                     pa_deg=z.copy(), kind=["sidelobe"] * n)
