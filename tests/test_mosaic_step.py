"""Mosaic as a pipeline step on synthetic tiles registered as images (G1-G5, P1):
several `contimg mosaic` processes at once, both modes, missing members listed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mosaicking_helpers import make_group

from contimg.state import Database, images, jobs, mosaics

OBS_DAYS = 24 * 12.8849 / 86400


def _register(home: Path, group, gap_after: dict[int, float] | None = None) -> list[str]:
    db = Database(home / "state.sqlite3")
    ids, t = [], 60841.1
    with db.transaction() as conn:
        for k, tile in enumerate(group.tiles):
            obs = f"20250615T{k:02d}0000"
            conn.execute("INSERT INTO observations (id, obs_mjd, state, first_seen_at, last_seen_at)"
                         " VALUES (?, ?, 'queued', 0, 0)", (obs, t))
            figures = dict(beam_major_arcsec=tile.beam_major_arcsec, beam_minor_arcsec=tile.beam_minor_arcsec,
                           beam_pa_deg=tile.beam_pa_deg, noise_jy=tile.noise_jy, peak_jy=1.0,
                           dynamic_range=100.0, freq_hz=tile.freq_hz, cell_arcsec=tile.cell_arcsec)
            images.record_image_in(conn, obs, dir=str(tile.image_fits.parent),
                                   files={"image_fits": str(tile.image_fits), "pb_fits": str(tile.pb_fits)},
                                   dec_deg=tile.dec_deg, start_mjd=t, end_mjd=t + OBS_DAYS,
                                   mid_mjd=t + OBS_DAYS / 2, figures=figures)
            ids.append(obs)
            t += OBS_DAYS + (gap_after or {}).get(k, 0.0) / 86400
    return ids


@pytest.fixture
def tiles(cli, tmp_path):
    cli.json("status")
    return make_group(cli.home / "staging" / "tiles", n_tiles=12, n_bright=8, n_faint=0)


def test_g2_four_mosaic_processes_create_each_mosaic_once(cli, tiles) -> None:
    ids = _register(cli.home, tiles)
    procs = [subprocess.Popen([sys.executable, "-m", "contimg", "--home", str(cli.home), "mosaic", "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              stdin=subprocess.DEVNULL) for _ in range(4)]
    results = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], results
    db = Database(cli.home / "state.sqlite3")
    ms = mosaics.list_mosaics(db)
    assert len(ms) == 1 and ms[0]["members"] == ids[:10] and ms[0]["state"] == "done"
    assert ms[0]["warning"] and "51.5 min" in ms[0]["warning"]
    done = [o for out, _ in results for o in json.loads(out or "[]") if o["status"] == "done"]
    assert len(done) == 1
    prod = mosaics.get_product(db, ms[0]["id"])
    assert prod["state"] == "staged" and prod["qa_status"] == "passed", ms[0]["qa"]
    assert all(ms[0]["id"] in Path(f).name for f in prod["files"].values())
    assert jobs.find(db, "publish", ms[0]["id"]).state == "pending"
    status = cli.json("status")
    assert status["ungrouped_images"] == ids[10:]


def test_g1_sliding_mode_records_overlap(cli, tiles) -> None:
    _register(cli.home, tiles)
    res = cli("mosaic", "--form-only", "--mode", "sliding", "--n", "4", "--overlap", "2", "--json")
    assert res.exit_code == 0, res.output
    formed = json.loads(res.stdout)["formed"]
    db = Database(cli.home / "state.sqlite3")
    ms = mosaics.list_mosaics(db)
    assert len(formed) == len(ms) == 5
    assert all(m["mode"] == "sliding" and m["overlap"] == 2 for m in ms)
    assert [m["members"][0][-6:-4] for m in ms] == ["00", "02", "04", "06", "08"]
    again = cli("mosaic", "--form-only", "--mode", "sliding", "--n", "4", "--overlap", "2", "--json")
    assert json.loads(again.stdout)["formed"] == []


def test_g1_gap_splits_and_g3_missing_members_all_listed(cli, tiles) -> None:
    _register(cli.home, tiles, gap_after={4: 7 * 60})
    res = cli("mosaic", "--form-only", "--n", "5", "--json")
    db = Database(cli.home / "state.sqlite3")
    ms = mosaics.list_mosaics(db)
    assert [m["members"][0][-6:-4] for m in ms] == ["00", "05"], "the 7-minute gap after obs04 splits"
    gone = [tiles.tiles[1].image_fits, tiles.tiles[3].pb_fits]
    for f in gone:
        f.unlink()
    out = cli("mosaic", ms[0]["id"])
    assert out.exit_code == 1
    for f in gone:
        assert str(f) in out.stdout
    assert mosaics.get_product(db, ms[0]["id"]) is None, "nothing registered"
