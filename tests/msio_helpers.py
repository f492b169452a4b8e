"""Helpers for the msio tests: small simulations, expected values, CASA in a child process.

CASA (casatools) runs only in child processes here, because the converter and
pyuvdata load python-casacore in the test process (docs/pitfalls.md: keep them apart).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from contimg.astro import freqs as fq
from contimg.astro import times
from contimg.astro.beam import beam_power
from contimg.sim import SimOptions, simulate, sky

REPO = Path(__file__).resolve().parents[1]


def transit_mid_jd() -> float:
    """Mid time of observation 0 in a default-start simulation (the 3C286 transit)."""
    cal = sky.default_calibrator(None)
    return sky.transit_jd(cal, times.iso_to_jd(sky.DEFAULT_DATE_ISO))


def pointing_dec_deg() -> float:
    return float(sky.default_calibrator(None).dec_deg)


def offset_source(ra0_deg: float, dec0_deg: float, l_rad: float,
                  m_rad: float) -> tuple[float, float]:
    """ICRS position at SIN-projection offsets (l, m) from (ra0, dec0), degrees."""
    ra0, d0 = np.radians(ra0_deg), np.radians(dec0_deg)
    n = np.sqrt(1 - l_rad**2 - m_rad**2)
    dec = np.arcsin(m_rad * np.cos(d0) + n * np.sin(d0))
    ra = ra0 + np.arctan2(l_rad, n * np.cos(d0) - m_rad * np.sin(d0))
    return float(np.degrees(ra) % 360), float(np.degrees(dec))


def one_source_obs(out: Path, *, ra_deg: float, dec_deg: float, flux_jy: float = 10.0,
                   nants: int = 12, nchan: int = 4, omit: list[int] = (), **kw):
    """Noise-free, gain-free simulation of one point source (default start and pointing)."""
    opts = SimOptions(nants=nants, nchan=nchan, sefd_jy=None, gains=False, bandpass=False,
                      gains_vary=False, seed=3,
                      sources=[dict(name="T", ra_deg=ra_deg, dec_deg=dec_deg, flux_jy=flux_jy,
                                    spectral_index=-0.7)],
                      omit_subbands={0: list(omit)} if omit else {}, **kw)
    res = simulate(out, opts)
    return res, json.loads(res.manifest.read_text())


def attenuated_flux(manifest: dict, nchan: int) -> tuple[np.ndarray, np.ndarray]:
    """S(nu) A(t, nu) of the first source, shape (Ntimes, 16 nchan), and ascending freqs."""
    src = manifest["sources"][0]
    obs = manifest["observations"][0]
    f = fq.all_freqs_hz(nchan, ascending=True)
    ha = np.asarray(obs["source_ha_rad"])[0][:, None]
    dec = np.asarray(obs["source_dec_app_rad"])[0][:, None]
    s = src["flux_jy"] * (f / src["ref_freq_hz"]) ** src["spectral_index"]
    return s * beam_power(ha, dec, manifest["pointing_dec_rad"], f[None, :]), f


def data_files(res) -> list[Path]:
    """The group's final files (no temporaries, no duplicates)."""
    return sorted(p for p in res.files if p.name.endswith(".hdf5") and "_sb" in p.name
                  and "incomplete" not in p.name)


def run_casa(state_dir: Path, body: str, timeout: float = 600) -> dict:
    """Run ``body`` in a child Python with ``ct`` (casatools) and ``tasks`` (casatasks)
    started offline via contimg.casa; ``body`` sets ``result`` (JSON-able)."""
    code = textwrap.dedent("""
        import json, sys, numpy as np
        from pathlib import Path
        from contimg import casa
        casa.start(Path(sys.argv[1]))
        ct = casa.tools()
        tasks = casa.tasks()
        result = None
    """) + textwrap.dedent(body) + "\nprint('RESULT=' + json.dumps(result))\n"
    proc = subprocess.run([sys.executable, "-c", code, str(state_dir)], capture_output=True,
                          text=True, timeout=timeout, cwd=state_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT=")][-1]
    return json.loads(line[len("RESULT="):])
