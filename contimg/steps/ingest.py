"""Ingest: register complete subband files and form observations (I1-I6).

A scan registers what is complete, quarantines what is bad (recorded, never
deleted or moved) and then decides, per observation, whether to queue it for
conversion: all subbands present, or the wait for missing ones is over and enough
arrived.  Everything is idempotent: a rescan of the same tree registers nothing
twice and records nothing twice.

Hostile trees are expected (docs/data-format.md, "What ingest refuses"): one bad
entry never stops the scan.  Names that look like subband files but are not valid
(impossible dates, other scripts' digits, a trailing newline), directories or
FIFOs under such names, paths too long for the system or not valid UTF-8, and
symlinks leading out of the scanned tree are recorded as quarantined with the
reason; anything that is not named like a subband file is ignored.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from contimg import names
from contimg.config import Config
from contimg.paths import inside
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
    late: list[tuple[str, str, str]] = field(default_factory=list)  # (path, obs, message)
    observations: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class Candidate:
    path: Path  # as found (absolute, not resolved)
    root: Path  # the directory it was found under (for a named file: its directory)
    problem: str | None = None  # why it cannot even be looked at


def text(path) -> str:
    """A path as one line of text that SQLite and a terminal accept: undecodable bytes
    and control characters (a newline in a name) escaped.  Only a path equal to its
    text is ever registered, so registered paths can be opened again."""
    s = os.fsencode(path).decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)


def _walk_error(exc: OSError) -> str:
    if exc.errno == errno.ENAMETOOLONG:
        return "path longer than the system allows: move the file to a shorter path"
    return f"cannot read this directory ({exc.strerror}): check its permissions"


def candidate_files(paths: Iterable[Path]) -> list[Candidate]:
    """Entries under the given paths (directories walked without following symlinked
    directories, so a symlink loop ends), sorted; unreadable places come back with
    their problem instead of stopping the walk."""
    out: dict[Path, Candidate] = {}
    for p in paths:
        p = Path(os.path.abspath(p))
        try:
            is_dir = stat.S_ISDIR(os.stat(p).st_mode)
        except OSError as exc:
            out[p] = Candidate(p, p.parent, _walk_error(exc) if exc.errno == errno.ENAMETOOLONG
                               else None)
            continue
        if not is_dir:
            out[p] = Candidate(p, p.parent)
            continue
        errors: list[OSError] = []
        for d, dirs, files in os.walk(p, onerror=errors.append):
            for n in files + dirs:
                q = Path(d) / n
                out[q] = Candidate(q, p)
        for exc in errors:
            q = Path(exc.filename) if exc.filename else p
            out[q] = Candidate(q, p, _walk_error(exc))
    return [out[k] for k in sorted(out)]


def scan(cfg: Config, db: Database, paths: Iterable[Path] | None = None, *,
         now: float | None = None) -> IngestReport:
    """Register new complete files, then queue the observations that are ready."""
    report = IngestReport()
    for cand in candidate_files(paths if paths is not None else [cfg.incoming]):
        _consider(cfg, db, cand, report, now)
    finalise_groups(cfg, db, report, now=now)
    touched = sorted(set(report.registered) | set(report.queued))
    report.observations = state.observations(db, ids=tuple(touched)) if touched else []
    return report


def _refuse_link(cfg: Config, cand: Candidate) -> str | None:
    """Item 22: a symlink leading out of the scanned tree and the incoming directory."""
    real = cand.path.resolve()
    if real == cand.path or cfg.ingest_follow_symlinks:
        return None
    if inside(real, cand.root) or inside(real, cfg.incoming):
        return None
    where = ("the incoming directory" if cand.root.resolve() == cfg.incoming.resolve()
             else f"{text(cand.root)} and the incoming directory")
    return (f"symlink to {text(real)}, outside {where}: refused (set ingest.follow_symlinks = "
            "true to read files through such links)")


def _consider(cfg: Config, db: Database, cand: Candidate, report: IngestReport,
              now: float | None) -> None:
    path, name, shown = cand.path, cand.path.name, text(cand.path)
    if cand.problem:
        _quarantine(db, shown, None, cand.problem, None, None, report)
        return
    parsed = names.parse_subband_name(name)
    problem = names.subband_name_problem(name)
    if parsed is None and problem is None:
        if not os.path.isdir(path):
            report.ignored.append((shown, "not a finished subband file name"))
        return
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            _quarantine(db, shown, None, _walk_error(exc), None, None, report)
        else:  # a dangling symlink, or removed meanwhile: nothing to look at
            report.ignored.append((shown, f"cannot stat: {exc.strerror}"))
        return
    sb, mjd = (parsed[1], parsed[0]) if parsed else (None, None)
    if stat.S_ISREG(st.st_mode) and (now or time.time()) - st.st_mtime < cfg.ingest_settle_s:
        report.ignored.append((shown, "still being written (modified moments ago)"))
        return  # judged once complete, so a growing file is not recorded at every scan
    if problem is not None:
        _quarantine(db, shown, st, f"{problem}; rename it to YYYY-MM-DDTHH:MM:SS_sbNN.hdf5 and "
                    "rescan", sb, mjd, report)
        return
    if stat.S_ISDIR(st.st_mode) or not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        _quarantine(db, shown, st, f"named like a subband file but {kind}", sb, mjd, report)
        return
    if shown != str(path):
        _quarantine(db, shown, st, "path is not valid UTF-8 or holds control characters: "
                    "rename it", sb, mjd, report)
        return
    refused = _refuse_link(cfg, cand)
    if refused:
        _quarantine(db, shown, st, refused, sb, mjd, report)
        return
    if cfg.ingest_follow_symlinks and os.path.islink(path) and state.known_file(db, shown):
        state.forget_refused_link(db, shown)
    path = path.resolve()
    known = state.known_file(db, str(path))
    if known and known["size"] == st.st_size and known["mtime"] == st.st_mtime:
        report.unchanged += 1
        return
    if known and known["status"] == "registered":
        report.ignored.append((str(path), "changed after registration; left as registered"))
        return
    if not os.access(path, os.R_OK):
        _quarantine(db, str(path), st, "not readable: check permissions", sb, mjd, report)
        return
    try:
        header = inspect(path, sb)
    except BadFile as exc:
        _quarantine(db, str(path), st, f"{exc}; the file is kept where it is", sb, mjd, report)
        return
    offset_s = (header.start_mjd - mjd) * 86400
    if abs(offset_s) > cfg.ingest_group_tolerance_s:
        _quarantine(db, str(path), st, f"data start {offset_s:+.0f} s from the file name's "
                    f"timestamp (tolerance {cfg.ingest_group_tolerance_s:.0f} s): times from "
                    "another observation?", sb, mjd, report)
        return
    facts = state.FileFacts(path=str(path), size=st.st_size, mtime=st.st_mtime,
                            subband=header.subband, name_mjd=mjd, start_mjd=header.start_mjd,
                            dec_deg=header.dec_deg, nchan=header.nchan,
                            fingerprint=header.fingerprint)
    obs_id, status, error = state.register_file(
        db, facts, names.observation_id(header.start_mjd), cfg.ingest_group_tolerance_s / 86400)
    if status in ("registered", "late"):
        report.registered.append(obs_id)
        if status == "late":
            report.late.append((str(path), obs_id, error or ""))
    elif status == "unchanged":
        report.unchanged += 1
    else:
        report.quarantined.append((str(path), error or status))


def _quarantine(db, path: str, st, error, sb, mjd, report) -> None:
    size, mtime = (st.st_size, st.st_mtime) if st is not None else (0, 0.0)
    if state.quarantine_file(db, path, size, mtime, error, sb, mjd):
        report.quarantined.append((path, error))
    else:
        report.unchanged += 1


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
        listing = ",".join(f"sb{sb:02d}" for sb in missing)
        bad = state.quarantined_subbands(db, obs["id"], obs["obs_mjd"],
                                         cfg.ingest_group_tolerance_s / 86400)
        if all(sb in bad for sb in missing) and len(have) >= cfg.ingest_min_subbands:
            # item 15: every subband is here, some quarantined: waiting will not help
            reason = (f"{len(have)} of {full} subbands; {listing} quarantined (see 'contimg "
                      "status') and flagged")
            if state.queue_observation(db, obs["id"], reason, max_attempts=cfg.jobs_max_attempts):
                report.queued.append(obs["id"])
            continue
        if waited < cfg.ingest_incomplete_wait_s:
            continue
        if len(have) >= cfg.ingest_min_subbands:
            reason = f"{len(have)} of {full} subbands after waiting {waited:.0f} s; {listing} flagged"
            if state.queue_observation(db, obs["id"], reason, max_attempts=cfg.jobs_max_attempts):
                report.queued.append(obs["id"])
        else:
            reason = (f"only {len(have)} of {full} subbands (minimum {cfg.ingest_min_subbands}) "
                      f"after waiting {waited:.0f} s; missing {listing}")
            state.mark_incomplete(db, obs["id"], reason)
            report.incomplete.append((obs["id"], reason))
