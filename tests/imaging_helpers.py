"""Helpers for the imaging tests: a wide-field simulated observation and CASA in a child.

The observation points at Dec +55 (18 deg from the zenith at OVRO), where the w-term
moves sources 1-2 deg out by 6-18 arcsec if ignored (docs/pitfalls.md).  Sources sit at
chosen (l, m) offsets from the MS phase centre (the meridian at mid time), including
three 1.2-1.5 deg out.  Noise is on and gains are off, so DATA is "calibrated".

image_ms runs in a child process: build_ms (python-casacore) runs in the test process
and docs/pitfalls.md keeps casatools and python-casacore apart.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from contimg.astro import times
from contimg.sim import SimOptions, simulate, sky

REPO = Path(__file__).resolve().parents[1]
DEC0 = 55.0
START_ISO = "2025-06-15T06:00:00"
DURATION_S = 24 * 12.8849
# name, l (deg, east), m (deg, north), flux at 1.4 GHz (Jy), spectral index
LAYOUT = [
    ("C0", 0.05, -0.10, 0.50, -0.7),
    ("N12", 0.00, 1.20, 1.00, -0.7),
    ("SW13", -1.00, -0.90, 0.80, -1.0),
    ("E14", 1.40, 0.30, 0.60, 0.3),
    ("F1", 0.30, 0.50, 0.12, 0.0),
]


def offset_source(ra0_deg: float, dec0_deg: float, l_rad: float, m_rad: float) -> tuple[float, float]:
    """ICRS position at SIN-projection offsets (l, m) from (ra0, dec0), degrees."""
    ra0, d0 = np.radians(ra0_deg), np.radians(dec0_deg)
    n = np.sqrt(1 - l_rad**2 - m_rad**2)
    dec = np.arcsin(m_rad * np.cos(d0) + n * np.sin(d0))
    ra = ra0 + np.arctan2(l_rad, n * np.cos(d0) - m_rad * np.sin(d0))
    return float(np.degrees(ra) % 360), float(np.degrees(dec))


def field_centre() -> tuple[float, float, float]:
    """(mid JD, ICRS RA, Dec in deg) of the meridian at mid time at DEC0."""
    mid = times.iso_to_jd(START_ISO) + 0.5 * DURATION_S / 86400
    ra, dec = sky.meridian_icrs(np.array([mid]), DEC0)
    return mid, float(ra[0]), float(dec[0])


def layout_sources() -> list[dict]:
    _, ra_c, dec_c = field_centre()
    out = []
    for name, l, m, flux, alpha in LAYOUT:
        ra, dec = offset_source(ra_c, dec_c, np.radians(l), np.radians(m))
        out.append({"name": name, "ra_deg": ra, "dec_deg": dec, "flux_jy": flux, "spectral_index": alpha})
    return out


def simulate_and_convert(out: Path, *, nants: int = 20, nchan: int = 4, seed: int = 11):
    """Simulate the layout (noise on, gains off) and build its MS; returns (MsInfo, manifest)."""
    from contimg.msio import build_ms

    opts = SimOptions(nants=nants, nchan=nchan, seed=seed, start=START_ISO, dec_deg=DEC0,
                      gains=False, bandpass=False, gains_vary=False, sources=layout_sources())
    res = simulate(out / "raw", opts)
    files = sorted(p for p in res.files if p.name.endswith(".hdf5") and "incomplete" not in p.name)
    info = build_ms(files, out / "obs.ms")
    return info, json.loads(res.manifest.read_text())


def image_kwargs(info) -> dict:
    return {"pointing_dec_deg": info.pointing_dec_deg, "mid_mjd": info.mid_mjd,
                "start_mjd": info.start_mjd, "end_mjd": info.end_mjd}


def run_child(state_dir: Path, body: str, args: dict, timeout: float = 600) -> dict:
    """Run ``body`` in a child Python after contimg.casa.start; ``args`` is available as a
    dict and ``body`` sets ``result`` (JSON-able)."""
    code = textwrap.dedent("""
        import dataclasses, json, sys, numpy as np
        from pathlib import Path
        from contimg import casa
        args = json.loads(sys.argv[2])
        casa.start(Path(sys.argv[1]))
        result = None
    """) + textwrap.dedent(body) + "\nprint('RESULT=' + json.dumps(result, default=str))\n"
    state_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, "-c", code, str(state_dir), json.dumps(args)],
                          capture_output=True, text=True, timeout=timeout, cwd=state_dir, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT=")][-1]
    return json.loads(line[len("RESULT="):])


IMAGE_BODY = """
from contimg.imaging import ImageOptions, image_ms
res = image_ms(Path(args["ms"]), Path(args["out"]), args["name"], ImageOptions(**args["opts"]),
               **args["kw"])
