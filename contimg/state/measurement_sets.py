"""SQL for Measurement Sets (requirements C4-C6)."""

from __future__ import annotations

import json
import sqlite3
import time

from contimg.state.db import Database


def record_ms_in(conn: sqlite3.Connection, obs_id: str, *, path: str, start_mjd: float,
                 end_mjd: float, mid_mjd: float, dec_deg: float, phase_ra_deg: float,
                 phase_dec_deg: float, subbands: list[int], nchan: int, size_bytes: int) -> None:
    """Insert or refresh the MS row (inside the transaction that completes the job)."""
    conn.execute(
        "INSERT INTO measurement_sets (observation_id, path, start_mjd, end_mjd, mid_mjd, dec_deg,"
        " phase_ra_deg, phase_dec_deg, subbands, nchan, size_bytes, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (observation_id) DO UPDATE SET path = excluded.path,"
        " start_mjd = excluded.start_mjd, end_mjd = excluded.end_mjd, mid_mjd = excluded.mid_mjd,"
        " dec_deg = excluded.dec_deg, phase_ra_deg = excluded.phase_ra_deg,"
        " phase_dec_deg = excluded.phase_dec_deg, subbands = excluded.subbands,"
        " nchan = excluded.nchan, size_bytes = excluded.size_bytes",
        (obs_id, path, start_mjd, end_mjd, mid_mjd, dec_deg, phase_ra_deg, phase_dec_deg,
         json.dumps(subbands), nchan, size_bytes, time.time()),
    )
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


def list_ms(db: Database) -> list[dict]:
    rows = db.conn.execute("SELECT * FROM measurement_sets ORDER BY mid_mjd").fetchall()
    return [{**dict(r), "subbands": json.loads(r["subbands"])} for r in rows]
