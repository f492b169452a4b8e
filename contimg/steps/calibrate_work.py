"""Calibrate's work (flag, solve, phase-calibrate, apply: files only) and its record.

``work`` runs wherever the executor puts it and never opens the database; the
tables of a set it solves itself are named ``own:<kind>`` in the order and
resolved here once solved.  ``record`` registers the set, the flag statistics and
the application, with the K1 decision, in one fenced transaction; when nothing
could be applied yet (a phase-only set waiting for a flux-scale transit) it
registers what was solved and defers the job.
"""

from __future__ import annotations

from pathlib import Path

from contimg import names
from contimg.paths import staged
from contimg.state import Job, NextJob, calibration, jobs
from contimg.steps.contract import Outcome, Status, StepError

OWN = "own:"


def work(order, progress=None) -> dict:
    from contimg.calib import CalTableMissing, CalibrationError, apply, flagging

    ms = Path(order.ms)
    out: dict = {"flags": order.known_flags, "flags_new": False}
    if order.flag is not None:
        kw = {k: v for k, v in order.flag.items() if k != "ms_created_at"}
        try:
            figures = flagging.flag(ms, kw.pop("engine"), **kw)
        except CalibrationError as exc:
            raise StepError(f"flagging {order.subject}: {exc}") from exc
        out["flags"] = {**figures, "ms_created_at": order.flag["ms_created_at"]}
        out["flags_new"] = True
    if order.solve is not None:
        out["solved"] = solve_set(order, ms)
    if order.apply is None:
        return out
    try:
        own = out.get("solved", {}).get("tables", {})
        paths = [Path(own[p[len(OWN):]]) if p.startswith(OWN) else Path(p) for p in order.apply]
        out["autocorr"] = autocorr_amplitude(order, ms, paths[-1])
        if out["autocorr"].get("table"):
            paths.append(Path(out["autocorr"]["table"]))
        out["sky"] = phase_calibrate(order, ms, paths)
        if out["sky"].get("table"):
            paths.append(Path(out["sky"]["table"]))
        try:
            out["figures"] = apply(ms, paths)
        except CalTableMissing as exc:
            raise StepError(f"{order.subject}: {exc}") from exc
    except Exception as exc:
        if "solved" not in out and not out["flags_new"]:
            raise
        # what was learnt is kept: a solved set serves every observation in its window
        # even if applying it here failed (the job fails and is retried without re-solving)
        from contimg.steps.runner import describe

        out["error"] = describe(exc)
        out["retryable"] = getattr(exc, "retryable", True)
        return out
    out["apply_order"] = [str(p) for p in paths]
    return out


def solve_set(order, ms: Path) -> dict:
    """Solve bandpass and gains on this calibrator observation (model: the calibrator plus
    the bright catalogue sources in the beam)."""
    from contimg.calib import CalibrationError, SolveOptions, solve

    plan, choice = order.solve, order.choice
    opts = SolveOptions(refants=list(plan.refants), uv_min_lambda=plan.uv_min_lambda,
                        gain_calmode="ap" if plan.flux_scale else "p",
                        write_amplitude=plan.flux_scale)
    sources = model_sources(ms, choice)
    try:
        result = solve(ms, Path(plan.out_dir), plan.set_name, sources, opts)
    except CalibrationError as exc:
        raise StepError(f"solving on {order.subject} ({choice['calibrator']}): {exc}") from exc
    tables = {k: str(v) for k, v in result.tables.items()}
    amp = result.params.get("amplitude_table") if plan.flux_scale else None
    if amp:
        tables["amplitude"] = str(amp)
    if plan.flux_scale:
        result.params["autopower"] = record_autopower(ms, names.autopower_path(Path(plan.out_dir), plan.set_name))
    return {"tables": tables, "refant": result.refant, "quality": result.quality,
            "params": {**result.params, "model": [s.name for s in sources],
                       "refant_candidates": list(plan.refants[:10]), "flux_scale": plan.flux_scale,
                       "amplitude_table": amp}}


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


def record_autopower(ms: Path, out: Path) -> dict:
    """Keep the calibrator's autocorrelation power beside its amplitudes (the reference
    for autocorr_amplitude); an MS without autocorrelations only loses that."""
    from contimg.calib import CalibrationError
    from contimg.calib.autopower import write_reference

    try:
        with staged(out) as tmp:
            return {"table": str(out), **write_reference(ms, tmp)}
    except (CalibrationError, OSError, RuntimeError) as exc:
        return {"table": None, "note": f"no autocorrelation reference: {exc}"}


