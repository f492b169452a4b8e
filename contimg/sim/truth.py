"""The truth manifest written beside the simulated files (one per simulate() call).

Everything a test or a calibration check needs to compare against: the sky (with
beam-attenuated flux at transit), antennas, per-antenna gains per integration,
bandpasses per channel, the noise level, times, pointing and conventions.
"""

from __future__ import annotations

import numpy as np

from contimg.astro import freqs as fq
from contimg.astro import site, times
from contimg.astro.beam import beam_power
from contimg.sim import realistic

FORMAT = "contimg-sim-truth/1"

CONVENTIONS = {
    "uvw": "uvw = pos(ant2) - pos(ant1) (pyuvdata), for the phase centre (HA=0, Dec=pointing) of date",
    "visibility": "V = S * A * exp(+2 pi i nu/c (u l + v m + w (n - 1))) (pyuvdata sign)",
    "phase_centre": "each integration fringe-stopped at RA = apparent LST(t), Dec = pointing (apparent, of date); "
                    "uvw constant in time; header says phase_type 'drift'",
    "corruption": "V_ij = g_i conj(g_j) (V_true + N), g_i = gain_i(t) * bandpass_i(nu), per polarisation; "
                  "gains_re/im[t][antenna][pol], bandpass re/im[antenna][channel][pol]",
    "polarisations": "XX, YY (-5, -6); unpolarised sky: XX = YY = Stokes I",
    "noise": "sky-referred complex Gaussian; sigma per real/imag part = SEFD / sqrt(2 * channel_width * t_int); "
             "autocorrelations real: SEFD + sky + N(0, SEFD / sqrt(channel_width * t_int))",
    "smearing": "visibilities evaluated at channel centres and integration midpoints (none simulated)",
    "beam": "Airy power (2 J1(x)/x)^2, x = pi D sin(theta)/lambda, D = 4.65 m, dish at (HA=0, Dec=pointing)",
}


def _source_entry(sim, s) -> dict:
    from contimg.sim import sky

    mid = 0.5 * (sim.t0 + sim.obs_start[-1])
    tr = sky.transit_jd(s, mid - 0.5)
    if tr > mid + 0.5:  # keep the transit nearest the span
        tr -= 0.99726958
    ha_app, dec_app = sky.apparent_hadec(s, tr)
    beam = float(beam_power(ha_app[0], dec_app[0], sim.dec0, 1.4e9))
    return {
        **s.to_dict(),
        "transit_jd": tr,
        "transit_iso": times.jd_to_iso(tr),
        "dec_app_at_transit_rad": float(dec_app[0]),
        "beam_at_transit_1400MHz": beam,
        "apparent_flux_at_transit_1400MHz_jy": beam * float(s.flux_at(1.4e9)),
    }


def build_truth(sim, observations: list[dict]) -> dict:
    """Assemble the JSON-ready truth dictionary for a finished simulation."""
    freqs = np.concatenate([fq.subband_freqs_hz(sb, sim.opts.nchan) for sb in range(fq.N_SUBBANDS)])
    bp = sim.corr.bandpass(freqs, sim.gain_stations)
    names = site.stations().names
    return {
        "format": FORMAT,
        "conventions": CONVENTIONS,
        "options": sim.opts.to_dict(),
        "pointing_dec_deg": sim.dec0_deg,
        "pointing_dec_rad": float(sim.dec0),
        "integration_time_s": 12.8849,
        "channel_width_hz": sim.chan_width,
        "noise": {
            "sefd_jy": sim.opts.sefd_jy or 0.0,
            "sigma_jy": float(sim.sigma),
            "sigma_auto_jy": float(sim.sigma_auto),
            "formula": "sigma = SEFD / sqrt(2 * channel_width_hz * integration_time_s) per real/imag part",
        },
        "antennas": {
            "names": [names[i] for i in sim.stations],
            "numbers": [int(i) for i in sim.stations],
            "foreign_names": [names[i] for i in sim.foreign_stations],
        },
        "gain_antennas": {"names": [names[i] for i in sim.gain_stations],
                          "numbers": [int(i) for i in sim.gain_stations]},
        "gains_t0_jd": sim.t0,
        "bandpass": {
            "freqs_hz": freqs.tolist(),
            "order": "file order: sb00 channel 0 (highest) ... sb15 last channel (lowest)",
            "re": bp.real.tolist(),
            "im": bp.imag.tolist(),
        },
        "sources": (realistic.source_entries(sim.sky, sim.opts, float(sim.dec0), 0.5 * (sim.t0 + sim.obs_start[-1]))
                    if sim.realistic else [_source_entry(sim, s) for s in sim.sources]),
        "instrument": instrument_entry(sim),
        **({"sky_model": sim.sky.meta} if sim.realistic else {}),
        "observations": observations,
    }


def instrument_entry(sim) -> dict:
    """The realistic-instrument settings and the RFI description (factorised mask)."""
    scale, ell = sim.beam
    return {
        "beam_scale": scale,
        "beam_ellipticity": ell,
        "beam_formula": "XX: Airy power at rho = sqrt((l/(s(1+e)))^2 + (m/(s(1-e)))^2), YY with (1-e), (1+e); "
                        "l east, m north direction cosines about the pointing; s = beam_scale, e = beam_ellipticity; "
                        "the pipeline's model is s = 1, e = 0",
        "smearing": sim.smearing,
        "smearing_formula": "|V| x sinc(dnu tau) x sinc(nu_mid dpath / c) (numpy sinc), tau = uvw.lmn1 / c, "
                            "dpath = change of uvw.lmn1 over one integration with the phase centre tracking the sky"
                            if sim.smearing else "none: channel centres and integration midpoints",
        "phase_noise_deg": float(sim.opts.effective("phase_noise_deg")),
        "phase_noise": "per antenna, same in XX and YY, 16 sinusoids with 60-600 s periods, included in gains_re/im",
        "rfi": sim.rfi,
    }
