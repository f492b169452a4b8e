"""Mosaic group formation: G1 and G2 (pure planning + the database's uniqueness)."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest

from contimg.state import Database, mosaics
from contimg.steps.grouping import ObservationSpan, mosaic_id, plan_groups

OBS_S = 24 * 12.8849


def night(n: int, *, start: float = 60841.1, gaps: dict[int, float] | None = None, dec: float = 30.5):
    tiles, t = [], start
    for k in range(n):
        tiles.append(ObservationSpan(f"obs{k:02d}", t, t + OBS_S / 86400, dec))
        t += (OBS_S + (gaps or {}).get(k, 0.0)) / 86400
    return tiles


def test_g1_twelve_observations_tiles_and_sliding_modes() -> None:
    tiles = night(12)
    groups, notes = plan_groups(tiles, n=10, mode="tiles")
    assert [g.members for g in groups] == [tuple(f"obs{k:02d}" for k in range(10))]
    assert groups[0].warning and "51.5 min" in groups[0].warning   # > 50 min warns
    assert notes == []
    groups, _ = plan_groups(tiles, n=4, mode="sliding", overlap=2)
    assert [g.members[0] for g in groups] == ["obs00", "obs02", "obs04", "obs06", "obs08"]
    assert all(len(g.members) == 4 for g in groups)
    groups, _ = plan_groups(tiles, n=4, mode="tiles")
    assert [g.members[0] for g in groups] == ["obs00", "obs04", "obs08"]


def test_g1_seven_minute_gap_splits_groups() -> None:
    tiles = night(8, gaps={3: 7 * 60})
    groups, _ = plan_groups(tiles, n=4, mode="tiles")
    assert [g.members for g in groups] == [("obs00", "obs01", "obs02", "obs03"),
                                          ("obs04", "obs05", "obs06", "obs07")]
    groups, _ = plan_groups(tiles, n=5, mode="tiles")
    assert groups == [], "no 5 consecutive observations without the gap"


def test_g1_span_over_sixty_minutes_is_refused() -> None:
    groups, notes = plan_groups(night(12), n=12, mode="tiles")
    assert groups == [] and "61.8 min > 60 min" in notes[0]


def test_g1_only_imaged_and_no_in_flight_neighbours() -> None:
    tiles = night(10)
    missing = tiles.pop(4)      # obs04 still being processed
    groups, _ = plan_groups(tiles, n=4, mode="tiles", in_flight_mjd=[missing.start_mjd])
    assert [g.members[0] for g in groups] == [], "the first window would straddle obs04"
    groups, _ = plan_groups(tiles, n=4, mode="tiles")
    assert all("obs04" not in g.members for g in groups)


def test_g1_different_declination_is_a_different_group() -> None:
    tiles = night(4) + night(4, start=60841.1 + 4 * OBS_S / 86400, dec=45.0)
    groups, _ = plan_groups(tiles, n=8, mode="tiles")
    assert groups == []


def test_g2_ids_are_deterministic_from_members() -> None:
    a = plan_groups(night(10), n=10, mode="tiles")[0][0]
    b = plan_groups(list(reversed(night(10))), n=10, mode="tiles")[0][0]
    assert a.mosaic_id == b.mosaic_id == mosaic_id(list(reversed(a.members)))
    assert a.mosaic_id.startswith("mos_obs00_")
    other = plan_groups(night(10, start=60842.1), n=10, mode="tiles")[0][0]
    assert other.mosaic_id == a.mosaic_id, "IDs depend on member IDs only"


def _form(db_path: str, out: "mp.Queue") -> None:
    db = Database(Path(db_path))
    g = plan_groups(night(10), n=10, mode="tiles")[0][0]
    created = mosaics.form_group(db, mosaic_id=g.mosaic_id, mode="tiles", members=list(g.members),
                                 dec_deg=g.dec_deg, start_mjd=g.start_mjd, end_mjd=g.end_mjd,
                                 overlap=0, warning=None, max_attempts=5)
    out.put(created)


def _observations(db: Database, tiles) -> None:
    with db.transaction() as conn:
        for t in tiles:
            conn.execute("INSERT INTO observations (id, obs_mjd, first_seen_at, last_seen_at)"
                         " VALUES (?, ?, 0, 0)", (t.obs_id, t.start_mjd))


def test_g2_same_group_from_four_processes_is_formed_once(tmp_path: Path) -> None:
    db = Database(tmp_path / "s.sqlite3")
    _observations(db, night(10))
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_form, args=(str(db.path), out)) for _ in range(4)]
    for p in procs:
        p.start()
    created = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    assert created.count(True) == 1
    assert db.query("SELECT COUNT(*) AS n FROM mosaics")[0]["n"] == 1
    assert db.query("SELECT COUNT(*) AS n FROM jobs WHERE step = 'mosaic'")[0]["n"] == 1
    assert db.query("SELECT COUNT(*) AS n FROM mosaic_members")[0]["n"] == 10


def test_g1_an_observation_belongs_to_one_tiles_mosaic_only(tmp_path: Path) -> None:
    db = Database(tmp_path / "s.sqlite3")
    tiles = night(6)
    _observations(db, tiles)
    first = [t.obs_id for t in tiles[:4]]
    second = [t.obs_id for t in tiles[2:6]]
    kw = dict(mode="tiles", dec_deg=30.5, start_mjd=0, end_mjd=1, overlap=0, warning=None, max_attempts=5)
    assert mosaics.form_group(db, mosaic_id=mosaic_id(first), members=first, **kw)
    assert not mosaics.form_group(db, mosaic_id=mosaic_id(second), members=second, **kw)
    assert db.query("SELECT COUNT(*) AS n FROM mosaics")[0]["n"] == 1
    kw["mode"] = "sliding"
    assert mosaics.form_group(db, mosaic_id=mosaic_id(second), members=second, **kw)
    with pytest.raises(ValueError):
        plan_groups(tiles, n=4, mode="bogus")