def autocorr_amplitude(order, ms: Path, amplitude_table: Path) -> dict:
    """The gain amplitude drift since the flux-scale transit (contimg.calib.autopower),
    on top of ``amplitude_table`` (the last transit table: the one carrying the flux
    scale).  Skipped with a note when switched off or when that set has no reference."""
    from contimg.calib import CalibrationError
    from contimg.calib.autopower import correction

    if order.autoamp is None:
        return {"table": None, "note": "calibrate.autocorr_amplitude is off"}
    ref = names.autopower_beside(amplitude_table)
    if not (ref / "table.dat").is_file():
        return {"table": None, "note": f"no autocorrelation reference beside {amplitude_table.name}"}
    out = Path(order.autoamp["out"])
    try:
        with staged(out) as tmp:
            fig = correction(ms, ref, tmp, max_change=order.autoamp["max_change"])
    except (CalibrationError, OSError, RuntimeError) as exc:
        return {"table": None, "warning": f"autocorrelation amplitude correction skipped: {exc}"}
    return {**fig, "table": str(out)}


def phase_calibrate(order, ms_path: Path, applied: list[Path]) -> dict:
    """Phase-only calibration of this observation against sky_model.catalogue, on top of the
    transit tables.  A missing or unreadable catalogue, or a failed solve, is not fatal: the
    observation is calibrated without it and the returned ``warning`` shows in status."""
    from contimg.astro.refcat import RefCatError, read_refcat
    from contimg.calib import CalibrationError
    from contimg.calib.phasecal import catalogue_sources, solve_phase

    if order.phase is None:
        return {"catalogue": None, "table": None,
                "note": "no sky_model.catalogue configured: no per-observation phase calibration"}
    p = order.phase
    out = Path(p["out"])
    try:
        sources = catalogue_sources(ms_path, read_refcat(p["catalogue"]))
        with staged(out) as tmp:  # a table already there is replaced whole
            fig = solve_phase(ms_path, tmp, sources, applied, refants=p["refants"],
                              solint_s=p["solint_s"], uv_min_lambda=p["uv_min_lambda"])
    except (RefCatError, CalibrationError, OSError) as exc:
        return {"catalogue": p["catalogue"], "table": None,
                "warning": f"sky-model phase calibration skipped: {exc}"}
    return {"catalogue": p["catalogue"], "table": str(out), **fig, "source_names": [s.name for s in sources]}


def record(ctx, job: Job, order, result: dict) -> Outcome:
    obs_id, solved = job.subject, result.get("solved")
    applied = "figures" in result

    def write(conn) -> None:
        if order.choice_is_new:
            calibration.record_choice_in(conn, obs_id, order.choice)
        if result["flags_new"]:
            calibration.record_flags_in(conn, obs_id, result["flags"])
        ids = {}
        if solved is not None:
            plan = order.solve
            tables = {k: v for k, v in solved["tables"].items() if k != "amplitude"}
            ids = calibration.register_set_in(
                conn, set_name=plan.set_name, tables=tables, windows=plan.windows,
                transit_mjd=order.choice["transit_mjd"], source_observation=obs_id,
                calibrator=order.choice["calibrator"], refant=solved["refant"],
                params=solved["params"], quality=solved["quality"])
        if applied:
            info = order.apply_info
            bp_id, g_id = (i if i is not None else ids[k]
                           for i, k in zip(info["ids"], ("bandpass", "gain")))
            tables = {k: {**t, "path": _resolve(t["path"], solved)} for k, t in info["tables"].items()}
            flags = result["flags"] or {}
            prov = {"tables": tables, "apply_order": result["apply_order"],
                    "flags": {k: flags.get(k) for k in ("engine", "strategy", "flagged_before",
                                                         "flagged_after", "bad_antennas")},
                    "sky_model": result["sky"], "autocorr": result.get("autocorr")}
            calibration.record_application_in(conn, obs_id, bp_id, g_id, result["figures"], prov)

    if "error" in result:   # registered what was solved and flagged; the job fails
        cfg = ctx.config
        state = jobs.fail(ctx.db, job, result["error"], base_s=cfg.jobs_backoff_base_s,
                          max_s=cfg.jobs_backoff_max_s, retryable=result["retryable"],
                          max_attempts=cfg.jobs_max_attempts, record=lambda conn, _state: write(conn))
        return Outcome(obs_id, state, result["error"])
    if not applied:
        jobs.defer(ctx.db, job, order.waiting, order.recheck_s, record=write)
        return Outcome(obs_id, Status.DEFERRED, f"solved {solved and order.solve.set_name}; "
                       f"{order.waiting}" if solved else order.waiting)
    set_name = order.apply_info["set"]
    jobs.complete(ctx.db, job, next_jobs=[NextJob("image", obs_id, order.mid_mjd)],
                  message=f"applied {set_name}", record=write)
    what = f"solved {order.solve.set_name} and applied" if solved else "applied"
    return Outcome(obs_id, Status.DONE, f"{what} {set_name}",
                   data={"set": set_name, "figures": result["figures"], "flags": result["flags"]})


def _resolve(path: str, solved: dict | None) -> str:
    return solved["tables"][path[len(OWN):]] if path.startswith(OWN) else path

