"""Ingest: register complete subband files and form observations (I1-I6).

A scan registers what is complete, quarantines what is bad (recorded, never
deleted) and then decides, per observation, whether to queue it for conversion:
all subbands present, or the wait for missing ones is over and enough arrived.
Everything is idempotent: a rescan of the same tree registers nothing twice.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from contimg import names
from contimg.config import Config
from contimg.state import Database, ingest as state
from contimg.steps.subband_file import BadFile, inspect


@dataclass
class IngestReport:
    registered: list[str] = field(default_factory=list)
    quarantined: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)  # not (yet) a finished file
    unchanged: int = 0
    queued: list[str] = field(default_factory=list)
    incomplete: list[tuple[str, str]] = field(default_factory=list)
    observations: list[dict] = field(default_factory=list)


def candidate_files(paths: Iterable[Path]) -> list[Path]:
    """Files under the given paths (directories scanned recursively), sorted."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out.extend(q for q in p.rglob("*") if q.is_file())
        elif p.exists():
            out.append(p)
    return sorted(set(out))


def scan(cfg: Config, db: Database, paths: Iterable[Path] | None = None, *,
         now: float | None = None) -> IngestReport:
    """Register new complete files, then queue the observations that are ready."""
    report = IngestReport()
    for path in candidate_files(paths if paths is not None else [cfg.incoming]):
        _consider(cfg, db, path.resolve(), report, now)
    finalise_groups(cfg, db, report, now=now)
    touched = sorted({o for o in report.registered} | set(report.queued))
    report.observations = state.observations(db, ids=tuple(touched)) if touched else []
    return report


def _consider(cfg: Config, db: Database, path: Path, report: IngestReport, now: float | None) -> None:
    parsed = names.parse_subband_name(path.name)
    if parsed is None:
        report.ignored.append((str(path), "not a finished subband file name"))
        return
    try:
        st = path.stat()
    except OSError as exc:
        report.ignored.append((str(path), f"cannot stat: {exc}"))
        return
    if (now or time.time()) - st.st_mtime < cfg.ingest_settle_s:
        report.ignored.append((str(path), "still being written (modified moments ago)"))
        return
    known = state.known_file(db, str(path))
    if known and known["size"] == st.st_size and known["mtime"] == st.st_mtime:
        report.unchanged += 1
        return
    if known and known["status"] == "registered":
        report.ignored.append((str(path), "changed after registration; left as registered"))
        return
    name_mjd, name_sb = parsed
    if not os.access(path, os.R_OK):
        _quarantine(db, path, st, "not readable: check permissions", name_sb, name_mjd, report)
        return
    try:
        header = inspect(path, name_sb)
    except BadFile as exc:
        _quarantine(db, path, st, f"{exc}; the file is kept where it is", name_sb, name_mjd, report)
        return
    offset_s = (header.start_mjd - name_mjd) * 86400
    if abs(offset_s) > cfg.ingest_group_tolerance_s:
        _quarantine(db, path, st, f"data start {offset_s:+.0f} s from the file name's timestamp "
                    f"(tolerance {cfg.ingest_group_tolerance_s:.0f} s): times from another "
                    "observation?", name_sb, name_mjd, report)
        return
    facts = state.FileFacts(path=str(path), size=st.st_size, mtime=st.st_mtime,
                            subband=header.subband, name_mjd=name_mjd, start_mjd=header.start_mjd,
                            dec_deg=header.dec_deg, nchan=header.nchan,
                            fingerprint=header.fingerprint)
    obs_id, status, error = state.register_file(
        db, facts, names.observation_id(header.start_mjd), cfg.ingest_group_tolerance_s / 86400)
    if status == "registered":
        report.registered.append(obs_id)
    elif status == "unchanged":
        report.unchanged += 1
    else:
        report.quarantined.append((str(path), error or status))


def _quarantine(db, path, st, error, sb, mjd, report) -> None:
    state.quarantine_file(db, str(path), st.st_size, st.st_mtime, error, sb, mjd)
    report.quarantined.append((str(path), error))


def finalise_groups(cfg: Config, db: Database, report: IngestReport, *, now: float | None = None) -> None:
    """Queue complete groups; after the wait, queue partial ones or mark them incomplete (I4)."""
    now = now or time.time()
    full = cfg.convert_nsubbands
    for obs in state.observations(db, states=("collecting",)):
        report.quarantined.extend(state.quarantine_odd_subbands(db, obs["id"]))
        have = {f["subband"] for f in state.observation_files(db, obs["id"])}
        missing = [sb for sb in range(full) if sb not in have]
        waited = now - obs["last_seen_at"]
        if not missing:
            if state.queue_observation(db, obs["id"], None, max_attempts=cfg.jobs_max_attempts):
                report.queued.append(obs["id"])
            continue
        if waited < cfg.ingest_incomplete_wait_s:
            continue
        listing = ",".join(f"sb{sb:02d}" for sb in missing)
        if len(have) >= cfg.ingest_min_subbands:
            reason = f"{len(have)} of {full} subbands after waiting {waited:.0f} s; {listing} flagged"
            if state.queue_observation(db, obs["id"], reason, max_attempts=cfg.jobs_max_attempts):
                report.queued.append(obs["id"])
        else:
            reason = (f"only {len(have)} of {full} subbands (minimum {cfg.ingest_min_subbands}) "
                      f"after waiting {waited:.0f} s; missing {listing}")
            state.mark_incomplete(db, obs["id"], reason)
            report.incomplete.append((obs["id"], reason))
