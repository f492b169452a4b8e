"""SQL for calibrator choices, the solution registry and applications (K1, K3, K4)."""

from __future__ import annotations

import json
import sqlite3
import time

from contimg.state.db import Database
from contimg.state.jobs import add_event


def get_choice(db: Database, obs_id: str) -> dict | None:
    row = db.conn.execute("SELECT * FROM calibrator_choices WHERE observation_id = ?",
                          (obs_id,)).fetchone()
    return dict(row) if row else None


def record_choice(db: Database, obs_id: str, choice: dict | None) -> dict:
    """Record the K1 decision once (a concurrent identical decision is a no-op)."""
    c = choice or {}
    with db.transaction() as conn:
        conn.execute(
            "INSERT OR IGNORE INTO calibrator_choices (observation_id, calibrator, ra_deg, dec_deg,"
            " flux_jy, spectral_index, transit_mjd, beam_weighted_jy, decided_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (obs_id, c.get("calibrator"), c.get("ra_deg"), c.get("dec_deg"), c.get("flux_jy"),
             c.get("spectral_index"), c.get("transit_mjd"), c.get("beam_weighted_jy"), time.time()),
        )
        if c:
            add_event(conn, "calibrator", f"{obs_id}: {c['calibrator']} transits at MJD "
                      f"{c['transit_mjd']:.5f} ({c['beam_weighted_jy']:.2f} Jy in the beam)",
                      step="calibrate", subject=obs_id)
    return get_choice(db, obs_id)


def tables_of_set(db: Database, set_name: str) -> dict[str, dict]:
    rows = db.conn.execute("SELECT * FROM caltables WHERE set_name = ?", (set_name,)).fetchall()
    return {r["kind"]: _row(r) for r in rows}


def _row(r: sqlite3.Row) -> dict:
    d = dict(r)
    d["params"] = json.loads(d["params"])
    d["quality"] = json.loads(d["quality"])
    return d


def register_set(db: Database, *, set_name: str, tables: dict[str, str], windows: dict[str, float],
                 transit_mjd: float, source_observation: str, calibrator: str, refant: str,
                 params: dict, quality: dict, wake_step: str = "calibrate") -> None:
    """Register a solution set and wake the jobs waiting for a solution it covers.

    ``windows`` maps kind -> half-width in days around the transit.  Waking is in
    the same transaction, so a deferred MS never misses a solution that landed.
    """
    now = time.time()
    with db.transaction() as conn:
        lo, hi = [], []
        for kind, path in tables.items():
            half = windows[kind]
            conn.execute(
                "INSERT INTO caltables (set_name, kind, path, valid_start_mjd, valid_end_mjd,"
                " transit_mjd, source_observation, calibrator, refant, params, quality, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (set_name, kind) DO NOTHING",
                (set_name, kind, str(path), transit_mjd - half, transit_mjd + half, transit_mjd,
                 source_observation, calibrator, refant, json.dumps(params),
                 json.dumps(quality.get(kind, quality)), now),
            )
            lo.append(transit_mjd - half)
            hi.append(transit_mjd + half)
        # the set covers where all of its tables are valid
        woke = conn.execute(
            "UPDATE jobs SET next_attempt_at = 0, updated_at = ? WHERE step = ? AND"
            " state = 'pending' AND obs_mjd BETWEEN ? AND ?",
            (now, wake_step, max(lo), min(hi)),
        ).rowcount
        add_event(conn, "solved", f"calibration set {set_name} from {calibrator} registered "
                  f"({', '.join(sorted(tables))}); woke {woke} waiting job(s)",
                  step="calibrate", subject=source_observation)


def covering(db: Database, mjd: float) -> dict[str, dict]:
    """Per kind, the newest active table whose validity window covers ``mjd``."""
    out = {}
    for kind in ("bandpass", "gain"):
        row = db.conn.execute(
            "SELECT * FROM caltables WHERE kind = ? AND active = 1 AND valid_start_mjd <= ?"
            " AND valid_end_mjd >= ? ORDER BY created_at DESC, id DESC LIMIT 1",
            (kind, mjd, mjd)).fetchone()
        if row is not None:
            out[kind] = _row(row)
    return out


def list_tables(db: Database) -> list[dict]:
    return [_row(r) for r in db.conn.execute("SELECT * FROM caltables ORDER BY transit_mjd, kind")]


def get_application(db: Database, obs_id: str) -> dict | None:
    row = db.conn.execute("SELECT * FROM applications WHERE observation_id = ?", (obs_id,)).fetchone()
    return dict(row) if row else None


def record_application_in(conn: sqlite3.Connection, obs_id: str, bandpass_id: int, gain_id: int,
                          figures: dict) -> None:
    conn.execute(
        "INSERT INTO applications (observation_id, bandpass_id, gain_id, figures, applied_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (observation_id) DO UPDATE SET"
        " bandpass_id = excluded.bandpass_id, gain_id = excluded.gain_id,"
        " figures = excluded.figures, applied_at = excluded.applied_at",
        (obs_id, bandpass_id, gain_id, json.dumps(figures), time.time()),
    )
