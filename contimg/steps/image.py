"""Image: one calibrated MS -> primary-beam-corrected images (M1, M2).

The imaging itself is ``contimg.imaging`` (CASA tclean plus the drift-averaged
primary beam).  Here: image only an MS that exists and is calibrated (M2),
verify and register outputs already in place instead of redoing them (M1), and
commit the image row with the mosaic step's trigger in one transaction.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from contimg import names
from contimg.state import Job, calibration, images, jobs
from contimg.steps.diskspace import defer_unless_room
from contimg.steps.ms_lookup import require_ms
from contimg.steps.runner import Outcome, StepContext, StepError

STEP = "image"


def image_options(cfg):
    from contimg.imaging import ImageOptions

    return ImageOptions(robust=cfg.image_robust, niter=cfg.image_niter or None,
                        threshold_sigma=cfg.image_threshold_sigma or None, backend=cfg.image_backend,
                        mask_sigma=cfg.image_mask_sigma, nmajor=cfg.image_max_cycles,
                        imsize=cfg.image_imsize or None, cell_arcsec=cfg.image_cell_arcsec or None)


def _result_fields(result) -> tuple[dict, dict]:
    d = asdict(result)
    files = {k: str(v) for k, v in d.items() if isinstance(v, (str, Path)) and k.endswith(("_fits", "png"))}
    figures = {k: v for k, v in d.items() if k not in files}
    return files, figures


def image_one(ctx: StepContext, job: Job) -> Outcome:
    from contimg.imaging import image_ms, verify_outputs

    cfg, db, obs_id = ctx.config, ctx.db, job.subject
    ms = require_ms(db, obs_id)
    if calibration.get_application(db, obs_id) is None:
        raise StepError(f"{obs_id}: the MS is not calibrated yet; run 'contimg calibrate {obs_id}'")
    out_dir = names.image_dir(cfg.staging, obs_id)
    result = verify_outputs(out_dir, obs_id)
    reused = result is not None
    if result is None:
        waiting = defer_unless_room(ctx, job, 0.0, "imaging")  # images: within the reserve
        if waiting is not None:
            return waiting
        result = image_ms(Path(ms["path"]), out_dir, obs_id, image_options(cfg),
                          pointing_dec_deg=ms["dec_deg"], mid_mjd=ms["mid_mjd"],
                          start_mjd=ms["start_mjd"], end_mjd=ms["end_mjd"])
    files, figures = _result_fields(result)
    jobs.complete(db, job, message="outputs verified and registered" if reused else "imaged",
                  record=lambda conn: images.record_image_in(
                      conn, obs_id, dir=str(out_dir), files=files, dec_deg=ms["dec_deg"],
                      start_mjd=ms["start_mjd"], end_mjd=ms["end_mjd"], mid_mjd=ms["mid_mjd"],
                      figures=figures))
    note = "existing outputs verified, no imaging done" if reused else "imaged"
    return Outcome(obs_id, "done", f"{note}: noise {figures.get('noise_jy', float('nan')) * 1e3:.2f} mJy/beam, "
                   f"peak {figures.get('peak_jy', float('nan')):.3f} Jy", data={"files": files})
