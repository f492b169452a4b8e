"""Convert: one observation's subband files -> one Measurement Set (C1-C6).

The heavy lifting is ``contimg.msio.build_ms`` (domain code, atomic write).  This
step adds what the pipeline needs around it: inputs re-checked on disk rather
than trusted from the database (C1), a file lock so two processes never write
the same MS (O4), and one transaction that completes the job, records the MS
and enqueues calibration (C6).  One bad or vanished subband file never blocks its
observation: it is left out and quarantined in that same transaction, and the
MS is made from the others while at least ``ingest.min_subbands`` remain (item 15);
NaN/Inf samples are flagged and counted on the MS row (item 13).
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
    registered = ingest_state.observation_files(db, obs_id)
    if not registered:
        raise StepError(f"observation {obs_id} has no registered subband files; "
                        "run 'contimg ingest' and see 'contimg status'", retryable=False)
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
        late = {f["subband"] for f in registered} - set(known["subbands"] if known else ())
        if known and Path(known["path"]).is_dir() and not late:  # else: redo with late ones
            jobs.complete(db, job, next_jobs=[NextJob("calibrate", obs_id, known["mid_mjd"])],
                          message="MS already registered")
            return Outcome(obs_id, "skipped", f"{out} already converted and registered")
        files, rejected = usable_inputs(registered)
        need = max(1, min(cfg.ingest_min_subbands, len(registered)))
        if len(files) < need:
            why = "; ".join(f"{Path(p).name}: {e}" for p, e in rejected[:4])
            raise StepError(f"observation {obs_id}: only {len(files)} of {len(registered)} subband "
                            f"files usable, {need} needed ({why}); restore or replace them, "
                            "then run 'contimg retry'")
        # the MS is about the input's size, and calibration adds as much again: ask for
        # both, so a converted MS can always be calibrated, imaged and in time pruned
        waiting = defer_unless_room(ctx, job, 2 * sum(f.stat().st_size for f in files),
                                    "its Measurement Set and its calibration")
        if waiting is not None:
            return waiting
        try:
            info = build_ms(files, out, nsubbands=cfg.convert_nsubbands, progress=ctx.progress,
                            overwrite=True, min_files=need)
        except ConvertError as exc:
            raise StepError(f"observation {obs_id}: {exc}") from exc
        rejected += info.rejected
        fields = dict(path=str(info.path), start_mjd=info.start_mjd, end_mjd=info.end_mjd,
                      mid_mjd=info.mid_mjd, dec_deg=info.pointing_dec_deg,
                      phase_ra_deg=info.phase_ra_deg, phase_dec_deg=info.phase_dec_deg,
                      subbands=list(info.subbands_present), nchan=info.nchan_total,
                      size_bytes=info.size_bytes)

        def record(conn) -> None:
            measurement_sets.record_ms_in(conn, obs_id, **fields, flagged=info.flagged_samples,
                                          total_samples=info.total_samples)
            ingest_state.quarantine_at_convert_in(conn, obs_id, rejected)

        jobs.complete(db, job, record=record,
                      next_jobs=[NextJob("calibrate", obs_id, info.mid_mjd)],
                      message=f"wrote {info.path.name}")
    finally:
        lock.release()
    absent = sorted(set(range(cfg.convert_nsubbands)) - set(info.subbands_present))
    notes = [f"sb {', '.join(f'{s:02d}' for s in absent)} flagged"] if absent else []
    if rejected:
        notes.append(f"{len(rejected)} file(s) quarantined: see 'contimg status'")
    if info.flagged_samples:
        notes.append(f"{sum(info.flagged_samples.values())} NaN/Inf samples flagged")
    note = f" ({'; '.join(notes)})" if notes else ""
    fields.update(flagged_samples=info.flagged_samples, quarantined=rejected)
    return Outcome(obs_id, "done", f"{info.path}{note}", data=fields)


def usable_inputs(registered: list[dict]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Registered files still on disk, and (path, why) for the others (item 15).

    An operator may have moved a bad file away: the observation goes on from the rest,
    and the file is quarantined with the reason when the MS is recorded.  Files that
    changed since registration are checked again by ``build_ms`` (the same validation
    as ingest), which leaves out the ones that fail."""
    files, rejected = [], []
    for row in registered:
        p = Path(row["path"])
        try:
            ok = p.is_file()
        except OSError as exc:
            rejected.append((str(p), f"cannot be looked at ({exc.strerror})"))
            continue
        if ok:
            files.append(p)
        else:
            rejected.append((str(p), "gone from disk before conversion (moved or deleted)"))
    return files, rejected
