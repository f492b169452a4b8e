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
    with db.transaction() as conn:
        record_choice_in(conn, obs_id, choice)
    return get_choice(db, obs_id)


def record_choice_in(conn: sqlite3.Connection, obs_id: str, choice: dict | None) -> None:
    c = choice or {}
    conn.execute(
        "INSERT OR IGNORE INTO calibrator_choices (observation_id, calibrator, ra_deg, dec_deg,"
        " flux_jy, spectral_index, transit_mjd, beam_weighted_jy, decided_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (obs_id, c.get("calibrator"), c.get("ra_deg"), c.get("dec_deg"), c.get("flux_jy"),
         c.get("spectral_index"), c.get("transit_mjd"), c.get("beam_weighted_jy"), time.time()),
    )
    if c.get("calibrator"):
        add_event(conn, "calibrator", f"{obs_id}: {c['calibrator']} transits at MJD "
                  f"{c['transit_mjd']:.5f} ({c['beam_weighted_jy']:.2f} Jy in the beam)",
                  step="calibrate", subject=obs_id)


def tables_of_set(db: Database, set_name: str) -> dict[str, dict]:
    rows = db.conn.execute("SELECT * FROM caltables WHERE set_name = ?", (set_name,)).fetchall()
    return {r["kind"]: _row(r) for r in rows}


def _row(r: sqlite3.Row) -> dict:
    d = dict(r)
    d["params"] = json.loads(d["params"])
    d["quality"] = json.loads(d["quality"])
    return d


def register_set(db: Database, **kwargs) -> dict[str, int]:
    """Register a solution set (see ``register_set_in``) in a transaction of its own."""
    with db.transaction() as conn:
        return register_set_in(conn, **kwargs)


def register_set_in(conn: sqlite3.Connection, *, set_name: str, tables: dict[str, str],
                    windows: dict[str, float], transit_mjd: float, source_observation: str,
                    calibrator: str, refant: str, params: dict, quality: dict,
                    wake_step: str = "calibrate") -> dict[str, int]:
    """Register a solution set and wake the jobs waiting for a solution it covers; returns
    the table ids by kind.

    ``windows`` maps kind -> half-width in days around the transit.  Waking is in
    the same transaction, so a deferred MS never misses a solution that landed.
    """
    now = time.time()
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
    return {r["kind"]: r["id"] for r in conn.execute(
        "SELECT kind, id FROM caltables WHERE set_name = ?", (set_name,))}


def covering(db: Database, mjd: float) -> dict[str, dict]:
    """Per kind, the active table whose validity window covers ``mjd`` and whose transit is
    nearest in time to it (ties: the newest).  Each row gets ``selection`` saying so.

    Nearest transit, not newest created: a set solved late for an old transit must not
    replace the one that transits next to the observation (gains drift with time).
    """
    out = {}
    for kind in ("bandpass", "gain"):
        row = db.conn.execute(
            "SELECT * FROM caltables WHERE kind = ? AND active = 1 AND valid_start_mjd <= ?"
            " AND valid_end_mjd >= ? ORDER BY abs(transit_mjd - ?), created_at DESC, id DESC LIMIT 1",
            (kind, mjd, mjd, mjd)).fetchone()
        if row is not None:
            out[kind] = {**_row(row), "selection": "nearest transit"}
    return out


def nearest_flux_scale_gain(db: Database, mjd: float, half_days: float) -> dict | None:
    """The active gain table of a flux-scale (PB17) set whose transit is nearest ``mjd``, at most
    ``half_days`` away, or None."""
    for row in db.conn.execute(
            "SELECT * FROM caltables WHERE kind = 'gain' AND active = 1 AND abs(transit_mjd - ?) <= ?"
            " ORDER BY abs(transit_mjd - ?), created_at DESC, id DESC", (mjd, half_days, mjd)):
        r = _row(row)
        if r["params"].get("flux_scale", True) and r["params"].get("amplitude_table"):
            return r
    return None


def list_tables(db: Database) -> list[dict]:
    return [_row(r) for r in db.conn.execute("SELECT * FROM caltables ORDER BY transit_mjd, kind")]


def get_application(db: Database, obs_id: str) -> dict | None:
    row = db.conn.execute("SELECT * FROM applications WHERE observation_id = ?", (obs_id,)).fetchone()
    return dict(row) if row else None


