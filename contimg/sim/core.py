"""The simulator: point sources through the Airy beam, meridian fringe-stopping,
per-antenna gains/bandpasses and thermal noise, written as DSA-110 subband files.

Measurement equation, per polarisation p (XX, YY; unpolarised sky, XX = YY = I):
    V_ij(t, nu) = g_ip(t) b_ip(nu) conj(g_jp(t) b_jp(nu)) * (V_true + N)
    V_true = sum_s S_s(nu) A(theta_s(t), nu) exp(+2 pi i nu/c (u l + v m + w (n - 1)))
with uvw = pos(ant2) - pos(ant1) for the phase centre (HA = 0, Dec = dec0) of date
(pyuvdata's convention) and (l, m, n) the source's direction cosines about that
centre. The noise N is referred to the sky (Jy) so that dividing out the gains
leaves calibrated data with the stated sigma. Visibilities are evaluated at the
channel centre and integration midpoint (no bandwidth or time smearing).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time as _time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from astropy.time import Time

from contimg.astro import freqs as fq
from contimg.astro import site, times
from contimg import names
from contimg.astro.catalog import Source
from contimg.paths import staged
from contimg.sim import realistic, rfi, sky
from contimg.sim.corruptions import Corruptions
from contimg.sim.counts import SkyArrays
from contimg.sim.dft import sky_visibilities
from contimg.sim.instrument import SIDEREAL_RATE_RAD_S, gaussian_factors, rotated_uvw, sim_beam_power
from contimg.sim.options import SimOptions, SimResult
from contimg.sim.uvh5 import (
    TIMESTAMP_FORMAT,
    SubbandFile,
    subband_filename,
    write_subband,
)

NTIMES = 24
INTEGRATION_S = 12.8849
OBS_DURATION_S = NTIMES * INTEGRATION_S
TRUNCATE_FRACTION = 0.4


def baseline_uvw(stations: np.ndarray, dec0_rad: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Antenna-number pairs (i <= j, autos included) and their uvw (m) for the meridian centre.

    The baseline pos(ant2) - pos(ant1) (ITRF) is rotated by the array longitude
    into (X to HA = 0, Y to HA = -6 h, Z to the pole); for a centre at HA = 0 the
    uvw are then constant in time: u = Y, v = -sin(d0) X + cos(d0) Z,
    w = cos(d0) X + sin(d0) Z.
    """
    i, j = np.triu_indices(len(stations))
    a1, a2 = stations[i], stations[j]
    pos = site.stations().antenna_positions
    b = pos[a2] - pos[a1]
    lon = site.LONGITUDE_RAD
    x = np.cos(lon) * b[:, 0] + np.sin(lon) * b[:, 1]
    y = -np.sin(lon) * b[:, 0] + np.cos(lon) * b[:, 1]
    z = b[:, 2]
    sd, cd = np.sin(dec0_rad), np.cos(dec0_rad)
    uvw = np.stack([y, -sd * x + cd * z, cd * x + sd * z], axis=1)
    return a1, a2, uvw


def direction_cosines(ha: np.ndarray, dec: np.ndarray, dec0_rad: float) -> np.ndarray:
    """(l, m, n - 1) of sources at (ha, dec) about the centre (HA = 0, dec0); shape (..., 3)."""
    sd0, cd0 = np.sin(dec0_rad), np.cos(dec0_rad)
    l = -np.cos(dec) * np.sin(ha)
    m = np.sin(dec) * cd0 - np.cos(dec) * sd0 * np.cos(ha)
    n = np.sin(dec) * sd0 + np.cos(dec) * cd0 * np.cos(ha)
    return np.stack([l, m, n - 1.0], axis=-1)


