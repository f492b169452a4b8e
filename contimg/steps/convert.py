"""Convert: one observation's subband files -> one Measurement Set (C1-C6).

The heavy lifting is ``contimg.msio.build_ms`` (domain code, atomic write).  This
step adds what the pipeline needs around it: inputs re-checked on disk rather
than trusted from the database (C1), a file lock so two processes never write
the same MS (O4), and one transaction that completes the job, records the MS
and enqueues calibration (C6).
"""

from __future__ import annotations

from pathlib import Path

from filelock import FileLock, Timeout

from contimg import names
from contimg.paths import inside
from contimg.state import Job, NextJob, ingest as ingest_state, jobs, measurement_sets
from contimg.steps.diskspace import defer_unless_room
from contimg.steps.runner import Outcome, StepContext, StepError

STEP = "convert"


def convert_one(ctx: StepContext, job: Job) -> Outcome:
    from contimg.msio import ConvertError, build_ms

    cfg, db, obs_id = ctx.config, ctx.db, job.subject
    files = [Path(f["path"]) for f in ingest_state.observation_files(db, obs_id)]
    if not files:
        raise StepError(f"observation {obs_id} has no registered subband files; "
                        "run 'contimg ingest' and see 'contimg status'", retryable=False)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise StepError(f"observation {obs_id}: input files missing on disk: {', '.join(missing)}; "
                        "restore them and run 'contimg retry'")
    out = names.ms_path(cfg.staging, obs_id)
    if not inside(out, cfg.staging):
        raise StepError(f"{out} resolves outside the staging root {cfg.staging}", retryable=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(out.parent / f".{out.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise StepError(f"{out} is being written by another process; will retry") from None
    try:
        known = measurement_sets.get_ms(db, obs_id)
        if known and Path(known["path"]).is_dir():
            jobs.complete(db, job, next_jobs=[NextJob("calibrate", obs_id, known["mid_mjd"])],
                          message="MS already registered")
            return Outcome(obs_id, "skipped", f"{out} already converted and registered")
        # the MS is about the input's size, and calibration adds as much again: ask for
        # both, so a converted MS can always be calibrated, imaged and in time pruned
        waiting = defer_unless_room(ctx, job, 2 * sum(f.stat().st_size for f in files),
                                    "its Measurement Set and its calibration")
        if waiting is not None:
            return waiting
        try:
            info = build_ms(files, out, nsubbands=cfg.convert_nsubbands, progress=ctx.progress,
                            overwrite=True)
        except ConvertError as exc:
            raise StepError(f"observation {obs_id}: {exc}") from exc
        fields = dict(path=str(info.path), start_mjd=info.start_mjd, end_mjd=info.end_mjd,
                      mid_mjd=info.mid_mjd, dec_deg=info.pointing_dec_deg,
                      phase_ra_deg=info.phase_ra_deg, phase_dec_deg=info.phase_dec_deg,
                      subbands=list(info.subbands_present), nchan=info.nchan_total,
                      size_bytes=info.size_bytes)
        jobs.complete(db, job,
                      record=lambda conn: measurement_sets.record_ms_in(conn, obs_id, **fields),
                      next_jobs=[NextJob("calibrate", obs_id, info.mid_mjd)],
                      message=f"wrote {info.path.name}")
    finally:
        lock.release()
    absent = sorted(set(range(cfg.convert_nsubbands)) - set(info.subbands_present))
    note = f" (sb {', '.join(f'{s:02d}' for s in absent)} flagged)" if absent else ""
    return Outcome(obs_id, "done", f"{info.path}{note}", data=fields)
