"""Mosaic: form groups of imaged observations (G1, G2) and combine them (G3-G5, P1).

Formation is a planning pass (like an ingest scan) that creates each group and
its mosaic job once.  The job checks every member file (G3), validates tile
consistency (G4), combines (``contimg.mosaicking``), and registers the product
in the same transaction that marks the mosaic done (P1).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from contimg import names
from contimg.paths import sha256_file
from contimg.state import Job, NextJob, images, jobs, mosaics
from contimg.steps.contract import Outcome, Status, StepError, WorkOrder
from contimg.steps.grouping import ObservationSpan, plan_groups

STEP = "mosaic"


@dataclass
class FormReport:
    formed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ungrouped: list[str] = field(default_factory=list)


def form_groups(cfg, db) -> FormReport:
    mode = cfg.mosaic_mode
    if mode not in ("tiles", "sliding"):
        raise StepError(f"mosaic.mode is {mode!r}: use tiles or sliding", retryable=False)
    imaged = images.list_images(db)
    tiles = [ObservationSpan(i["observation_id"], i["start_mjd"], i["end_mjd"], i["dec_deg"]) for i in imaged]
    in_flight = [o["obs_mjd"] for o in images.in_flight_observations(db)]
    used = mosaics.exclusive_members(db)
    plan, notes = plan_groups(tiles, n=cfg.mosaic_n, mode=mode, overlap=cfg.mosaic_overlap,
                              used=used, in_flight_mjd=in_flight, max_gap_s=cfg.mosaic_max_gap_s,
                              max_span_s=cfg.mosaic_max_span_s, warn_span_s=cfg.mosaic_warn_span_s)
    report = FormReport(notes=notes)
    for g in plan:
        if mosaics.form_group(db, mosaic_id=g.mosaic_id, mode=mode, members=list(g.members),
                              dec_deg=g.dec_deg, start_mjd=g.start_mjd, end_mjd=g.end_mjd,
                              overlap=cfg.mosaic_overlap if mode == "sliding" else 0,
                              warning=g.warning, max_attempts=cfg.jobs_max_attempts):
            report.formed.append(g.mosaic_id)
    grouped = {m for mo in mosaics.list_mosaics(db) for m in mo["members"]}
    report.ungrouped = [t.obs_id for t in tiles if t.obs_id not in grouped]
    return report


def _tiles_for(db, members: list[str]):
    from contimg.mosaicking import Tile as MosaicTile

    out, missing = [], []
    for obs_id in members:
        img = images.get_image(db, obs_id)
        if img is None:
            missing.append(f"{obs_id}: no registered image")
            continue
        f, fig = img["files"], img["figures"]
        out.append(MosaicTile(name=obs_id, image_fits=Path(f["image_fits"]), pb_fits=Path(f["pb_fits"]),
                              noise_jy=img["noise_jy"], beam_major_arcsec=img["beam_major_arcsec"],
                              beam_minor_arcsec=img["beam_minor_arcsec"], beam_pa_deg=img["beam_pa_deg"],
                              freq_hz=img["freq_hz"] or fig.get("freq_hz"),
                              cell_arcsec=img["cell_arcsec"] or fig.get("cell_arcsec"),
                              dec_deg=img["dec_deg"], start_mjd=img["start_mjd"], end_mjd=img["end_mjd"],
                              residual_fits=Path(f["residual_fits"]) if f.get("residual_fits") else None))
    return out, missing


def _off(v):
    """0 in the configuration means: not checked."""
    return v if v else None


def mosaic_options(cfg):
    """MosaicOptions from the configuration (mosaic.* and qa.*)."""
    from contimg.mosaicking import MosaicOptions

    lo, hi = cfg.qa_flux_ratio_min, cfg.qa_flux_ratio_max
    return MosaicOptions(max_noise_jy=_off(cfg.mosaic_max_noise_jy),
                         min_dynamic_range=_off(cfg.mosaic_min_dynamic_range),
                         workers=cfg.mosaic_workers, max_offset_arcsec=_off(cfg.qa_max_offset_arcsec),
                         flux_ratio_range=(lo, hi) if lo and hi else None,
                         min_source_recovery_fraction=_off(cfg.qa_min_recovery),
                         max_false_fraction=_off(cfg.qa_max_false_fraction),
                         max_noise_ratio=_off(cfg.qa_max_noise_ratio), sefd_jy=_off(cfg.qa_sefd_jy),
                         max_radiometer_ratio=_off(cfg.qa_max_radiometer_ratio),
                         common_beam=cfg.mosaic_common_beam, noise_weighting=cfg.mosaic_noise_weighting,
                         finder_fix_to_beam=cfg.mosaic_fix_to_beam)


@dataclass(frozen=True)
class MosaicOrder(WorkOrder):
    tiles: tuple = ()            # contimg.mosaicking.Tile records of the members
    options: object = None       # contimg.mosaicking.MosaicOptions
    out_dir: str = ""
    catalogue: str | None = None  # sky_model.catalogue; None: the calibrator catalogue
    mosaic: dict | None = None   # the group's row (members, times, warning)


def qa_catalogue(path: str | None):
    """The reference catalogue (sky_model.catalogue) if configured, else the calibrators'."""
    if path:
        from contimg.astro.refcat import RefCatError, read_refcat

        try:
            return read_refcat(path), f"reference catalogue {Path(path).name}"
        except RefCatError as exc:
            raise StepError(f"sky_model.catalogue: {exc}", retryable=False) from exc
    from contimg.astro.catalog import load_calibrators

    return load_calibrators(compact_only=True), "calibrator catalogue"