class _Simulation:
    """One simulate() call: fixed geometry, sky, corruptions; writes file after file."""

    def __init__(self, out_dir: Path, opts: SimOptions, progress):
        times.configure_astropy_offline()
        self.out, self.opts, self.progress = out_dir, opts, progress or (lambda msg: None)
        self.faults = opts.fault_sets()
        fq.channel_width_hz(opts.nchan)  # validates nchan
        cal = sky.default_calibrator(opts.dec_deg) if (opts.dec_deg is None or opts.start is None) else None
        self.dec0_deg = float(opts.dec_deg if opts.dec_deg is not None else cal.dec_deg)
        self.dec0 = np.radians(self.dec0_deg)
        gaps = [float(opts.gap_after.get(k, 0.0)) for k in range(opts.observations)]
        if opts.start is None:
            mid = (opts.observations - 1) // 2
            tr = sky.transit_jd(cal, times.iso_to_jd(sky.DEFAULT_DATE_ISO))
            start = tr - ((mid + 0.5) * OBS_DURATION_S + sum(gaps[:mid])) / times.SECONDS_PER_DAY
        else:
            start = times.iso_to_jd(opts.start)
        offsets = np.concatenate([[0.0], np.cumsum(OBS_DURATION_S + np.array(gaps))[:-1]])
        self.obs_start = start + offsets / times.SECONDS_PER_DAY
        self.t0 = float(self.obs_start[0])
        span = (self.t0, float(self.obs_start[-1]) + OBS_DURATION_S / times.SECONDS_PER_DAY)
        if opts.sky not in ("default", "realistic"):
            raise ValueError(f"sky {opts.sky!r}: expected 'default' or 'realistic'")
        self.realistic = opts.sky == "realistic"
        self.sources: list[Source] = []  # the default or given sky as Source objects (truth entries)
        if opts.sources is not None:
            self.sources = [Source.from_any(s) for s in opts.sources]
            self.sky = SkyArrays.from_sources(self.sources, "given")
        elif self.realistic:
            self.sky = realistic.build_sky(opts, self.dec0_deg, *span, sky.catalogue_sources_in_span(self.dec0_deg, *span))
        else:
            rng = np.random.default_rng([opts.seed, 0x5C])
            self.sources = sky.catalogue_sources_in_span(self.dec0_deg, *span) + sky.field_sources(
                rng, opts.n_field_sources, self.dec0_deg, *span)
            self.sky = SkyArrays.from_sources(self.sources)
        self.beam = (opts.effective("beam_scale"), opts.effective("beam_ellipticity"))
        self.smearing = bool(opts.effective("smearing"))
        names = site.active_stations(opts.nants)
        self.stations = np.array(names) - 1
        spare = next(n for n in sorted(site.INACTIVE_STATIONS) if n - 1 not in self.stations)
        self.foreign_stations = np.sort(np.append(self.stations[:-1], spare - 1))
        self.corr = Corruptions.draw(opts.seed, opts.gains, opts.bandpass, opts.gains_vary,
                                     phase_noise_deg=float(opts.effective("phase_noise_deg")))
        self.rfi = (rfi.draw_plan(opts.seed, opts.nchan, opts.observations, NTIMES, self.stations)
                    if opts.effective("rfi") else None)
        self.gain_stations = np.union1d(self.stations, self.foreign_stations)
        self.chan_width = fq.channel_width_hz(opts.nchan)
        self.sigma = self.sigma_auto = 0.0
        if opts.sefd_jy:
            self.sigma = opts.sefd_jy / np.sqrt(2 * self.chan_width * INTEGRATION_S)
            self.sigma_auto = opts.sefd_jy / np.sqrt(self.chan_width * INTEGRATION_S)
        self._geom: dict = {}
        self._tracks: dict = {}

    def times_of(self, k: int, shift: bool = False) -> np.ndarray:
        start = self.obs_start[k] + (OBS_DURATION_S / times.SECONDS_PER_DAY if shift else 0.0)
        return start + (np.arange(NTIMES) + 0.5) * INTEGRATION_S / times.SECONDS_PER_DAY

    def geometry(self, foreign: bool):
        if foreign not in self._geom:
            st = self.foreign_stations if foreign else self.stations
            a1, a2, uvw = baseline_uvw(st, self.dec0)
            idx = {s: n for n, s in enumerate(st)}
            self._geom[foreign] = (st, a1, a2, uvw, np.array([idx[a] for a in a1]), np.array([idx[a] for a in a2]))
        return self._geom[foreign]

    def tracks(self, jd: np.ndarray):
        """(LST, active source indices, HA, Dec) for the integrations ``jd``; every source
        for the default sky, the ones that matter during ``jd`` for the realistic one."""
        key = float(jd[0])
        if key not in self._tracks:
            lst = times.apparent_lst_rad(jd)
            if self.realistic:
                half = 0.5 * INTEGRATION_S / times.SECONDS_PER_DAY
                idx = realistic.active_in_observation(self.sky, self.opts, self.dec0_deg, jd[0] - half, jd[-1] + half)
            else:
                idx = np.arange(len(self.sky))
            ha, dec = sky.hadec_many(self.sky.ra_deg[idx], self.sky.dec_deg[idx], jd)
            self._tracks = {key: (lst, idx, ha, dec)}  # one observation at a time
        return self._tracks[key]

    def file_visdata(self, jd, sb: int, foreign: bool, rng, obs: int = 0) -> tuple[np.ndarray, dict]:
        """visdata (Nblts, 1, Nf, 2) complex64 for one file, plus the uvw and antenna arrays."""
        st, a1, a2, uvw, i1, i2 = self.geometry(foreign)
        freqs = fq.subband_freqs_hz(sb, self.opts.nchan)
        nbls, nf = uvw.shape[0], freqs.size
        _, idx, ha, dec = self.tracks(jd)
        lmn1 = direction_cosines(ha, dec, self.dec0)  # (Nsrc, Nt, 3)
        flux = self.sky.flux_at(freqs)[idx]  # (Nsrc, Nf)
        beam = sim_beam_power(lmn1[..., None, 0], lmn1[..., None, 1], freqs[None, None, :], *self.beam)
        amp = flux[:, None, :, None] * beam  # (Nsrc, Nt, Nf, 2)
        resolved = np.flatnonzero(self.sky.maj_arcsec[idx] > 0)
        f_mid = float(freqs.mean())
        size_w = None
        if resolved.size:
            size_w = np.ones((idx.size, nbls))
            src = self.sky.select(idx[resolved])
            size_w[resolved] = gaussian_factors(uvw, src.maj_arcsec, src.min_arcsec, src.pa_deg, f_mid)
        g = self.corr.gains((jd - self.t0) * 24.0, st)  # (Nt, Nants, 2)
        bp = self.corr.bandpass(freqs, st)  # (Nants, Nf, 2)
        autos = a1 == a2
        corrupt = self.corr.use_gains or self.corr.use_bandpass
        inject = (rfi.RfiInjector(self.rfi, obs, sb, self.opts.nchan, a1, a2,
                                  self.sigma, rng) if self.rfi else None)
        out = np.empty((NTIMES * nbls, 1, nf, 2), dtype=np.complex64)
        v = np.empty((nbls, nf, 2), dtype=np.complex64)
        smear = None
        if self.smearing:
            half = 0.5 * SIDEREAL_RATE_RAD_S * INTEGRATION_S
            duvw = rotated_uvw(uvw, self.dec0, half) - rotated_uvw(uvw, self.dec0, -half)
            smear = {"chan_width": self.chan_width, "duvw": duvw, "f_mid": f_mid}
        for t in range(NTIMES):
            if idx.size:
                v[...] = sky_visibilities(uvw, lmn1[:, t], amp[:, t], freqs, size_w, smear)
            else:
                v[...] = 0
            if self.sigma:
                n = rng.standard_normal((nbls, nf, 2, 2), dtype=np.float32)
                noise = (self.sigma * n[..., 0] + 1j * (self.sigma * n[..., 1])).astype(np.complex64)
                # autocorrelations are real: mean SEFD, sigma SEFD / sqrt(dnu tau)
                noise[autos] = self.opts.sefd_jy + self.sigma_auto * n[autos][..., 0]
                v += noise
            if inject is not None:
                inject.apply(v, t)
            if corrupt:
                gt = (g[t][:, None, :] * bp).astype(np.complex64)  # (Nants, Nf, 2)
                v *= gt[i1]
                v *= np.conj(gt[i2])
            out[t * nbls:(t + 1) * nbls, 0] = v
        return out, {"a1": a1, "a2": a2, "uvw": uvw, "nants": st.size}

    def timestamps(self, k: int) -> list[str]:
        """Per-subband file timestamps: start second of obs k plus a seeded 0-3 s writer jitter."""
        jitter = np.random.default_rng([self.opts.seed, 0x71, k]).integers(0, 4, fq.N_SUBBANDS)
        base = Time(self.obs_start[k], format="jd", scale="utc").to_datetime().replace(microsecond=0)
        return [(base + timedelta(seconds=int(j))).strftime(TIMESTAMP_FORMAT) for j in jitter]

    def write_file(self, k: int, sb: int, stamp: str) -> tuple[list[Path], str, list[str]]:
        """Simulate and write subband ``sb`` of observation ``k``: (paths on disk, name, fault notes)."""
        t_start = _time.time()
        key = (k, sb)
        foreign_t = key in self.faults["foreign_times"]
        foreign_a = key in self.faults["foreign_ants"]
        jd = self.times_of(k, shift=foreign_t)
        rng = np.random.default_rng([self.opts.seed, 0x5E, k, sb])
        vis, meta = self.file_visdata(jd, sb, foreign_a, rng, obs=k)
        nbls = meta["uvw"].shape[0]
        f = SubbandFile(
            freqs_hz=fq.subband_freqs_hz(sb, self.opts.nchan), channel_width_hz=self.chan_width,
            time_jd=np.repeat(jd, nbls), integration_time_s=INTEGRATION_S,
            ant_1=np.tile(meta["a1"], NTIMES), ant_2=np.tile(meta["a2"], NTIMES),
            uvw_m=np.tile(meta["uvw"], (NTIMES, 1)), visdata=vis, nants_data=meta["nants"],
            ntimes=NTIMES, pointing_dec_rad=self.dec0,
        )
        del vis
        final = self.out / subband_filename(stamp, sb)
        path = write_subband(final, f, leave_temporary=key in self.faults["leave_temporary"])
        written = [path]
        notes = [n for n, on in (("foreign_times", foreign_t), ("foreign_ants", foreign_a),
                                 ("leave_temporary", key in self.faults["leave_temporary"])) if on]
        if key in self.faults["duplicate"]:
            dup_stamp = (datetime.strptime(stamp, TIMESTAMP_FORMAT) + timedelta(seconds=1)).strftime(TIMESTAMP_FORMAT)
            dup = self.out / subband_filename(dup_stamp, sb)
            with staged(dup) as tmp:
                shutil.copyfile(path, tmp)
            written.append(dup)
            notes.append(f"duplicate:{dup.name}")
        if key in self.faults["truncate"]:
            size = path.stat().st_size
            os.truncate(path, int(size * TRUNCATE_FRACTION))
            notes.append(f"truncated:{size}->{int(size * TRUNCATE_FRACTION)}")
        self.progress(f"obs {k} sb{sb:02d} -> {path.name} ({_time.time() - t_start:.1f} s)")
        return written, path.name, notes

    def write_observation(self, k: int) -> tuple[list[Path], dict]:
        written, info_files, faults = [], {}, {}
        stamps = self.timestamps(k)
        omit = {int(s) for s in self.opts.omit_subbands.get(k, self.opts.omit_subbands.get(str(k), []))}
        todo = [sb for sb in range(fq.N_SUBBANDS) if sb not in omit]
        for sb in sorted(omit):
            faults[f"{sb:02d}"] = ["omitted"]
        self.tracks(self.times_of(k))  # computed once, before any worker is forked
        if self.opts.workers > 1:
            global _WORKER_SIM
            _WORKER_SIM = self
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(min(self.opts.workers, len(todo))) as pool:
                results = pool.starmap(_worker_write, [(k, sb, stamps[sb]) for sb in todo])
        else:
            results = [self.write_file(k, sb, stamps[sb]) for sb in todo]
        for sb, (paths, name, notes) in zip(todo, results):
            written += paths
            info_files[f"{sb:02d}"] = name
            if notes:
                faults[f"{sb:02d}"] = notes
        jd = self.times_of(k)
        lst, idx, ha, dec = self.tracks(jd)
        g = self.corr.gains((jd - self.t0) * 24.0, self.gain_stations)
        info = {
            "index": k,
            "start_jd": float(self.obs_start[k]),
            "start_iso": times.jd_to_iso(float(self.obs_start[k])),
            "end_jd": float(self.obs_start[k] + OBS_DURATION_S / times.SECONDS_PER_DAY),
            "times_jd": jd.tolist(),
            "lst_rad": lst.tolist(),
            "files": info_files,
            "faults": faults,
            **({"active_sources": int(idx.size)} if self.realistic else
               {"source_ha_rad": ha.tolist(), "source_dec_app_rad": dec.tolist()}),
            "gains_re": g.real.tolist(),
            "gains_im": g.imag.tolist(),
        }
        return written, info


