"""Image: one calibrated MS -> primary-beam-corrected images (M1, M2).

The imaging itself is ``contimg.imaging`` (CASA tclean plus the drift-averaged
primary beam).  Here: image only an MS that exists and is calibrated (M2),
verify and register outputs already in place instead of redoing them (M1), and
commit the image row with the mosaic step's trigger in one transaction.
The imaging runs in ``work``, on files only.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from contimg import names
from contimg.state import Job, calibration, images, jobs
from contimg.steps.contract import Outcome, Status, StepError, WorkOrder
from contimg.steps.ms_lookup import require_ms

STEP = "image"


@dataclass(frozen=True)
class ImageOrder(WorkOrder):
    ms: str = ""
    out_dir: str = ""
    options: object = None        # contimg.imaging.ImageOptions (a plain dataclass)
    dec_deg: float = 0.0
    mid_mjd: float = 0.0
    start_mjd: float = 0.0
    end_mjd: float = 0.0


def image_options(cfg):
    from contimg.imaging import ImageOptions

    return ImageOptions(robust=cfg.image_robust, niter=cfg.image_niter or None,
                        threshold_sigma=cfg.image_threshold_sigma or None, backend=cfg.image_backend,
                        mask_sigma=cfg.image_mask_sigma, nmajor=cfg.image_max_cycles,
                        imsize=cfg.image_imsize or None, cell_arcsec=cfg.image_cell_arcsec or None,
                        time_intervals=cfg.image_time_intervals, drift=cfg.image_drift,
                        selfcal=cfg.image_selfcal, selfcal_solint_s=cfg.image_selfcal_solint_s,
                        selfcal_model_sigma=cfg.image_selfcal_model_sigma,
                        selfcal_min_phase_deg=cfg.image_selfcal_min_phase_deg)


def prepare(ctx, job: Job) -> ImageOrder:
    cfg, db, obs_id = ctx.config, ctx.db, job.subject
    ms = require_ms(db, obs_id)
    if calibration.get_application(db, obs_id) is None:
        raise StepError(f"{obs_id}: the MS is not calibrated yet; run 'contimg calibrate {obs_id}'")
    out_dir = names.image_dir(cfg.staging, obs_id)
    return ImageOrder(STEP, obs_id, root=str(cfg.staging), outputs=(str(out_dir),),
                      need_what="imaging", uses_casa=True,  # images: within the reserve
                      ms=str(ms["path"]), out_dir=str(out_dir), options=image_options(cfg),
                      dec_deg=ms["dec_deg"], mid_mjd=ms["mid_mjd"], start_mjd=ms["start_mjd"],
                      end_mjd=ms["end_mjd"])


def work(order: ImageOrder, progress=None) -> dict:
    """Image the MS, unless verified outputs are already in place (M1)."""
    from contimg.imaging import image_ms, verify_outputs

    out_dir = Path(order.out_dir)
    result = verify_outputs(out_dir, order.subject)
    reused = result is not None
    if result is None:
        result = image_ms(Path(order.ms), out_dir, order.subject, order.options,
                          pointing_dec_deg=order.dec_deg, mid_mjd=order.mid_mjd,
                          start_mjd=order.start_mjd, end_mjd=order.end_mjd)
    files, figures = _result_fields(result)
    return {"files": files, "figures": figures, "reused": reused}


def record(ctx, job: Job, order: ImageOrder, result: dict) -> Outcome:
    files, figures, obs_id = result["files"], result["figures"], job.subject
    reused = result["reused"]
    jobs.complete(ctx.db, job, message="outputs verified and registered" if reused else "imaged",
                  record=lambda conn: images.record_image_in(
                      conn, obs_id, dir=order.out_dir, files=files, dec_deg=order.dec_deg,
                      start_mjd=order.start_mjd, end_mjd=order.end_mjd, mid_mjd=order.mid_mjd,
                      figures=figures))
    note = "existing outputs verified, no imaging done" if reused else "imaged"
    return Outcome(obs_id, Status.DONE, f"{note}: noise {figures.get('noise_jy', float('nan')) * 1e3:.2f} "
                   f"mJy/beam, peak {figures.get('peak_jy', float('nan')):.3f} Jy", data={"files": files})


def image_one(ctx, job: Job) -> Outcome:
    """prepare -> work -> record here (a hand-run `contimg image`)."""
    from contimg.steps.runner import run_here

    return run_here(ctx, job, sys.modules[__name__])


def _result_fields(result) -> tuple[dict, dict]:
    d = asdict(result)
    files = {k: str(v) for k, v in d.items() if isinstance(v, (str, Path)) and k.endswith(("_fits", "png"))}
    figures = {k: v for k, v in d.items() if k not in files}
    return files, figures
