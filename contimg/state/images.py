"""SQL for per-observation images (M1, M2)."""

from __future__ import annotations

import json
import sqlite3
import time

from contimg.state.db import Database


def record_image_in(conn: sqlite3.Connection, obs_id: str, *, dir: str, files: dict, dec_deg: float,
                    start_mjd: float, end_mjd: float, mid_mjd: float, figures: dict) -> None:
    conn.execute(
        "INSERT INTO images (observation_id, dir, files, beam_major_arcsec, beam_minor_arcsec,"
        " beam_pa_deg, noise_jy, peak_jy, dynamic_range, freq_hz, cell_arcsec, dec_deg,"
        " start_mjd, end_mjd, mid_mjd, figures, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (observation_id) DO UPDATE SET dir = excluded.dir, files = excluded.files,"
        " beam_major_arcsec = excluded.beam_major_arcsec, beam_minor_arcsec = excluded.beam_minor_arcsec,"
        " beam_pa_deg = excluded.beam_pa_deg, noise_jy = excluded.noise_jy, peak_jy = excluded.peak_jy,"
        " dynamic_range = excluded.dynamic_range, freq_hz = excluded.freq_hz,"
        " cell_arcsec = excluded.cell_arcsec, figures = excluded.figures, version = 1",
        (obs_id, dir, json.dumps(files), figures.get("beam_major_arcsec"),
         figures.get("beam_minor_arcsec"), figures.get("beam_pa_deg"), figures.get("noise_jy"),
         figures.get("peak_jy"), figures.get("dynamic_range"), figures.get("freq_hz"),
         figures.get("cell_arcsec"), dec_deg, start_mjd, end_mjd, mid_mjd,
         json.dumps(figures, default=str), time.time()),
    )
    # the pipeline's own image is version 1 of the observation's image (issue 16)
    conn.execute(
        "INSERT INTO image_versions (observation_id, version, dir, files, figures, options, note,"
        " created_at) VALUES (?, 1, ?, ?, ?, NULL, 'pipeline', ?) ON CONFLICT (observation_id,"
        " version) DO UPDATE SET dir = excluded.dir, files = excluded.files,"
        " figures = excluded.figures, created_at = excluded.created_at",
        (obs_id, dir, json.dumps(files), json.dumps(figures, default=str), time.time()))


def next_version(db: Database, obs_id: str) -> int:
    row = db.conn.execute("SELECT MAX(version) FROM image_versions WHERE observation_id = ?",
                          (obs_id,)).fetchone()
    return (row[0] or 1) + 1


class VersionTaken(RuntimeError):
    pass


def record_version_in(conn: sqlite3.Connection, obs_id: str, version: int, *, dir: str,
                      files: dict, figures: dict, options: dict, note: str,
                      current: bool) -> None:
    """Register a reprocessed image version; ``current`` switches the observation's image
    to it in the same transaction (what mosaics made from now on use)."""
    try:
        conn.execute(
            "INSERT INTO image_versions (observation_id, version, dir, files, figures, options,"
            " note, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (obs_id, version, dir, json.dumps(files), json.dumps(figures, default=str),
             json.dumps(options, default=str), note, time.time()))
    except sqlite3.IntegrityError:
        raise VersionTaken(f"version {version} of {obs_id}'s image was registered meanwhile "
                           "(another reprocess); run it again for the next version") from None
    if current:
        conn.execute(
            "UPDATE images SET dir = ?, files = ?, figures = ?, beam_major_arcsec = ?,"
            " beam_minor_arcsec = ?, beam_pa_deg = ?, noise_jy = ?, peak_jy = ?,"
            " dynamic_range = ?, freq_hz = ?, cell_arcsec = ?, version = ? WHERE observation_id = ?",
            (dir, json.dumps(files), json.dumps(figures, default=str),
             figures.get("beam_major_arcsec"), figures.get("beam_minor_arcsec"),
             figures.get("beam_pa_deg"), figures.get("noise_jy"), figures.get("peak_jy"),
             figures.get("dynamic_range"), figures.get("freq_hz"), figures.get("cell_arcsec"),
             version, obs_id))


def list_versions(db: Database, obs_ids: list[str] | None = None) -> list[dict]:
    """Every image version (of the given observations), with which one is current."""
    sql = ("SELECT v.*, (i.version = v.version) AS current FROM image_versions v"
           " LEFT JOIN images i ON i.observation_id = v.observation_id")
    params: list = []
    if obs_ids:
        sql += f" WHERE v.observation_id IN ({','.join('?' * len(obs_ids))})"
        params = list(obs_ids)
    out = []
    for r in db.conn.execute(sql + " ORDER BY v.observation_id, v.version", params):
        d = dict(r)
        d["files"] = json.loads(d["files"])
        d["figures"] = json.loads(d["figures"]) if d["figures"] else {}
        d["options"] = json.loads(d["options"]) if d["options"] else {}
        d["current"] = bool(d["current"])
        out.append(d)
    return out


def _row(r: sqlite3.Row) -> dict:
    d = dict(r)
    d["files"] = json.loads(d["files"])
    d["figures"] = json.loads(d["figures"]) if d["figures"] else {}
    return d


def get_image(db: Database, obs_id: str) -> dict | None:
    row = db.conn.execute("SELECT * FROM images WHERE observation_id = ?", (obs_id,)).fetchone()
    return _row(row) if row else None


def list_images(db: Database) -> list[dict]:
    return [_row(r) for r in db.conn.execute("SELECT * FROM images ORDER BY start_mjd")]


def in_flight_observations(db: Database) -> list[dict]:
    """Observations queued for processing that have no image yet and are not dead."""
    rows = db.conn.execute(
        "SELECT o.id, o.obs_mjd FROM observations o WHERE o.state = 'queued'"
        " AND NOT EXISTS (SELECT 1 FROM images i WHERE i.observation_id = o.id)"
        " AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.subject = o.id AND j.state = 'dead')"
        " ORDER BY o.obs_mjd").fetchall()
    return [dict(r) for r in rows]


def shallow_clean_images(db: Database) -> list[dict]:
    """Current images whose CLEAN stopped on image.niter or image.max_cycles (the record's
    deconvolution.cap_bound) or on divergence, not on its threshold: shallower than asked."""
    rows = db.conn.execute(
        "SELECT observation_id, json_extract(figures, '$.deconvolution.stopped_by') AS stopped_by,"
        " json_extract(figures, '$.deconvolution.iterations') AS iterations,"
        " json_extract(figures, '$.deconvolution.major_cycles') AS major_cycles"
        " FROM images WHERE json_extract(figures, '$.deconvolution.cap_bound') = 1"
        " OR json_extract(figures, '$.deconvolution.stopped_by') = 'diverging'"
        " ORDER BY start_mjd").fetchall()
    return [dict(r) for r in rows]