_WORKER_SIM = None  # the simulation a forked worker inherits


def _worker_write(k: int, sb: int, stamp: str):
    with _one_blas_thread():
        return _WORKER_SIM.write_file(k, sb, stamp)


def _one_blas_thread():
    """Small matrix products (a few columns) run ~20x faster on one BLAS thread than
    on several competing ones; threadpoolctl is the standard way to ask."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def simulate(out_dir: Path, opts: SimOptions, progress: Callable[[str], None] | None = None) -> SimResult:
    """Write ``opts.observations`` groups of 16 subband files and a truth manifest into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sim = _Simulation(out_dir, opts, progress)
    files, observations = [], []
    with _one_blas_thread():
        for k in range(opts.observations):
            w, info = sim.write_observation(k)
            files += w
            observations.append(info)
    manifest = out_dir / names.truth_manifest_name(min(sim.timestamps(0)))
    from contimg.sim.truth import build_truth

    truth = build_truth(sim, observations)
    if sim.realistic:
        truth["reference_catalogue"] = realistic.write_reference_catalogue(
            out_dir, min(sim.timestamps(0)), sim.sky, opts.seed)
    with staged(manifest) as tmp:
        tmp.write_text(json.dumps(truth))
    return SimResult(files=sorted(files), manifest=manifest, observations=observations)
