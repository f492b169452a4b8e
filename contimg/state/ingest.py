"""SQL for subband files and observation groups (requirements I1-I6)."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass

from contimg.state.db import Database
from contimg.state.jobs import add_event, enqueue_in


@dataclass(frozen=True)
class FileFacts:
    """What ingest learned about one complete, valid subband file."""

    path: str
    size: int
    mtime: float
    subband: int
    name_mjd: float | None
    start_mjd: float
    dec_deg: float
    nchan: int
    fingerprint: str  # hash of antennas + times: subbands of one observation agree


def known_file(db: Database, path: str) -> dict | None:
    row = db.conn.execute("SELECT * FROM subband_files WHERE path = ?", (path,)).fetchone()
    return dict(row) if row else None


def register_file(db: Database, facts: FileFacts, obs_id_for_new: str, tolerance_days: float) -> tuple[str, str, str | None]:
    """Register a valid file into the observation within tolerance (or a new one).

    Returns (observation_id, status, error).  Status is 'registered', 'late' (registered,
    but the observation was already converted without it: the error says so and the
    file stays out of the MS until the conversion is redone), 'unchanged' (another
    process registered this very file meanwhile), or 'duplicate' when the group
    already has that subband from another path.  Agreement between the
    subbands is judged later, by majority, in :func:`quarantine_odd_subbands`.
    One immediate transaction, so concurrent ingests cannot split a group.
    """
    now = time.time()
    with db.transaction() as conn:
        same = conn.execute(
            "SELECT observation_id, status, error FROM subband_files WHERE path = ? AND size = ?"
            " AND mtime = ?", (facts.path, facts.size, facts.mtime)).fetchone()
        if same is not None:  # another process registered it while we inspected it
            return same["observation_id"], "unchanged", same["error"]
        row = conn.execute(
            "SELECT id, state FROM observations WHERE abs(obs_mjd - ?) <= ? AND"
            " (dec_deg IS NULL OR abs(dec_deg - ?) < 0.1) ORDER BY abs(obs_mjd - ?) LIMIT 1",
            (facts.start_mjd, tolerance_days, facts.dec_deg, facts.start_mjd),
        ).fetchone()
        if row is None:
            obs_id = obs_id_for_new
            conn.execute(
                "INSERT OR IGNORE INTO observations (id, obs_mjd, dec_deg, first_seen_at, last_seen_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (obs_id, facts.start_mjd, facts.dec_deg, now, now),
            )
        else:
            obs_id = row["id"]
        status, error = "registered", None
        peers = conn.execute(
            "SELECT subband, fingerprint, nchan, path, start_mjd FROM subband_files"
            " WHERE observation_id = ? AND status = 'registered' AND path != ?",
            (obs_id, facts.path)).fetchall()
        same_sb = [p for p in peers if p["subband"] == facts.subband]
        if same_sb:
            status = "duplicate"
            error = (f"subband {facts.subband:02d} of observation {obs_id} is already registered"
                     f" from {same_sb[0]['path']}; this copy is not used")
        conn.execute(
            "INSERT INTO subband_files (path, subband, name_mjd, size, mtime, status, error,"
            " observation_id, start_mjd, dec_deg, nchan, fingerprint, registered_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (path) DO UPDATE SET size = excluded.size, mtime = excluded.mtime,"
            " status = excluded.status, error = excluded.error, subband = excluded.subband,"
            " observation_id = excluded.observation_id, start_mjd = excluded.start_mjd,"
            " dec_deg = excluded.dec_deg, nchan = excluded.nchan,"
            " fingerprint = excluded.fingerprint",
            (facts.path, facts.subband, facts.name_mjd, facts.size, facts.mtime, status, error,
             obs_id, facts.start_mjd, facts.dec_deg, facts.nchan, facts.fingerprint, now),
        )
        if status == "registered":
            conn.execute(
                "UPDATE observations SET nsubbands = (SELECT COUNT(*) FROM subband_files"
                " WHERE observation_id = ? AND status = 'registered'), last_seen_at = ?,"
                " obs_mjd = min(obs_mjd, ?),"
                " state = CASE WHEN state = 'incomplete' THEN 'collecting' ELSE state END"
                " WHERE id = ?",
                (obs_id, now, facts.start_mjd, obs_id),
            )
            add_event(conn, "registered", f"{facts.path} -> {obs_id} sb{facts.subband:02d}",
                      step="ingest", subject=obs_id, now=now)
            ms = conn.execute("SELECT subbands FROM measurement_sets WHERE observation_id = ?",
                              (obs_id,)).fetchone()
            if ms is not None and facts.subband not in json.loads(ms["subbands"]):
                status = "late"
                error = (f"sb{facts.subband:02d} arrived after observation {obs_id} was converted"
                         f" (its MS holds {len(json.loads(ms['subbands']))} subbands, not this"
                         f" one); 'contimg redo convert {obs_id}' includes it")
                add_event(conn, "late", f"{facts.path}: {error}", step="ingest", subject=obs_id,
                          now=now)
        else:
            add_event(conn, status, f"{facts.path}: {error}", step="ingest", subject=obs_id, now=now)
        return obs_id, status, error


def quarantine_odd_subbands(db: Database, obs_id: str) -> list[tuple[str, str]]:
    """Quarantine subbands that disagree with the majority of their group (I6).

    Judged by majority rather than first arrival, so one odd file that happens to
    arrive first cannot get the good ones quarantined.
    """
    out: list[tuple[str, str]] = []
    with db.transaction() as conn:
        rows = conn.execute(
            "SELECT id, path, fingerprint, nchan, start_mjd FROM subband_files"
            " WHERE observation_id = ? AND status = 'registered' ORDER BY subband",
            (obs_id,)).fetchall()
        if len(rows) < 2:
            return out
        votes: dict[tuple, int] = {}
        for r in rows:
            votes[(r["fingerprint"], r["nchan"])] = votes.get((r["fingerprint"], r["nchan"]), 0) + 1
        best = max(votes, key=lambda k: votes[k])
        starts = sorted(r["start_mjd"] for r in rows)
        median = starts[len(starts) // 2]
        for r in rows:
            if (r["fingerprint"], r["nchan"]) != best:
                why = "antennas, times or channel count differ from"
            elif abs(r["start_mjd"] - median) * 86400 > 1.0:
                why = "integration times differ from"
            else:
                continue
            error = (f"{why} the other subbands of observation {obs_id}; check the correlator "
                     "output, then fix or remove the file and rescan")
            conn.execute("UPDATE subband_files SET status = 'quarantined', error = ? WHERE id = ?",
                         (error, r["id"]))
            add_event(conn, "quarantined", f"{r['path']}: {error}", step="ingest", subject=obs_id)
            out.append((r["path"], error))
        if out:
            conn.execute(
                "UPDATE observations SET nsubbands = (SELECT COUNT(*) FROM subband_files"
                " WHERE observation_id = ? AND status = 'registered') WHERE id = ?", (obs_id, obs_id))
    return out


def quarantine_file(db: Database, path: str, size: int, mtime: float, error: str,
                    subband: int | None = None, name_mjd: float | None = None) -> bool:
    """Record a bad file (kept on disk, never deleted) with the reason; False when that
    very record exists already (a rescan adds no event)."""
    now = time.time()
    with db.transaction() as conn:
        same = conn.execute(
            "SELECT 1 FROM subband_files WHERE path = ? AND status = 'quarantined' AND size = ?"
            " AND mtime = ? AND error = ?", (path, size, mtime, error)).fetchone()
        if same is not None:
            return False
        conn.execute(
            "INSERT INTO subband_files (path, subband, name_mjd, size, mtime, status, error,"
            " registered_at) VALUES (?, ?, ?, ?, ?, 'quarantined', ?, ?)"
            " ON CONFLICT (path) DO UPDATE SET size = excluded.size, mtime = excluded.mtime,"
            " status = 'quarantined', error = excluded.error",
            (path, subband, name_mjd, size, mtime, error, now),
        )
        add_event(conn, "quarantined", f"{path}: {error}", step="ingest", now=now)
    return True


def forget_refused_link(db: Database, path: str) -> None:
    """A symlink refused earlier is now allowed (ingest.follow_symlinks): drop its record,
    so status stops listing it (the event log keeps the history)."""
    with db.transaction() as conn:
        cur = conn.execute("DELETE FROM subband_files WHERE path = ? AND status = 'quarantined'"
                           " AND error LIKE 'symlink to %'", (path,))
        if cur.rowcount:
            add_event(conn, "allowed", f"{path}: symlink now followed (ingest.follow_symlinks)",
                      step="ingest")


def quarantine_at_convert_in(conn: sqlite3.Connection, obs_id: str,
                             rejected: list[tuple[str, str]]) -> None:
    """Files convert left out (unusable, or gone from disk): quarantined with the reason,
    inside the transaction that records the MS made from the others (item 15)."""
    for path, error in rejected:
        conn.execute("UPDATE subband_files SET status = 'quarantined', error = ? WHERE path = ?"
                     " AND observation_id = ?", (f"at convert: {error}", path, obs_id))
        add_event(conn, "quarantined", f"{path}: at convert: {error}", step="convert",
                  subject=obs_id)
    if rejected:
        conn.execute(
            "UPDATE observations SET nsubbands = (SELECT COUNT(*) FROM subband_files"
            " WHERE observation_id = ? AND status = 'registered'), reason = trim(coalesce(reason"
            " || '; ', '') || ?) WHERE id = ?",
            (obs_id, f"{len(rejected)} subband file(s) quarantined at convert", obs_id))


# Quarantine reasons that may only mean "still being copied": such a subband may yet come.
MAY_STILL_ARRIVE = ("unreadable or truncated", "not readable")


def quarantined_subbands(db: Database, obs_id: str, obs_mjd: float,
                         tolerance_days: float) -> dict[int, str]:
    """Subbands of this observation present on disk but quarantined for good (a file that
    opened as complete HDF5 and failed a check): waiting longer will not bring them.
    Matched by observation, or by the file name's timestamp for files refused before
    they could be grouped."""
    rows = db.conn.execute(
        "SELECT subband, path, error FROM subband_files WHERE status = 'quarantined' AND"
        " subband IS NOT NULL AND (observation_id = ? OR (observation_id IS NULL AND"
        " abs(name_mjd - ?) <= ?)) ORDER BY subband",
        (obs_id, obs_mjd, tolerance_days)).fetchall()
    return {r["subband"]: r["path"] for r in rows
            if not (r["error"] or "").startswith(MAY_STILL_ARRIVE)}


def late_subbands(db: Database, obs_ids: tuple[str, ...] = ()) -> list[dict]:
    """Registered files whose observation's MS was made without them (item 16)."""
    sql = ("SELECT f.path, f.subband, f.observation_id, ms.subbands AS ms_subbands"
           " FROM subband_files f JOIN measurement_sets ms ON ms.observation_id ="
           " f.observation_id WHERE f.status = 'registered'")
    params: list = []
    if obs_ids:
        sql += f" AND f.observation_id IN ({','.join('?' * len(obs_ids))})"
        params.extend(obs_ids)
    out = []
    for r in db.conn.execute(sql + " ORDER BY f.observation_id, f.subband", params):
        if r["subband"] not in json.loads(r["ms_subbands"]):
            out.append({"path": r["path"], "subband": r["subband"],
                        "observation_id": r["observation_id"]})
    return out


