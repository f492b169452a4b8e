"""What `contimg status` reports: counts, failures, stuck items (requirement O1)."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from contimg.paths import free_bytes
from contimg.state import Database, calibration, images, ingest as ingest_state, jobs, measurement_sets, mosaics


def _job_dict(job: jobs.Job) -> dict:
    d = asdict(job)
    d["next_attempt_in_s"] = max(0.0, round(job.next_attempt_at - time.time(), 1))
    return d


def collect_status(db: Database, *, step: str | None = None, failed_only: bool = False,
                   since: float | None = None, limit: int = 20,
                   stale_after_s: float = 86400.0, staging: Path | None = None) -> dict:
    """Everything an operator needs to see, as plain data (rendered by the CLI)."""
    counts = jobs.counts(db)
    if step:
        counts = {k: v for k, v in counts.items() if k == step}
    failures = jobs.list_jobs(db, step=step, states=("failed", "dead"), since=since)
    waiting = [j for j in jobs.list_jobs(db, step=step, states=("pending",), since=since)
               if j.last_error]
    shallow = images.shallow_clean_images(db)
    report = {
        "counts": counts,
        "failures": [_job_dict(j) for j in failures[-limit:]],
        "expired_leases": [_job_dict(j) for j in jobs.expired_leases(db)
                           if step is None or j.step == step],
        "waiting": [_job_dict(j) for j in waiting[-limit:]],
        # every data problem: quarantined, duplicate and late files, flagged MSs (issue 17)
        "quarantined": (ingest_state.quarantined_files(db, since=since)
                        + measurement_sets.flagged_ms(db)
                        + calibration.attention(db)),  # heavy RFI, sky-model fallbacks (issue 13)
        "rfi_flags": calibration.flag_summary(db),
        "incomplete_observations": ingest_state.observations(db, states=("incomplete",)),
        "collecting_observations": ingest_state.observations(db, states=("collecting",)),
        "stale_products": mosaics.stale_staged(db, stale_after_s),
        "held_products": [p for p in mosaics.list_products(db, states=("held", "failed"))],
        "ungrouped_images": ungrouped_images(db),
        "shallow_clean": shallow[-limit:],  # CLEAN shallower than asked (issue 14): the latest
        "shallow_clean_count": len(shallow),
        "products": [{k: p[k] for k in ("id", "state", "published_dir", "qa_status")}
                     for p in mosaics.list_products(db)][-limit:],
    }
    _split_held(report["counts"], sum(p["state"] == "held" for p in report["held_products"]))
    disk = _disk(db)
    if staging is not None:
        disk["staging_free_bytes"] = free_bytes(staging)
    report["disk"] = disk
    if failed_only:
        report = {"counts": counts, "failures": report["failures"]}
    return report


def _split_held(counts: dict, held: int) -> None:
    """A held product's publish job is done, but nothing was published: count it apart."""
    if held and "publish" in counts:
        by = counts["publish"]
        moved = min(held, by.get("done", 0))
        by["done"] -= moved
        by["held"] = moved


def _disk(db: Database) -> dict:
    """MS counts from the registry, checked on disk: one deleted by hand is not 'kept'."""
    disk = measurement_sets.disk_summary(db)
    kept = [m for m in measurement_sets.list_ms(db) if not m.get("pruned_at")]
    missing = [m for m in kept if not Path(m["path"]).exists()]
    if missing:
        disk["kept"] -= len(missing)
        disk["kept_bytes"] -= sum(int(m.get("size_bytes") or 0) for m in missing)
        disk["missing"] = len(missing)
        disk["missing_observations"] = [m["observation_id"] for m in missing]
    return disk


def ungrouped_images(db: Database) -> list[str]:
    """Imaged observations not (yet) in any mosaic: an incomplete or broken-up group."""
    grouped = {m for mo in mosaics.list_mosaics(db) for m in mo["members"]}
    return [i["observation_id"] for i in images.list_images(db) if i["observation_id"] not in grouped]


def is_clean(report: dict) -> bool:
    """True when nothing needs an operator's attention."""
    return not any(report.get(k) for k in ("failures", "expired_leases", "quarantined",
                                           "incomplete_observations", "stale_products",
                                           "held_products"))
