"""Per-antenna instrumental errors: complex gains in time and bandpasses in frequency.

Parameters are drawn once for all 117 stations from the seed, so a station's
errors do not depend on which antennas a run simulates. Convention (the one in
the truth manifest): V_ij = g_i conj(g_j) V_true with g_i = gain_i(t) * bandpass_i(nu),
per polarisation (XX uses g_iX, YY uses g_iY).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contimg.astro.site import N_STATIONS


def _phase_noise(seed: int, rms_deg: float):
    from contimg.sim.instrument import PhaseNoise

    return PhaseNoise(seed, N_STATIONS, rms_deg)

NPOL = 2
BAND_CENTRE_HZ = 1405.0e6
BAND_HALF_WIDTH_HZ = 93.75e6


@dataclass
class Corruptions:
    """Draws for all stations x 2 polarisations; evaluate with :meth:`gains` / :meth:`bandpass`."""

    amp0: np.ndarray  # (117, 2)
    phase0: np.ndarray
    amp_mod: np.ndarray  # fractional amplitude wander
    amp_period_h: np.ndarray
    amp_phi: np.ndarray
    phase_rate: np.ndarray  # rad / hour
    phase_wobble: np.ndarray  # rad
    wobble_period_h: np.ndarray
    wobble_phi: np.ndarray
    bp_cos: np.ndarray  # (117, 2, 3) ripple amplitudes
    bp_psi: np.ndarray  # (117, 2, 3) ripple phases
    bp_slope: np.ndarray  # (117, 2)
    delay_ns: np.ndarray  # (117, 2)
    bp_phase_curv: np.ndarray  # (117, 2) rad at band edge
    use_gains: bool = True
    use_bandpass: bool = True
    vary: bool = True
    phase_noise: object = None  # contimg.sim.instrument.PhaseNoise or None

    @classmethod
    def draw(cls, seed: int, use_gains: bool = True, use_bandpass: bool = True, vary: bool = True,
             phase_noise_deg: float = 0.0):
        r = np.random.default_rng([seed, 0xC0])  # own stream: independent of sky and noise draws
        s = (N_STATIONS, NPOL)
        return cls(
            amp0=np.clip(1.0 + 0.1 * r.standard_normal(s), 0.7, 1.3),
            phase0=r.uniform(-np.pi, np.pi, s),
            amp_mod=r.uniform(0.01, 0.04, s),
            amp_period_h=r.uniform(1.0, 4.0, s),
            amp_phi=r.uniform(0, 2 * np.pi, s),
            phase_rate=0.5 * r.standard_normal(s),
            phase_wobble=r.uniform(0.02, 0.15, s),
            wobble_period_h=r.uniform(0.3, 2.0, s),
            wobble_phi=r.uniform(0, 2 * np.pi, s),
            bp_cos=r.uniform(0.0, 0.06, s + (3,)) / np.arange(1, 4),
            bp_psi=r.uniform(0, 2 * np.pi, s + (3,)),
            bp_slope=0.05 * r.standard_normal(s),
            delay_ns=2.0 * r.standard_normal(s),
            bp_phase_curv=0.2 * r.standard_normal(s),
            use_gains=use_gains,
            use_bandpass=use_bandpass,
            vary=vary,
            phase_noise=_phase_noise(seed, phase_noise_deg) if (phase_noise_deg and use_gains and vary) else None,
        )

    def gains(self, t_hours: np.ndarray, stations: np.ndarray) -> np.ndarray:
        """Complex gains, shape (Nt, len(stations), 2); ``stations`` are 0-based numbers.

        ``t_hours`` is time since the first integration of the run; with
        vary=False the t = 0 value holds throughout.
        """
        t = np.atleast_1d(np.asarray(t_hours, dtype=float))[:, None, None]
        st = np.asarray(stations)
        if not self.use_gains:
            return np.ones((t.shape[0], st.size, NPOL), dtype=complex)
        if not self.vary:
            t = np.zeros_like(t)
        a = self.amp0[st] * (1 + self.amp_mod[st] * np.sin(2 * np.pi * t / self.amp_period_h[st] + self.amp_phi[st]))
        ph = (self.phase0[st] + self.phase_rate[st] * t
              + self.phase_wobble[st] * np.sin(2 * np.pi * t / self.wobble_period_h[st] + self.wobble_phi[st]))
        if self.phase_noise is not None:  # same in both polarisations (atmosphere, LO)
            ph = ph + self.phase_noise(t[:, 0, 0] * 3600.0, st)[:, :, None]
        return a * np.exp(1j * ph)

    def bandpass(self, freqs_hz: np.ndarray, stations: np.ndarray) -> np.ndarray:
        """Complex bandpass, shape (len(stations), Nfreqs, 2): smooth ripple + delay + curvature."""
        f = np.asarray(freqs_hz, dtype=float)
        st = np.asarray(stations)
        if not self.use_bandpass:
            return np.ones((st.size, f.size, NPOL), dtype=complex)
        x = (f - BAND_CENTRE_HZ) / BAND_HALF_WIDTH_HZ  # -1..1 across the band
        k = np.arange(1, 4)
        ripple = np.cos(np.pi * k[None, None, None, :] * (x[None, :, None, None] + 1) / 2
                        + self.bp_psi[st][:, None, :, :])  # (Nst, Nf, 2, 3)
        amp = 1 + (self.bp_cos[st][:, None, :, :] * ripple).sum(-1) + self.bp_slope[st][:, None, :] * x[None, :, None]
        phase = (2 * np.pi * self.delay_ns[st][:, None, :] * 1e-9 * (f - BAND_CENTRE_HZ)[None, :, None]
                 + self.bp_phase_curv[st][:, None, :] * x[None, :, None] ** 2)
        return amp * np.exp(1j * phase)