def prepare(ctx, job: Job) -> MosaicOrder:
    cfg, db, mid = ctx.config, ctx.db, job.subject
    mosaic = mosaics.get_mosaic(db, mid)
    if mosaic is None:
        raise StepError(f"no mosaic group {mid}", retryable=False)
    tiles, missing = _tiles_for(db, mosaic["members"])
    if missing:
        raise StepError(f"mosaic {mid}: {len(missing)} member file problem(s): " + "; ".join(missing))
    out_dir = names.mosaic_dir(cfg.staging, mid)
    return MosaicOrder(STEP, mid, root=str(cfg.staging), outputs=(str(out_dir),),
                       need_what="the mosaic",  # a few tiles' size: within the reserve
                       tiles=tuple(tiles), options=mosaic_options(cfg), out_dir=str(out_dir),
                       catalogue=str(cfg.values.get("sky_model.catalogue") or "") or None,
                       mosaic={k: mosaic[k] for k in ("members", "start_mjd", "end_mjd", "warning")})


def work(order: MosaicOrder, progress=None) -> dict:
    from contimg.mosaicking import check_tiles, combine, validate_tiles

    tiles, mid = list(order.tiles), order.subject
    problems = check_tiles(tiles)
    if problems:
        raise StepError(f"mosaic {mid}: {len(problems)} member file problem(s): " + "; ".join(problems))
    validation = validate_tiles(tiles, order.options)
    catalogue, cat_name = qa_catalogue(order.catalogue)
    result = combine(tiles, Path(order.out_dir), mid, order.options, catalogue=catalogue,
                     catalogue_name=cat_name)
    files = {"mosaic_fits": str(result.mosaic_fits), "noise_fits": str(result.noise_fits),
             "png": str(result.png), **{k: str(v) for k, v in result.catalog.items()}}
    qa = dict(result.qa)
    qa.setdefault("status", "failed")
    m = order.mosaic
    qa.update(members=m["members"], start_mjd=m["start_mjd"], end_mjd=m["end_mjd"],
              noise_jy=result.noise_jy, dynamic_range=result.dynamic_range,
              nsources=len(result.sources), warning=m["warning"], timings=result.timings)
    if "catalogue" in qa:  # the per-source rows are in the catalogue files; keep the figures
        qa["catalogue"] = {k: v for k, v in qa["catalogue"].items() if k != "matches"}
    return {"files": files, "checksums": {Path(p).name: sha256_file(Path(p)) for p in files.values()},
            "validation": validation, "qa": qa, "noise_jy": result.noise_jy, "ntiles": len(tiles)}


def record(ctx, job: Job, order: MosaicOrder, result: dict) -> Outcome:
    mid, qa, validation, files = job.subject, result["qa"], result["validation"], result["files"]
    jobs.complete(ctx.db, job, message=f"combined {result['ntiles']} tiles; QA {qa['status']}",
                  next_jobs=[NextJob("publish", mid, order.mosaic["start_mjd"])],
                  record=lambda conn: mosaics.finish_mosaic_in(
                      conn, mid, dir=order.out_dir, files=files, checksums=result["checksums"],
                      validation=validation, qa=qa))
    why = f": {'; '.join(qa['failed'])}" if qa.get("failed") else ""
    return Outcome(mid, Status.DONE, f"{files['mosaic_fits']} (QA {qa['status']}{why}, validation "
                   f"{validation['status']}, noise {result['noise_jy'] * 1e3:.2f} mJy/beam)",
                   data={"files": files})


def mosaic_one(ctx, job: Job) -> Outcome:
    """prepare -> work -> record here (a hand-run `contimg mosaic`)."""
    from contimg.steps.runner import run_here

    return run_here(ctx, job, sys.modules[__name__])