def record_application_in(conn: sqlite3.Connection, obs_id: str, bandpass_id: int, gain_id: int,
                          figures: dict, provenance: dict | None = None) -> None:
    conn.execute(
        "INSERT INTO applications (observation_id, bandpass_id, gain_id, figures, applied_at, provenance)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (observation_id) DO UPDATE SET"
        " bandpass_id = excluded.bandpass_id, gain_id = excluded.gain_id,"
        " figures = excluded.figures, applied_at = excluded.applied_at,"
        " provenance = excluded.provenance",
        (obs_id, bandpass_id, gain_id, json.dumps(figures), time.time(),
         json.dumps(provenance) if provenance is not None else None),
    )


def record_flags_in(conn: sqlite3.Connection, obs_id: str, figures: dict) -> None:
    """Flag statistics of one observation (one row, replaced on a re-flag)."""
    conn.execute(
        "INSERT INTO rfi_flags (observation_id, engine, flagged_before, flagged_after, figures, flagged_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (observation_id) DO UPDATE SET engine = excluded.engine,"
        " flagged_before = excluded.flagged_before, flagged_after = excluded.flagged_after,"
        " figures = excluded.figures, flagged_at = excluded.flagged_at",
        (obs_id, figures.get("engine", "none"), float(figures.get("flagged_before", 0.0)),
         float(figures.get("flagged_after", 0.0)), json.dumps(figures), time.time()),
    )


def get_flags(db: Database, obs_id: str) -> dict | None:
    row = db.conn.execute("SELECT * FROM rfi_flags WHERE observation_id = ?", (obs_id,)).fetchone()
    if row is None:
        return None
    d = dict(row)
    d["figures"] = json.loads(d["figures"])
    return d


def flag_summary(db: Database) -> dict:
    """For status: observations flagged, median and worst flagged fraction, the worst one."""
    rows = db.conn.execute("SELECT observation_id, flagged_after FROM rfi_flags"
                           " ORDER BY flagged_after DESC").fetchall()
    if not rows:
        return {"observations": 0}
    fr = sorted(r["flagged_after"] for r in rows)
    return {"observations": len(rows), "median_flagged": fr[len(fr) // 2],
            "max_flagged": rows[0]["flagged_after"], "worst": rows[0]["observation_id"]}


def provenance(db: Database, obs_id: str) -> dict | None:
    """What calibrated an observation: tables (paths, sets, calibrators, selection rule), the
    flags and the sky model, for image and mosaic headers.  None if not calibrated."""
    app = get_application(db, obs_id)
    if app is None:
        return None
    prov = json.loads(app["provenance"]) if app.get("provenance") else {}
    tables = {}
    for kind, key in (("bandpass", "bandpass_id"), ("gain", "gain_id")):
        row = db.conn.execute("SELECT * FROM caltables WHERE id = ?", (app[key],)).fetchone()
        if row is not None:
            tables[kind] = {"path": row["path"], "set": row["set_name"], "calibrator": row["calibrator"],
                            "transit_mjd": row["transit_mjd"]}
    flags = get_flags(db, obs_id)
    return {"observation_id": obs_id, "tables": tables, "applied_at": app["applied_at"],
            "flags": flags["figures"] if flags else None, **prov}


RFI_ATTENTION_FRACTION = 0.2  # status lists observations with more data flagged than this


def attention(db: Database) -> list[dict]:
    """Calibration items for the status attention list (status, path, error): observations
    whose RFI flagging removed much of the data, and applications made without the sky-model
    phase calibration that was configured (fallback warnings)."""
    out = []
    for r in db.conn.execute("SELECT observation_id, engine, flagged_after FROM rfi_flags"
                             " WHERE flagged_after > ? ORDER BY observation_id", (RFI_ATTENTION_FRACTION,)):
        out.append({"status": "rfi", "path": r["observation_id"], "observation_id": r["observation_id"],
                    "error": f"{100 * r['flagged_after']:.0f} % of the data flagged ({r['engine']}); "
                             "check for persistent RFI or a bad antenna"})
    for r in db.conn.execute("SELECT observation_id, provenance FROM applications"
                             " WHERE provenance LIKE '%\"warning\"%' ORDER BY observation_id"):
        sky = (json.loads(r["provenance"]).get("sky_model") or {})
        if sky.get("warning"):
            out.append({"status": "sky-model", "path": r["observation_id"],
                        "observation_id": r["observation_id"], "error": sky["warning"]})
    return out
