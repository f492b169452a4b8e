"""Publish: staged products -> the products root, safely (P2-P6).

Only QA-passed and validated products are published automatically (P2); others
are held in staging and shown by `status` (publish them by name with --force).
The publish job's lease is the claim (P3: one conditional update, fenced, so a
second publisher of the same product gets nothing); both paths must resolve
inside their roots (P4); failures go through the job queue's backoff and dead
state (P5); an existing destination is never overwritten (P6).  A crash between
the move and the database update is reconciled on the next run by comparing the
destination's checksums with the registry.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from contimg import names
from contimg.paths import PathRefused, move_dir, require_inside, verify_dir
from contimg.state import Job, jobs, mosaics
from contimg.steps.contract import Decision, Outcome, Status, StepError, WorkOrder

STEP = "publish"


@dataclass(frozen=True)
class PublishOrder(WorkOrder):
    staged: str = ""
    dest: str = ""
    staging: str = ""
    checksums: dict | None = None


def prepare(ctx, job: Job) -> PublishOrder | Decision:
    cfg, db, pid = ctx.config, ctx.db, job.subject
    prod = mosaics.get_product(db, pid)
    if prod is None:
        raise StepError(f"no product {pid} in the registry", retryable=False)
    if prod["state"] == "published":
        return Decision(Status.SKIPPED, "already published",
                        detail=f"{pid} already published at {prod['published_dir']}")
    passed = prod["qa_status"] == "passed" and prod["validation_status"] == "valid"
    dest = names.published_dir(cfg.products, pid)
    # a publish interrupted after its move (a --force one too) is finished, not held again
    if not passed and not ctx.force and prod["state"] != "publishing" and not dest.exists():
        reason = (f"held in staging: {hold_reason(db, prod)}; "
                  f"inspect {prod['staged_dir']}, then 'contimg publish --force {pid}' to publish anyway")
        return Decision(Status.HELD, reason,
                        record=lambda conn: mosaics.set_product_state_in(conn, pid, "held", reason))
    return PublishOrder(STEP, pid, root=str(cfg.products), outputs=(str(dest),),
                        staged=str(prod["staged_dir"]), dest=str(dest), staging=str(cfg.staging),
                        checksums=prod["checksums"])


def work(order: PublishOrder, progress=None) -> dict:
    try:
        return {"published_dir": str(_move(order))}
    except PathRefused as exc:
        raise StepError(str(exc), retryable=False) from exc
    except StepError:
        raise
    except Exception as exc:
        raise StepError(f"publishing {order.subject}: {exc}") from exc


def record(ctx, job: Job, order: PublishOrder, result: dict) -> Outcome:
    dest, pid = result["published_dir"], job.subject
    jobs.complete(ctx.db, job, message=f"published to {dest}",
                  record=lambda conn: mosaics.mark_published_in(conn, pid, dest))
    return Outcome(pid, Status.DONE, dest, data={"published_dir": dest})


def record_failure(conn, job: Job, state: str, message: str) -> None:
    """A publish that failed leaves its product staged (retried) or, when dead, failed."""
    mosaics.set_product_state_in(conn, job.subject, "failed" if state == "dead" else "staged",
                                 f"publish failed: {message}")


def publish_one(ctx, job: Job, *, force: bool = False) -> Outcome:
    """prepare -> work -> record here (a hand-run `contimg publish`; ``force``: also a held one)."""
    from dataclasses import replace

    from contimg.steps.runner import run_here

    return run_here(replace(ctx, force=force or ctx.force), job, sys.modules[__name__])


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


def _move(order: PublishOrder) -> Path:
    src, dest, sums = Path(order.staged), Path(order.dest), order.checksums
    require_inside(src, Path(order.staging), "staged product")
    require_inside(dest, Path(order.root), "publish destination")
    if dest.exists():
        problems = verify_dir(dest, sums)
        if problems:
            raise StepError(f"destination {dest} exists with other content ({problems[0]}); "
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
