"""Calibrate: choose calibrators (K1), solve (K2), register (K3), apply (K4).

One job per observation.  A calibrator observation first solves and registers a
solution set (which wakes the observations waiting for it), then every
observation, calibrator or not, applies the newest active set covering its mid
time.  With no covering set the job is deferred, not failed: its reason shows in
`contimg status` and it proceeds by itself once a solution lands.
"""

from __future__ import annotations

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
    opts = SolveOptions(refants=refant_candidates(cfg.calibrate_refants))
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
                "refant_candidates": opts.refants[:10]}, quality=result.quality)
    return set_name


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
    choice = decide_calibrator(ctx, obs_id, ms)
    solved = solve_calibrator(ctx, obs_id, ms, choice) if choice.get("calibrator") else None
    tables = calibration.covering(db, ms["mid_mjd"])
    if set(tables) != {"bandpass", "gain"}:
        have = ", ".join(f"{k} {t['set_name']}" for k, t in tables.items()) or "none"
        reason = (f"waiting for a calibration solution covering MJD {ms['mid_mjd']:.5f} "
                  f"(have: {have}); it proceeds when a calibrator transit within the "
                  "validity window is solved")
        jobs.defer(db, job, reason, ctx.config.calibrate_recheck_s)
        return Outcome(obs_id, "deferred", reason)
    paths = [Path(tables["bandpass"]["path"]), Path(tables["gain"]["path"])]
    try:
        figures = apply(Path(ms["path"]), paths)
    except CalTableMissing as exc:
        raise StepError(f"{obs_id}: {exc}") from exc
    bp_id, g_id = tables["bandpass"]["id"], tables["gain"]["id"]
    jobs.complete(db, job, next_jobs=next_jobs, message=f"applied {tables['gain']['set_name']}",
                  record=lambda conn: calibration.record_application_in(conn, obs_id, bp_id, g_id,
                                                                         figures))
    what = f"solved {solved} and applied" if solved else "applied"
    return Outcome(obs_id, "done", f"{what} {tables['gain']['set_name']}",
                   data={"set": tables["gain"]["set_name"], "figures": figures})
