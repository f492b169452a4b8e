"""Calibrate: choose calibrators (K1), solve (K2), register (K3), apply (K4).

One job per observation.  The MS is RFI-flagged first (flag.engine).  A
calibrator observation then solves and registers a solution set (which wakes
the observations waiting for it); every observation, calibrator or not, applies
the set whose transit is nearest its mid time within the validity windows.  A
set from a calibrator outside calibrate.flux_calibrators (Perley-Butler 2017 by
default) is phase-only; the amplitudes then come from the nearest flux-scale set.  With no covering set the job is deferred, not failed: its reason shows in
`contimg status` and it proceeds by itself once a solution lands.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from contimg import names
from contimg.astro.calselect import choose_calibrator
from contimg.state import Job, NextJob, calibration, jobs
from contimg.steps.diskspace import defer_unless_room
from contimg.steps.ms_lookup import require_ms
from contimg.steps.runner import Outcome, StepContext, StepError

STEP = "calibrate"


def decide_calibrator(ctx: StepContext, obs_id: str, ms: dict) -> dict:
    """The recorded K1 decision for an observation (made once, then reused)."""
    known = calibration.get_choice(ctx.db, obs_id)
    if known is not None:
        return known
    cfg = ctx.config
    choice = choose_calibrator(ms["start_mjd"], ms["end_mjd"], ms["dec_deg"],
                               max_offset_deg=cfg.calibrate_max_offset_deg,
                               min_beam_jy=cfg.calibrate_min_beam_jy)
    record = None
    if choice is not None:
        s = choice.source
        record = dict(calibrator=s.name, ra_deg=s.ra_deg, dec_deg=s.dec_deg, flux_jy=s.flux_jy,
                      spectral_index=s.spectral_index, transit_mjd=choice.transit_mjd,
                      beam_weighted_jy=choice.beam_weighted_jy)
    return calibration.record_choice(ctx.db, obs_id, record)


def refant_candidates(configured: list[str]) -> list[str]:
    """The configured (or built-in) list, then every station by distance from the array
    centre: the first with unflagged data wins, so a subarray still finds a reference."""
    import numpy as np

    from contimg.astro.site import stations
    from contimg.calib.types import DEFAULT_REFANTS

    table = stations()
    by_distance = [table.names[i] for i in np.argsort(np.linalg.norm(table.antenna_positions, axis=1))]
    first = list(configured) or list(DEFAULT_REFANTS)
    return first + [n for n in by_distance if n not in first]


def model_sources(ms_path: Path, choice: dict) -> list:
    """The calibrator plus every other catalogue source bright in the beam: a bright
    neighbour left out of the model biases the gains by its apparent flux ratio."""
    from contimg.astro.catalog import load_calibrators
    from contimg.calib import CalSource, sources_in_beam

    cal = CalSource(choice["calibrator"], choice["ra_deg"], choice["dec_deg"], choice["flux_jy"],
                    choice["spectral_index"])
    others = [s for s in sources_in_beam(ms_path, load_calibrators(compact_only=True), 0.01)
              if s.name != cal.name]
    return [cal, *others]


def solve_calibrator(ctx: StepContext, obs_id: str, ms: dict, choice: dict) -> str:
    """Solve on a calibrator observation unless its set is registered; returns the set name."""
    from contimg.calib import CalibrationError, SolveOptions, solve

    cfg = ctx.config
    set_name = names.calibration_set_name(obs_id, choice["calibrator"])
    if calibration.tables_of_set(ctx.db, set_name):
        return set_name
    out_dir = names.caltable_dir(cfg.staging, set_name)
    flux_scale = sets_flux_scale(choice["calibrator"], cfg.calibrate_flux_calibrators)
    opts = SolveOptions(refants=refant_candidates(cfg.calibrate_refants),
                        uv_min_lambda=cfg.calibrate_uv_min_lambda,
                        gain_calmode="ap" if flux_scale else "p", write_amplitude=flux_scale)
    sources = model_sources(Path(ms["path"]), choice)
    try:
        result = solve(Path(ms["path"]), out_dir, set_name, sources, opts)
    except CalibrationError as exc:
        raise StepError(f"solving on {obs_id} ({choice['calibrator']}): {exc}") from exc
    calibration.register_set(
        ctx.db, set_name=set_name, tables={k: str(v) for k, v in result.tables.items()},
        windows={"bandpass": cfg.calibrate_bandpass_valid_h / 24,
                 "gain": cfg.calibrate_gain_valid_h / 24},
        transit_mjd=choice["transit_mjd"], source_observation=obs_id,
        calibrator=choice["calibrator"], refant=result.refant,
        params={**result.params, "model": [s.name for s in sources],
                "refant_candidates": opts.refants[:10], "flux_scale": flux_scale,
                "amplitude_table": result.params.get("amplitude_table") if flux_scale else None},
        quality=result.quality)
    return set_name


def sets_flux_scale(calibrator: str, flux_calibrators: list[str]) -> bool:
    """Only the configured (default: Perley-Butler 2017) calibrators set the amplitude scale:
    the other catalogue fluxes are VLA-manual values good to +-20 %."""
    key = calibrator.replace(" ", "").lower()
    return any(key == c.replace(" ", "").lower() for c in flux_calibrators)


def flag_observation(ctx: StepContext, obs_id: str, ms: dict) -> dict:
    """RFI-flag the MS once (statistics recorded at once, so a deferred job does not re-flag;
    an MS converted again since, with a new created_at, is flagged again)."""
    from contimg.calib import CalibrationError, flagging

    ms_path = Path(ms["path"])
    known = calibration.get_flags(ctx.db, obs_id)
    if known is not None and known["figures"].get("ms_created_at") == ms.get("created_at"):
        return known["figures"]
    cfg = ctx.config
    try:
        figures = flagging.flag(ms_path, cfg.flag_engine, strategy=cfg.flag_strategy,
                                base_threshold=cfg.flag_base_threshold or None)
    except CalibrationError as exc:
        raise StepError(f"flagging {obs_id}: {exc}") from exc
    figures["ms_created_at"] = ms.get("created_at")
    with ctx.db.transaction() as conn:
        calibration.record_flags_in(conn, obs_id, figures)
    return figures


def phase_calibrate(ctx: StepContext, obs_id: str, ms_path: Path, applied: list[Path]) -> dict:
    """Phase-only calibration of this observation against sky_model.catalogue, on top of the
    transit tables.  A missing or unreadable catalogue, or a failed solve, is not fatal: the
    observation is calibrated without it and the returned ``warning`` shows in status."""
    from contimg.astro.refcat import RefCatError, read_refcat
    from contimg.calib import CalibrationError
    from contimg.calib.phasecal import catalogue_sources, solve_phase

    cfg = ctx.config
    path = cfg.sky_model_catalogue
    if not path:
        return {"catalogue": None, "table": None,
                "note": "no sky_model.catalogue configured: no per-observation phase calibration"}
    try:
        cat = read_refcat(path)
        sources = catalogue_sources(ms_path, cat)
        name = f"{obs_id}_phase"
        out = names.caltable_dir(cfg.staging, name) / f"{name}.pcal"
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        fig = solve_phase(ms_path, tmp, sources, applied, refants=refant_candidates(cfg.calibrate_refants),
                          solint_s=cfg.calibrate_phase_solint_s, uv_min_lambda=cfg.calibrate_uv_min_lambda)
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
    except (RefCatError, CalibrationError, OSError) as exc:
        return {"catalogue": str(path), "table": None,
                "warning": f"sky-model phase calibration skipped: {exc}"}
    return {"catalogue": str(path), "table": str(out), "sources": [s.name for s in sources], **fig}


def tables_to_apply(ctx: StepContext, mid_mjd: float) -> tuple[list[Path], dict] | str:
    """Bandpass and gain of the nearest transit covering ``mid_mjd``; when that gain is phase-only
    (not a flux calibrator), the amplitudes of the nearest flux-scale set.  A string says what is
    missing."""
    tables = calibration.covering(ctx.db, mid_mjd)
    if set(tables) != {"bandpass", "gain"}:
        have = ", ".join(f"{k} {t['set_name']}" for k, t in tables.items()) or "none"
        return (f"waiting for a calibration solution covering MJD {mid_mjd:.5f} (have: {have}); it "
                "proceeds when a calibrator transit within the validity window is solved")
    paths = [Path(tables["bandpass"]["path"]), Path(tables["gain"]["path"])]
    prov = {k: {"path": t["path"], "set": t["set_name"], "calibrator": t["calibrator"],
                "transit_mjd": t["transit_mjd"], "selection": t["selection"]} for k, t in tables.items()}
    if not tables["gain"]["params"].get("flux_scale", True):
        amp = calibration.nearest_flux_scale_gain(ctx.db, mid_mjd, ctx.config.calibrate_amplitude_valid_h / 24)
        if amp is None:
            return (f"waiting for a flux-scale calibrator ({', '.join(ctx.config.calibrate_flux_calibrators)})"
                    f" within {ctx.config.calibrate_amplitude_valid_h:g} h of MJD {mid_mjd:.5f}: the gain set "
                    f"{tables['gain']['set_name']} is phase-only")
        paths.append(Path(amp["params"]["amplitude_table"]))
        prov["amplitude"] = {"path": amp["params"]["amplitude_table"], "set": amp["set_name"],
                             "calibrator": amp["calibrator"], "transit_mjd": amp["transit_mjd"],
                             "selection": "nearest flux-scale transit"}
    return paths, {"tables": prov, "ids": (tables["bandpass"]["id"], tables["gain"]["id"]),
                   "set": tables["gain"]["set_name"]}


def calibrate_one(ctx: StepContext, job: Job) -> Outcome:
    from contimg.calib import CalTableMissing, apply

    obs_id, db = job.subject, ctx.db
    ms = require_ms(db, obs_id)
    applied = calibration.get_application(db, obs_id)
    next_jobs = [NextJob("image", obs_id, ms["mid_mjd"])]
    if applied is not None:
        jobs.complete(db, job, next_jobs=next_jobs, message="already calibrated")
        return Outcome(obs_id, "skipped", f"{obs_id} already calibrated (tables "
                       f"{applied['bandpass_id']}, {applied['gain_id']}); nothing to do")
    # applycal adds a CORRECTED_DATA column (and solving a model column): about the MS again
    waiting = defer_unless_room(ctx, job, float(ms.get("size_bytes") or 0),
                                "calibrating its Measurement Set")
    if waiting is not None:
        return waiting
    flags = flag_observation(ctx, obs_id, ms)
    choice = decide_calibrator(ctx, obs_id, ms)
    solved = solve_calibrator(ctx, obs_id, ms, choice) if choice.get("calibrator") else None
    chosen = tables_to_apply(ctx, ms["mid_mjd"])
    if isinstance(chosen, str):
        jobs.defer(db, job, chosen, ctx.config.calibrate_recheck_s)
        return Outcome(obs_id, "deferred", chosen)
    paths, info = chosen
    sky = phase_calibrate(ctx, obs_id, Path(ms["path"]), paths)
    if sky.get("table"):
        paths = [*paths, Path(sky["table"])]
    try:
        figures = apply(Path(ms["path"]), paths)
    except CalTableMissing as exc:
        raise StepError(f"{obs_id}: {exc}") from exc
    bp_id, g_id = info["ids"]
    prov = {"tables": info["tables"], "apply_order": [str(p) for p in paths],
            "flags": {k: flags.get(k) for k in ("engine", "strategy", "flagged_before", "flagged_after",
                                                 "bad_antennas")},
            "sky_model": sky}
    jobs.complete(db, job, next_jobs=next_jobs, message=f"applied {info['set']}",
                  record=lambda conn: calibration.record_application_in(conn, obs_id, bp_id, g_id,
                                                                         figures, prov))
    what = f"solved {solved} and applied" if solved else "applied"
    return Outcome(obs_id, "done", f"{what} {info['set']}",
                   data={"set": info["set"], "figures": figures, "flags": flags})
