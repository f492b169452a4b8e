"""SQL for mosaic groups and the product registry (G1, G2, G5, P1-P6)."""

from __future__ import annotations

import json
import sqlite3
import time

from contimg.state.db import Database
from contimg.state.jobs import add_event, enqueue_in


def form_group(db: Database, *, mosaic_id: str, mode: str, members: list[str], dec_deg: float,
               start_mjd: float, end_mjd: float, overlap: int, warning: str | None,
               max_attempts: int) -> bool:
    """Create the group and its mosaic job once (True if this call created it).

    The ID is a hash of the members, so a concurrent identical formation hits the
    primary key and does nothing; in tiles mode the partial unique index refuses
    an observation that already belongs to another mosaic.
    """
    exclusive = 1 if mode == "tiles" else 0
    try:
        with db.transaction() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO mosaics (id, mode, dec_deg, start_mjd, end_mjd, nmembers,"
                " overlap, warning, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (mosaic_id, mode, dec_deg, start_mjd, end_mjd, len(members), overlap, warning,
                 time.time()))
            if not cur.rowcount:
                return False
            conn.executemany(
                "INSERT INTO mosaic_members (mosaic_id, observation_id, position, exclusive)"
                " VALUES (?, ?, ?, ?)",
                [(mosaic_id, m, i, exclusive) for i, m in enumerate(members)])
            enqueue_in(conn, "mosaic", mosaic_id, start_mjd, max_attempts=max_attempts)
            add_event(conn, "formed", f"mosaic {mosaic_id}: {len(members)} observations "
                      f"{members[0]}..{members[-1]}" + (f" ({warning})" if warning else ""),
                      step="mosaic", subject=mosaic_id)
            return True
    except sqlite3.IntegrityError:
        return False


def exclusive_members(db: Database) -> set[str]:
    return {r[0] for r in db.conn.execute(
        "SELECT observation_id FROM mosaic_members WHERE exclusive = 1")}


def get_mosaic(db: Database, mosaic_id: str) -> dict | None:
    row = db.conn.execute("SELECT * FROM mosaics WHERE id = ?", (mosaic_id,)).fetchone()
    if row is None:
        return None
    d = dict(row)
    for k in ("validation", "qa"):
        d[k] = json.loads(d[k]) if d[k] else None
    d["members"] = [r[0] for r in db.conn.execute(
        "SELECT observation_id FROM mosaic_members WHERE mosaic_id = ? ORDER BY position",
        (mosaic_id,))]
    return d


def list_mosaics(db: Database) -> list[dict]:
    ids = [r[0] for r in db.conn.execute("SELECT id FROM mosaics ORDER BY start_mjd, id")]
    return [get_mosaic(db, i) for i in ids]


def finish_mosaic_in(conn: sqlite3.Connection, mosaic_id: str, *, dir: str, files: dict,
                     checksums: dict, validation: dict, qa: dict) -> None:
    """Mark the mosaic done AND register its product: one transaction (P1, G5)."""
    now = time.time()
    conn.execute(
        "UPDATE mosaics SET state = 'done', dir = ?, validation_status = ?, validation = ?,"
        " qa_status = ?, qa = ?, finished_at = ? WHERE id = ?",
        (dir, validation["status"], json.dumps(validation, default=str), qa["status"],
         json.dumps(qa, default=str), now, mosaic_id))
    conn.execute(
        "INSERT INTO products (id, mosaic_id, state, staged_dir, files, checksums, qa_status,"
        " validation_status, created_at) VALUES (?, ?, 'staged', ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (id) DO NOTHING",
        (mosaic_id, mosaic_id, dir, json.dumps(files), json.dumps(checksums), qa["status"],
         validation["status"], now))


def get_product(db: Database, product_id: str) -> dict | None:
    row = db.conn.execute("SELECT * FROM products WHERE id = ?", (product_id,)).fetchone()
    if row is None:
        return None
    d = dict(row)
    d["files"] = json.loads(d["files"])
    d["checksums"] = json.loads(d["checksums"])
    return d


def list_products(db: Database, *, states: tuple[str, ...] = ()) -> list[dict]:
    sql, params = "SELECT id FROM products", []
    if states:
        sql += f" WHERE state IN ({','.join('?' * len(states))})"
        params = list(states)
    return [get_product(db, r[0]) for r in db.conn.execute(sql + " ORDER BY created_at, id", params)]


def claim_product(db: Database, product_id: str, owner: str, lease_s: float) -> dict | None:
    """staged (or publishing with an expired lease) -> publishing, conditionally (P3)."""
    now = time.time()
    with db.transaction() as conn:
        row = conn.execute(
            "UPDATE products SET state = 'publishing', lease_owner = ?, lease_expires_at = ?"
            " WHERE id = ? AND (state IN ('staged', 'held', 'failed') OR"
            " (state = 'publishing' AND lease_expires_at < ?)) RETURNING id",
            (owner, now + lease_s, product_id, now)).fetchone()
    return get_product(db, product_id) if row else None


def set_product_state(db: Database, product_id: str, state: str, reason: str | None = None) -> None:
    with db.transaction() as conn:
        set_product_state_in(conn, product_id, state, reason)


def set_product_state_in(conn: sqlite3.Connection, product_id: str, state: str,
                         reason: str | None = None) -> None:
    conn.execute("UPDATE products SET state = ?, reason = ?, lease_owner = NULL,"
                 " lease_expires_at = NULL WHERE id = ?", (state, reason, product_id))
    add_event(conn, state, f"product {product_id}: {reason or state}", step="publish",
              subject=product_id)


def mark_published_in(conn: sqlite3.Connection, product_id: str, published_dir: str) -> None:
    conn.execute(
        "UPDATE products SET state = 'published', published_dir = ?, published_at = ?,"
        " lease_owner = NULL, lease_expires_at = NULL, reason = NULL WHERE id = ?",
        (published_dir, time.time(), product_id))


def stale_staged(db: Database, older_than_s: float) -> list[dict]:
    rows = db.conn.execute(
        "SELECT id, state, staged_dir, reason, created_at FROM products WHERE state IN"
        " ('staged', 'held', 'failed', 'publishing') AND created_at < ? ORDER BY created_at",
        (time.time() - older_than_s,)).fetchall()
    return [dict(r) for r in rows]