result = dataclasses.asdict(res)
"""


def image_in_child(state_dir: Path, ms: Path, out: Path, name: str, opts: dict, kw: dict) -> dict:
    """image_ms in a child process; returns the ImageResult as a dict."""
    args = {"ms": str(ms), "out": str(out), "name": name, "opts": opts, "kw": kw}
    return run_child(state_dir, IMAGE_BODY, args)


def result_fields(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def briggs_weights(u_lam: np.ndarray, v_lam: np.ndarray, robust: float, shape: tuple[int, int],
                   cell_arcsec: float) -> np.ndarray:
    """Briggs imaging weights of unit-weight visibilities, written from the definition
    (Briggs 1995, as CASA's 'briggs' mode): cell weights W on the image's uv grid
    (cell 1/(N * cell) wavelengths, each visibility and its Hermitian mirror counted),
    f^2 = (5 * 10^-R)^2 / (sum W^2 / sum w), weight = 1 / (1 + W f^2)."""
    ny, nx = shape
    cell = np.radians(cell_arcsec / 3600)
    iu = np.rint(u_lam * nx * cell).astype(np.int64) + nx // 2
    iv = np.rint(v_lam * ny * cell).astype(np.int64) + ny // 2
    ju = np.rint(-u_lam * nx * cell).astype(np.int64) + nx // 2
    jv = np.rint(-v_lam * ny * cell).astype(np.int64) + ny // 2
    grid = np.zeros(nx * ny)
    np.add.at(grid, iv * nx + iu, 1.0)
    np.add.at(grid, jv * nx + ju, 1.0)
    f2 = (5 * 10 ** (-robust)) ** 2 / (np.sum(grid**2) / (2 * u_lam.size))
    return 1.0 / (1.0 + grid[iv * nx + iu] * f2)


def expected_image_noise(ms: Path, sigma_vis: float, robust: float, shape, cell_arcsec: float) -> dict:
    """Thermal noise of a Stokes I image from per-visibility noise and the imaging weights.

    Each XX, YY visibility has sigma_vis per real/imaginary part (the manifest's sigma),
    so Stokes I = (XX + YY)/2 has sigma_vis/sqrt(2); a pixel is sum w Re(V e^{i phi}) / sum w
    over all cross-correlation visibilities (rows x channels), hence
    sigma_image = sigma_vis/sqrt(2) * sqrt(sum w^2) / sum w.  Also returns the natural-
    weighting value, which equals the radiometer formula SEFD / sqrt(4 Nbl Nt dnu_tot t_int).
    """
    from casacore.tables import table

    with table(str(ms), ack=False) as t:
        uvw = t.getcol("UVW")
        cross = t.getcol("ANTENNA1") != t.getcol("ANTENNA2")
    with table(str(ms / "SPECTRAL_WINDOW"), ack=False) as t:
        freqs = t.getcol("CHAN_FREQ")[0]
    lam = 299792458.0 / freqs
    u = (uvw[cross, 0][:, None] / lam[None, :]).ravel()
    v = (uvw[cross, 1][:, None] / lam[None, :]).ravel()
    w = briggs_weights(u, v, robust, shape, cell_arcsec)
    sig_i = sigma_vis / np.sqrt(2)
    return {"briggs": float(sig_i * np.sqrt(np.sum(w**2)) / np.sum(w)),
                "natural": float(sig_i / np.sqrt(u.size)), "nvis": int(u.size)}
