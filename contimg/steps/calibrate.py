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

import sys
from dataclasses import dataclass
from pathlib import Path

from contimg import names
from contimg.astro.calselect import choose_calibrator
from contimg.state import Job, NextJob, calibration
from contimg.steps.contract import Decision, Outcome, Status, WorkOrder
from contimg.steps.ms_lookup import require_ms

STEP = "calibrate"
OWN = "own:"  # a table of the set this job solves: its path is known once solved


@dataclass(frozen=True)
class SolvePlan:
    set_name: str
    out_dir: str
    flux_scale: bool
    refants: tuple[str, ...]
    uv_min_lambda: float
    windows: dict


@dataclass(frozen=True)
class CalibrateOrder(WorkOrder):
    ms: str = ""
    mid_mjd: float = 0.0
    choice: dict | None = None        # the K1 decision
    choice_is_new: bool = False       # record it with the result
    flag: dict | None = None          # flagging.flag keywords; None: flagged already
    known_flags: dict | None = None
    solve: SolvePlan | None = None
    apply: tuple[str, ...] | None = None   # tables in order (OWN+kind: this set's); None: defer
    apply_info: dict | None = None
    waiting: str | None = None        # why nothing is applied yet
    phase: dict | None = None         # per-observation sky-model phase calibration
    autoamp: dict | None = None       # amplitude drift from the autocorrelations
    recheck_s: float = 0.0


def decide_calibrator(ctx, obs_id: str, ms: dict) -> tuple[dict, bool]:
    """The K1 decision for an observation (recorded once, then reused) and whether it is new."""
    known = calibration.get_choice(ctx.db, obs_id)
    if known is not None:
        return known, False
    cfg = ctx.config
    choice = choose_calibrator(ms["start_mjd"], ms["end_mjd"], ms["dec_deg"],
                               max_offset_deg=cfg.calibrate_max_offset_deg,
                               min_beam_jy=cfg.calibrate_min_beam_jy)
    if choice is None:
        return {"calibrator": None}, True
    s = choice.source
    return dict(calibrator=s.name, ra_deg=s.ra_deg, dec_deg=s.dec_deg, flux_jy=s.flux_jy,
                spectral_index=s.spectral_index, transit_mjd=choice.transit_mjd,
                beam_weighted_jy=choice.beam_weighted_jy), True


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


def sets_flux_scale(calibrator: str, flux_calibrators: list[str]) -> bool:
    """Only the configured (default: Perley-Butler 2017) calibrators set the amplitude scale:
    the other catalogue fluxes are VLA-manual values good to +-20 %."""
    key = calibrator.replace(" ", "").lower()
    return any(key == c.replace(" ", "").lower() for c in flux_calibrators)


def plan_solve(ctx, obs_id: str, choice: dict) -> SolvePlan | None:
    """A solve on this calibrator observation, unless its set is registered already."""
    if not choice.get("calibrator"):
        return None
    cfg = ctx.config
    set_name = names.calibration_set_name(obs_id, choice["calibrator"])
    if calibration.tables_of_set(ctx.db, set_name):
        return None
    return SolvePlan(set_name, str(names.caltable_dir(cfg.staging, set_name)),
                     sets_flux_scale(choice["calibrator"], cfg.calibrate_flux_calibrators),
                     tuple(refant_candidates(cfg.calibrate_refants)), cfg.calibrate_uv_min_lambda,
                     {"bandpass": cfg.calibrate_bandpass_valid_h / 24,
                      "gain": cfg.calibrate_gain_valid_h / 24})


def _own_row(plan: SolvePlan, choice: dict, kind: str) -> dict:
    return {"id": None, "path": OWN + kind, "set_name": plan.set_name,
            "calibrator": choice["calibrator"], "transit_mjd": choice["transit_mjd"],
            "selection": "nearest transit",
            "params": {"flux_scale": plan.flux_scale,
                       "amplitude_table": OWN + "amplitude" if plan.flux_scale else None}}