def observations(db: Database, *, states: tuple[str, ...] = (), ids: tuple[str, ...] = ()) -> list[dict]:
    where, params = ["1 = 1"], []
    if states:
        where.append(f"state IN ({','.join('?' * len(states))})")
        params.extend(states)
    if ids:
        where.append(f"id IN ({','.join('?' * len(ids))})")
        params.extend(ids)
    rows = db.conn.execute(
        f"SELECT * FROM observations WHERE {' AND '.join(where)} ORDER BY obs_mjd", params)
    return [dict(r) for r in rows]


def observation_files(db: Database, obs_id: str) -> list[dict]:
    rows = db.conn.execute(
        "SELECT * FROM subband_files WHERE observation_id = ? AND status = 'registered'"
        " ORDER BY subband", (obs_id,))
    return [dict(r) for r in rows]


def quarantined_files(db: Database, *, since: float | None = None) -> list[dict]:
    sql = "SELECT path, status, error, observation_id, registered_at FROM subband_files" \
          " WHERE status IN ('quarantined', 'duplicate')"
    params: list = []
    if since is not None:
        sql += " AND registered_at >= ?"
        params.append(since)
    rows = [dict(r) for r in db.conn.execute(sql + " ORDER BY id", params)]
    for late in late_subbands(db):  # shown with the others: the MS lacks them
        rows.append({"path": late["path"], "status": "late", "observation_id":
                     late["observation_id"], "registered_at": None,
                     "error": f"sb{late['subband']:02d} arrived after observation "
                              f"{late['observation_id']} was converted; not in its MS "
                              f"('contimg redo convert {late['observation_id']}' includes it)"})
    return rows


def queue_observation(db: Database, obs_id: str, reason: str | None, *, max_attempts: int) -> bool:
    """Mark a collecting group queued and enqueue its convert job, atomically."""
    with db.transaction() as conn:
        row = conn.execute("SELECT obs_mjd, state FROM observations WHERE id = ?", (obs_id,)).fetchone()
        if row is None or row["state"] == "queued":
            return False
        conn.execute("UPDATE observations SET state = 'queued', reason = ? WHERE id = ?",
                     (reason, obs_id))
        enqueue_in(conn, "convert", obs_id, row["obs_mjd"], max_attempts=max_attempts)
        return True


def mark_incomplete(db: Database, obs_id: str, reason: str) -> None:
    with db.transaction() as conn:
        conn.execute("UPDATE observations SET state = 'incomplete', reason = ? WHERE id = ?"
                     " AND state != 'queued'", (reason, obs_id))
        add_event(conn, "incomplete", f"{obs_id}: {reason}", step="ingest", subject=obs_id)
