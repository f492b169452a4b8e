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

import sys
from dataclasses import dataclass
from pathlib import Path

from contimg import names
from contimg.state import Job, NextJob, ingest as ingest_state, jobs, measurement_sets
from contimg.steps.contract import Decision, Outcome, Status, StepError, WorkOrder

STEP = "convert"


@dataclass(frozen=True)
class ConvertOrder(WorkOrder):
    files: tuple[str, ...] = ()   # the registered subband files
    out: str = ""                 # the MS path (names.ms_path)
    nsubbands: int = 16
    min_files: int = 1            # fewer usable files than this: fail, MS not written


def prepare(ctx, job: Job) -> ConvertOrder | Decision:
    cfg, db, obs_id = ctx.config, ctx.db, job.subject
    registered = ingest_state.observation_files(db, obs_id)
    if not registered:
        raise StepError(f"observation {obs_id} has no registered subband files; "
                        "run 'contimg ingest' and see 'contimg status'", retryable=False)
    out = names.ms_path(cfg.staging, obs_id)
    known = measurement_sets.get_ms(db, obs_id)
    late = {f["subband"] for f in registered} - set(known["subbands"] if known else ())
    if known and Path(known["path"]).is_dir() and not late:  # else: redo with late ones
        return Decision(Status.SKIPPED, "MS already registered",
                        next_jobs=[NextJob("calibrate", obs_id, known["mid_mjd"])],
                        detail=f"{out} already converted and registered")
    paths = tuple(str(f["path"]) for f in registered)
    # the MS is about the input's size, and calibration adds as much again: ask for
    # both, so a converted MS can always be calibrated, imaged and in time pruned
    return ConvertOrder(STEP, obs_id, root=str(cfg.staging), outputs=(str(out),),
                        lock=str(out.parent / f".{out.name}.lock"),
                        need_bytes=2 * sum(_size(p) for p in paths),
                        need_what="its Measurement Set and its calibration", files=paths,
                        out=str(out), nsubbands=cfg.convert_nsubbands,
                        min_files=max(1, min(cfg.ingest_min_subbands, len(paths))))


def work(order: ConvertOrder, progress=None) -> dict:
    from contimg.msio import ConvertError, build_ms

    files, rejected = usable_inputs(order.files)
    if len(files) < order.min_files:
        why = "; ".join(f"{Path(p).name}: {e}" for p, e in rejected[:4])
        raise StepError(f"observation {order.subject}: only {len(files)} of {len(order.files)} "
                        f"subband files usable, {order.min_files} needed ({why}); restore or "
                        "replace them, then run 'contimg retry'")
    Path(order.out).parent.mkdir(parents=True, exist_ok=True)
    try:
        info = build_ms(files, Path(order.out), nsubbands=order.nsubbands, progress=progress,
                        overwrite=True, min_files=order.min_files)
    except ConvertError as exc:
        raise StepError(f"observation {order.subject}: {exc}") from exc
    return dict(path=str(info.path), start_mjd=info.start_mjd, end_mjd=info.end_mjd,
                mid_mjd=info.mid_mjd, dec_deg=info.pointing_dec_deg,
                phase_ra_deg=info.phase_ra_deg, phase_dec_deg=info.phase_dec_deg,
                subbands=list(info.subbands_present), nchan=info.nchan_total,
                size_bytes=info.size_bytes, flagged_samples=dict(info.flagged_samples or {}),
                total_samples=info.total_samples, quarantined=[*rejected, *info.rejected])


MS_FIELDS = ("path", "start_mjd", "end_mjd", "mid_mjd", "dec_deg", "phase_ra_deg", "phase_dec_deg",
             "subbands", "nchan", "size_bytes")


def record(ctx, job: Job, order: ConvertOrder, result: dict) -> Outcome:
    obs_id = job.subject
    rejected = [tuple(r) for r in result["quarantined"]]

    def write(conn) -> None:
        measurement_sets.record_ms_in(conn, obs_id, **{k: result[k] for k in MS_FIELDS},
                                      flagged=result["flagged_samples"],
                                      total_samples=result["total_samples"])
        ingest_state.quarantine_at_convert_in(conn, obs_id, rejected)

    jobs.complete(ctx.db, job, record=write,
                  next_jobs=[NextJob("calibrate", obs_id, result["mid_mjd"])],
                  message=f"wrote {Path(result['path']).name}")
    absent = sorted(set(range(order.nsubbands)) - set(result["subbands"]))
    notes = [f"sb {', '.join(f'{s:02d}' for s in absent)} flagged"] if absent else []
    if rejected:
        notes.append(f"{len(rejected)} file(s) quarantined: see 'contimg status'")
    if result["flagged_samples"]:
        notes.append(f"{sum(result['flagged_samples'].values())} NaN/Inf samples flagged")
    note = f" ({'; '.join(notes)})" if notes else ""
    return Outcome(obs_id, Status.DONE, f"{result['path']}{note}", data=result)


def convert_one(ctx, job: Job) -> Outcome:
    """prepare -> work -> record here (a hand-run `contimg convert`)."""
    from contimg.steps.runner import run_here

    return run_here(ctx, job, sys.modules[__name__])


def _size(path: str) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0


def usable_inputs(registered: tuple[str, ...]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Registered files still on disk, and (path, why) for the others (item 15).

    An operator may have moved a bad file away: the observation goes on from the rest,
    and the file is quarantined with the reason when the MS is recorded.  Files that
    changed since registration are checked again by ``build_ms`` (the same validation
    as ingest), which leaves out the ones that fail."""
    files, rejected = [], []
    for path in registered:
        p = Path(path)
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
