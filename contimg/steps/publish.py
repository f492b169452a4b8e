"""Publish: staged products -> the products root, safely (P2-P6).

Only QA-passed and validated products are published automatically (P2); others
are held in staging and shown by `status` (publish them by name with --force).
The product is claimed with a conditional update (P3); both paths must resolve
inside their roots (P4); failures go through the job queue's backoff and dead
state (P5); an existing destination is never overwritten (P6).  A crash between
the move and the database update is reconciled on the next run by comparing the
destination's checksums with the registry.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from contimg import names
from contimg.paths import PathRefused, move_dir, require_inside, verify_dir
from contimg.state import Job, jobs, mosaics
from contimg.steps.runner import Outcome, StepContext, StepError

STEP = "publish"


def publish_one(ctx: StepContext, job: Job, *, force: bool = False) -> Outcome:
    cfg, db, pid = ctx.config, ctx.db, job.subject
    prod = mosaics.get_product(db, pid)
    if prod is None:
        raise StepError(f"no product {pid} in the registry", retryable=False)
    if prod["state"] == "published":
        jobs.complete(db, job, message="already published")
        return Outcome(pid, "skipped", f"{pid} already published at {prod['published_dir']}")
    passed = prod["qa_status"] == "passed" and prod["validation_status"] == "valid"
    if not passed and not force and prod["state"] != "publishing":
        reason = (f"held in staging: {hold_reason(db, prod)}; "
                  f"inspect {prod['staged_dir']}, then 'contimg publish --force {pid}' to publish anyway")
        mosaics.set_product_state(db, pid, "held", reason)
        jobs.complete(db, job, message=reason)
        return Outcome(pid, "held", reason)
    claimed = mosaics.claim_product(db, pid, ctx.owner, cfg.jobs_lease_s)
    if claimed is None:
        raise StepError(f"{pid} is being published by another process")
    try:
        dest = _move(cfg, claimed)
    except Exception as exc:
        dead = job.attempts + 1 >= cfg.jobs_max_attempts
        mosaics.set_product_state(db, pid, "failed" if dead else "staged", f"publish failed: {exc}")
        if isinstance(exc, PathRefused):
            raise StepError(str(exc), retryable=False) from exc
        raise StepError(f"publishing {pid}: {exc}") from exc
    jobs.complete(db, job, message=f"published to {dest}",
                  record=lambda conn: mosaics.mark_published_in(conn, pid, str(dest)))
    return Outcome(pid, "done", str(dest), data={"published_dir": str(dest)})


def hold_reason(db, prod: dict) -> str:
    """Which QA criteria failed, with their values and limits, and the validation problems."""
    m = mosaics.get_mosaic(db, prod["mosaic_id"]) or {}
    parts = []
    if prod["qa_status"] != "passed":
        failed = (m.get("qa") or {}).get("failed") or []
        parts.append(f"QA {prod['qa_status']}" + (f" ({'; '.join(str(f) for f in failed)})" if failed else ""))
    if prod["validation_status"] != "valid":
        probs = (m.get("validation") or {}).get("problems") or []
        parts.append(f"validation {prod['validation_status']}" + (f" ({'; '.join(probs)})" if probs else ""))
    return ", ".join(parts) or "not passed"


def _move(cfg, prod: dict) -> Path:
    src = Path(prod["staged_dir"])
    dest = names.published_dir(cfg.products, prod["id"])
    require_inside(src, cfg.staging, "staged product")
    require_inside(dest, cfg.products, "publish destination")
    sums = prod["checksums"]
    if dest.exists():
        problems = verify_dir(dest, sums)
        if problems:
            raise FileExistsError(f"destination {dest} exists with other content ({problems[0]}); "
                                  "refusing to overwrite: move it away, then 'contimg retry'")
        if src.exists():      # a crash after a completed copy: the verified copy wins
            shutil.rmtree(src)
        return dest
    if not src.is_dir():
        raise FileNotFoundError(f"staged product {src} is missing and {dest} does not exist")
    problems = verify_dir(src, sums)
    if problems:
        raise OSError(f"staged product damaged: {'; '.join(problems)}")
    move_dir(src, dest, sums)
    return dest
