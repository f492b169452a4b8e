"""SQL for Measurement Sets (requirements C4-C6)."""

from __future__ import annotations

import json
import sqlite3
import time

from contimg.state.db import Database
from contimg.state.jobs import add_event


def record_ms_in(conn: sqlite3.Connection, obs_id: str, *, path: str, start_mjd: float,
                 end_mjd: float, mid_mjd: float, dec_deg: float, phase_ra_deg: float,
                 phase_dec_deg: float, subbands: list[int], nchan: int, size_bytes: int,
                 flagged: dict[str, int] | None = None, total_samples: int = 0) -> None:
    """Insert or refresh the MS row (inside the transaction that completes the job).

    ``flagged``: samples convert flagged as NaN/Inf/absurd, per subband (item 13)."""
    nflag = int(sum((flagged or {}).values()))
    detail = json.dumps({"per_subband": flagged, "total_samples": total_samples}) if nflag else None
    conn.execute(
        "INSERT INTO measurement_sets (observation_id, path, start_mjd, end_mjd, mid_mjd, dec_deg,"
        " phase_ra_deg, phase_dec_deg, subbands, nchan, size_bytes, created_at, flagged_samples,"
        " flag_detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (observation_id) DO UPDATE SET path = excluded.path,"
        " start_mjd = excluded.start_mjd, end_mjd = excluded.end_mjd, mid_mjd = excluded.mid_mjd,"
        " dec_deg = excluded.dec_deg, phase_ra_deg = excluded.phase_ra_deg,"
        " phase_dec_deg = excluded.phase_dec_deg, subbands = excluded.subbands,"
        " nchan = excluded.nchan, size_bytes = excluded.size_bytes, pruned_at = NULL,"
        " flagged_samples = excluded.flagged_samples, flag_detail = excluded.flag_detail",
        (obs_id, path, start_mjd, end_mjd, mid_mjd, dec_deg, phase_ra_deg, phase_dec_deg,
         json.dumps(subbands), nchan, size_bytes, time.time(), nflag, detail),
    )
    if nflag:
        add_event(conn, "flagged", f"{path}: {nflag} of {total_samples} samples flagged as NaN,"
                  f" infinite or beyond range ({_per_sb(flagged)})", step="convert",
                  subject=obs_id)
    conn.execute("UPDATE observations SET start_mjd = ?, end_mjd = ? WHERE id = ?",
                 (start_mjd, end_mjd, obs_id))


def get_ms(db: Database, obs_id: str) -> dict | None:
    row = db.conn.execute("SELECT * FROM measurement_sets WHERE observation_id = ?",
                          (obs_id,)).fetchone()
    if row is None:
        return None
    d = dict(row)
    d["subbands"] = json.loads(d["subbands"])
    return d


def _per_sb(flagged: dict[str, int] | None) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted((flagged or {}).items()))


def flagged_ms(db: Database) -> list[dict]:
    """MSs with samples flagged as NaN/Inf/absurd at convert, in the shape of the status
    attention list (what, path, why)."""
    out = []
    for r in db.conn.execute("SELECT observation_id, path, flagged_samples, flag_detail FROM"
                             " measurement_sets WHERE flagged_samples > 0 ORDER BY mid_mjd"):
        d = json.loads(r["flag_detail"] or "{}")
        out.append({"status": "flagged", "path": r["path"], "observation_id": r["observation_id"],
                    "flagged_samples": r["flagged_samples"],
                    "error": f"{r['flagged_samples']} of {d.get('total_samples', '?')} samples "
                             f"were NaN, infinite or beyond range and are flagged "
                             f"({_per_sb(d.get('per_subband'))})"})
    return out


def list_ms(db: Database) -> list[dict]:
    rows = db.conn.execute("SELECT * FROM measurement_sets ORDER BY mid_mjd").fetchall()
    return [{**dict(r), "subbands": json.loads(r["subbands"])} for r in rows]


def prunable(db: Database, published_before: float) -> list[dict]:
    """MSs no longer needed: every mosaic holding the observation is published (at or
    before ``published_before``), and there is at least one.  Images, not MSs, feed
    mosaics, so nothing downstream reads these again."""
    rows = db.conn.execute(
        "SELECT ms.* FROM measurement_sets ms WHERE ms.pruned_at IS NULL"
        " AND EXISTS (SELECT 1 FROM mosaic_members mm WHERE mm.observation_id = ms.observation_id)"
        " AND NOT EXISTS (SELECT 1 FROM mosaic_members mm"
        "   LEFT JOIN products p ON p.mosaic_id = mm.mosaic_id"
        "   WHERE mm.observation_id = ms.observation_id"
        "   AND (p.state IS NOT 'published' OR p.published_at > ?))"
        " ORDER BY ms.mid_mjd",
        (published_before,)).fetchall()
    return [dict(r) for r in rows]


def mark_pruned(db: Database, obs_id: str, *, now: float | None = None) -> bool:
    """Record that the MS is being removed (before removing it, so the database never
    calls a deleted MS present); False if another process marked it first."""
    now = now or time.time()
    with db.transaction() as conn:
        cur = conn.execute("UPDATE measurement_sets SET pruned_at = ?"
                           " WHERE observation_id = ? AND pruned_at IS NULL", (now, obs_id))
        if cur.rowcount:
            add_event(conn, "pruned", f"MS of {obs_id} removed (its mosaics are published)",
                      subject=obs_id, now=now)
        return cur.rowcount == 1


def pruned(db: Database, *, since: float = 0.0) -> list[dict]:
    """MSs marked pruned at or after ``since`` (wall clock)."""
    return [dict(r) for r in db.conn.execute(
        "SELECT * FROM measurement_sets WHERE pruned_at >= ? ORDER BY mid_mjd", (since,))]


def disk_summary(db: Database) -> dict:
    row = db.conn.execute(
        "SELECT SUM(pruned_at IS NULL) AS kept, COALESCE(SUM(CASE WHEN pruned_at IS NULL"
        " THEN size_bytes END), 0) AS kept_bytes, SUM(pruned_at IS NOT NULL) AS pruned"
        " FROM measurement_sets").fetchone()
    return {"kept": row["kept"] or 0, "kept_bytes": row["kept_bytes"], "pruned": row["pruned"] or 0}