def tables_to_apply(ctx, mid_mjd: float, own: tuple[SolvePlan, dict] | None = None
                    ) -> tuple[list[Path], dict] | str:
    """Bandpass and gain of the nearest transit covering ``mid_mjd``; when that gain is phase-only
    (not a flux calibrator), the amplitudes of the nearest flux-scale set.  ``own`` is the set
    this job is about to solve (plan, choice), a candidate like the registered ones.  A string
    says what is missing."""
    tables = calibration.covering(ctx.db, mid_mjd)
    if own is not None:
        plan, choice = own
        gap = abs(choice["transit_mjd"] - mid_mjd)
        for kind in ("bandpass", "gain"):
            if gap <= plan.windows[kind] and (kind not in tables or
                                              gap <= abs(tables[kind]["transit_mjd"] - mid_mjd)):
                tables[kind] = _own_row(plan, choice, kind)
    if set(tables) != {"bandpass", "gain"}:
        have = ", ".join(f"{k} {t['set_name']}" for k, t in tables.items()) or "none"
        return (f"waiting for a calibration solution covering MJD {mid_mjd:.5f} (have: {have}); it "
                "proceeds when a calibrator transit within the validity window is solved")
    paths = [Path(tables["bandpass"]["path"]), Path(tables["gain"]["path"])]
    prov = {k: {"path": t["path"], "set": t["set_name"], "calibrator": t["calibrator"],
                "transit_mjd": t["transit_mjd"], "selection": t["selection"]} for k, t in tables.items()}
    cfg = ctx.config
    if not tables["gain"]["params"].get("flux_scale", True):
        half = cfg.calibrate_amplitude_valid_h / 24
        amp = calibration.nearest_flux_scale_gain(ctx.db, mid_mjd, half)
        if own is not None and own[0].flux_scale and abs(own[1]["transit_mjd"] - mid_mjd) <= half and (
                amp is None or abs(own[1]["transit_mjd"] - mid_mjd) <= abs(amp["transit_mjd"] - mid_mjd)):
            amp = _own_row(own[0], own[1], "gain")
        if amp is None:
            return (f"waiting for a flux-scale calibrator ({', '.join(cfg.calibrate_flux_calibrators)})"
                    f" within {cfg.calibrate_amplitude_valid_h:g} h of MJD {mid_mjd:.5f}: the gain set "
                    f"{tables['gain']['set_name']} is phase-only")
        paths.append(Path(amp["params"]["amplitude_table"]))
        prov["amplitude"] = {"path": amp["params"]["amplitude_table"], "set": amp["set_name"],
                             "calibrator": amp["calibrator"], "transit_mjd": amp["transit_mjd"],
                             "selection": "nearest flux-scale transit"}
    return paths, {"tables": prov, "ids": (tables["bandpass"]["id"], tables["gain"]["id"]),
                   "set": tables["gain"]["set_name"]}


def prepare(ctx, job: Job) -> CalibrateOrder | Decision:
    cfg, db, obs_id = ctx.config, ctx.db, job.subject
    ms = require_ms(db, obs_id)
    next_jobs = [NextJob("image", obs_id, ms["mid_mjd"])]
    applied = calibration.get_application(db, obs_id)
    if applied is not None:
        return Decision(Status.SKIPPED, "already calibrated", next_jobs=next_jobs,
                        detail=f"{obs_id} already calibrated (tables {applied['bandpass_id']}, "
                        f"{applied['gain_id']}); nothing to do")
    choice, new = decide_calibrator(ctx, obs_id, ms)
    solve = plan_solve(ctx, obs_id, choice)
    chosen = tables_to_apply(ctx, ms["mid_mjd"], (solve, choice) if solve else None)
    if isinstance(chosen, str) and solve is None:  # nothing to solve, nothing to apply: wait
        write_choice = (lambda conn: calibration.record_choice_in(conn, obs_id, choice)) if new else None
        return Decision(Status.DEFERRED, chosen, record=write_choice, recheck_s=cfg.calibrate_recheck_s)
    known = calibration.get_flags(db, obs_id)
    flagged = known is not None and known["figures"].get("ms_created_at") == ms.get("created_at")
    apply, info = (None, None) if isinstance(chosen, str) else (tuple(str(p) for p in chosen[0]), chosen[1])
    phase = None
    if cfg.sky_model_catalogue:
        phase = {"catalogue": str(cfg.sky_model_catalogue),
                 "out": str(names.phase_table_path(cfg.staging, obs_id)),
                 "refants": refant_candidates(cfg.calibrate_refants),
                 "solint_s": cfg.calibrate_phase_solint_s, "uv_min_lambda": cfg.calibrate_uv_min_lambda}
    autoamp = None
    if cfg.calibrate_autocorr_amplitude:
        autoamp = {"out": str(names.autoamp_table_path(cfg.staging, obs_id)),
                   "max_change": cfg.calibrate_autocorr_max_change}
    outputs = tuple(p for p in (solve and solve.out_dir, phase and phase["out"], autoamp and autoamp["out"]) if p)
    return CalibrateOrder(
        STEP, obs_id, root=str(cfg.staging), outputs=outputs, uses_casa=True,
        # applycal adds a CORRECTED_DATA column (and solving a model column): about the MS again
        need_bytes=float(ms.get("size_bytes") or 0), need_what="calibrating its Measurement Set",
        ms=str(ms["path"]), mid_mjd=ms["mid_mjd"], choice=choice,
        choice_is_new=new, solve=solve, apply=apply, apply_info=info,
        waiting=chosen if isinstance(chosen, str) else None, phase=phase, autoamp=autoamp,
        flag=None if flagged else {"engine": cfg.flag_engine, "strategy": cfg.flag_strategy,
                                   "base_threshold": cfg.flag_base_threshold or None,
                                   "time_sigma_s": cfg.flag_time_sigma_s or None,
                                   "freq_dilation": cfg.flag_freq_dilation if cfg.flag_freq_dilation >= 0 else None,
                                   "ms_created_at": ms.get("created_at")},
        known_flags=known["figures"] if flagged else None, recheck_s=cfg.calibrate_recheck_s)


def calibrate_one(ctx, job: Job) -> Outcome:
    """prepare -> work -> record here (a hand-run `contimg calibrate`)."""
    from contimg.steps.runner import run_here

    return run_here(ctx, job, sys.modules[__name__])


from contimg.steps.calibrate_work import record, work  # noqa: E402,F401  (the halves after prepare)
