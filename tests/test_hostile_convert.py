"""Hostile-input suite, convert side (issue 17 items 13, 15, 16; acceptance 3).

Four small simulated observations, each spoiled differently, go through real
`contimg ingest` and `contimg convert` subprocesses:
  obs 0: every visibility of every file NaN -> that job fails with one line, exit 1;
  obs 1: a few NaN rows in sb03, Inf and finite-but-huge (3e38) values in sb05 ->
         flagged, zero weight, counted; sb15 held back and delivered after conversion
         (item 16: reported late, in status, included by `contimg redo convert`);
  obs 2: all of sb07 NaN (flagged and counted), sb09's rows in another order than its
         peers' (quarantined at convert: subbands are combined row by row);
  obs 3: after ingest, sb04 overwritten by a truncated copy and sb11 moved away ->
         both quarantined at convert, the MS made from the other 14 (item 15).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from casacore.tables import table
from hostile_helpers import Runner, mutate, permute_rows, place, scale_vis, simulate_source, snapshot

NPOL, NCHAN = 2, 2


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    src_root = tmp_path_factory.mktemp("hostile_conv_src")
    src = simulate_source(src_root, observations=4)
    base = tmp_path_factory.mktemp("hostile_convert")
    r = Runner(base)
    inc = r.incoming
    placed = {o: {sb: place(p, inc) for sb, p in files.items() if (o, sb) != (1, 15)}
              for o, files in src.items()}
    for p in placed[0].values():
        mutate(p, lambda f: scale_vis(f, slice(None), np.nan))
    mutate(placed[1][3], lambda f: scale_vis(f, slice(0, 3), np.nan))
    mutate(placed[1][5], lambda f: (scale_vis(f, slice(10, 12), np.inf),
                                    scale_vis(f, slice(20, 21), 3e38 + 3e38j)))
    mutate(placed[2][7], lambda f: scale_vis(f, slice(None), np.nan))
    mutate(placed[2][9], permute_rows)
    before = snapshot(base, r.home) | snapshot(src_root, r.home)
    out = {"ingest": r("ingest", "--wait", "0")}
    bad = placed[3][4]
    bad.write_bytes(src[3][4].read_bytes()[:5000])
    gone = base / "moved-away" / placed[3][11].name
    gone.parent.mkdir()
    shutil.move(placed[3][11], gone)
    out["convert"] = r("convert", "--json")
    out["status"] = json.loads(r("status", "--json").stdout)
    with r.db() as conn:
        out["ms"] = {row["observation_id"]: dict(row) for row in
                     conn.execute("SELECT * FROM measurement_sets ORDER BY mid_mjd")}
        out["obs"] = [row["id"] for row in conn.execute("SELECT id FROM observations ORDER BY obs_mjd")]
    out.update(run=r, src=src, placed=placed, bad=bad, gone=gone, base=base, src_root=src_root,
               before=before)
    return out


def _outcomes(run) -> dict:
    return {o["subject"]: o for o in json.loads(run["convert"].stdout)}


def _ms_columns(path: str) -> dict:
    with table(path, ack=False) as t:
        return {c: t.getcol(c) for c in ("DATA", "FLAG", "WEIGHT_SPECTRUM")}


def test_item13_all_nan_observation_fails_with_one_line_and_exit_1(run) -> None:
    assert run["ingest"].returncode == 0, run["ingest"].stderr
    assert run["convert"].returncode == 1
    o = _outcomes(run)[run["obs"][0]]
    assert o["status"] == "failed" and "every visibility" in o["message"]
    assert "\n" not in o["message"]
    assert run["obs"][0] not in run["ms"]
    assert not list((run["run"].home / "staging" / "ms").glob(f"{run['obs'][0]}*"))


def test_item13_nan_inf_and_huge_visibilities_flagged_and_counted(run) -> None:
    obs = run["obs"][1]
    assert _outcomes(run)[obs]["status"] == "done"
    row = run["ms"][obs]
    detail = json.loads(row["flag_detail"])
    per_row = NCHAN * NPOL
    assert detail["per_subband"] == {"sb03": 3 * per_row, "sb05": 3 * per_row}
    assert row["flagged_samples"] == 6 * per_row
    cols = _ms_columns(row["path"])
    assert np.all(np.isfinite(cols["DATA"])), "nothing non-finite reaches the MS"
    assert np.abs(cols["DATA"]).max() < 1e15, "huge values never reach the MS"
    assert np.all(cols["WEIGHT_SPECTRUM"][~np.isfinite(cols["DATA"])] == 0)
    flagged_entries = [q for q in run["status"]["quarantined"] if q["status"] == "flagged"]
    mine = [q for q in flagged_entries if q["observation_id"] == obs]
    assert len(mine) == 1 and f"{6 * per_row} of" in mine[0]["error"]
    assert "sb03: 12" in mine[0]["error"] and "sb05: 12" in mine[0]["error"]


def test_item13_whole_subband_of_nan_flagged_and_reordered_file_left_out(run) -> None:
    """A file whose rows are valid but in another order than its peers' cannot be combined
    row by row: it is quarantined at convert, named, and the rest converts."""
    obs = run["obs"][2]
    row = run["ms"][obs]
    assert json.loads(row["subbands"]) == [s for s in range(16) if s != 9]
    q = {x["path"]: x for x in run["status"]["quarantined"]}
    assert "another order" in q[str(run["placed"][2][9])]["error"]
    detail = json.loads(row["flag_detail"])
    assert list(detail["per_subband"]) == ["sb07"]
    assert detail["per_subband"]["sb07"] == detail["total_samples"] // 15
    cols = _ms_columns(row["path"])
    assert np.all(np.isfinite(cols["DATA"]))
    # sb07 is the 9th-highest subband: ascending channels 16-1-7 = 8 -> 16..17
    assert cols["FLAG"][:, 16:18].all() and not cols["FLAG"][:, 14:16].any()


def test_item15_bad_and_vanished_subbands_quarantined_at_convert_observation_goes_on(run) -> None:
    obs = run["obs"][3]
    o = _outcomes(run)[obs]
    assert o["status"] == "done" and "2 file(s) quarantined" in o["message"]
    assert json.loads(run["ms"][obs]["subbands"]) == [s for s in range(16) if s not in (4, 11)]
    q = {x["path"]: x for x in run["status"]["quarantined"]}
    assert q[str(run["bad"])]["status"] == "quarantined"
    assert "at convert" in q[str(run["bad"])]["error"]
    assert "truncated" in q[str(run["bad"])]["error"]
    gone = str(run["placed"][3][11])
    assert "gone from disk" in q[gone]["error"]


def test_item16_late_subband_reported_in_status_and_included_by_redo(run) -> None:
    r, obs = run["run"], run["obs"][1]
    late = place(run["src"][1][15], r.incoming)
    res = r("ingest")
    assert res.returncode == 0
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("late\t")]
    assert len(lines) == 1 and late.name in lines[0] and "redo convert" in lines[0]
    assert f"{obs}\t16 subbands (1 late, not in its MS)\tqueued" in res.stdout, res.stdout
    status = json.loads(r("status", "--json").stdout)
    late_q = [q for q in status["quarantined"] if q["status"] == "late"]
    assert [q["path"] for q in late_q] == [str(late)]
    assert r("redo", "convert", obs).returncode == 0
    again = r("convert", obs)
    assert again.returncode == 0 and "\tdone\t" in again.stdout, again.stdout + again.stderr
    with r.db() as conn:
        sbs = json.loads(conn.execute("SELECT subbands FROM measurement_sets WHERE"
                                      " observation_id = ?", (obs,)).fetchone()[0])
    assert sbs == list(range(16))
    status = json.loads(r("status", "--json").stdout)
    assert not [q for q in status["quarantined"] if q["status"] == "late"]


def test_acceptance3_convert_side_database_intact_nothing_outside_state(run) -> None:
    r = run["run"]
    r.check_integrity()
    r.check_sandbox_untouched()
    after = snapshot(run["base"], r.home) | snapshot(run["src_root"], r.home)
    moved_by_the_test = str(run["gone"].parent)
    changed = {k for k in set(run["before"]) | set(after)
               if run["before"].get(k) != after.get(k) and not k.startswith(moved_by_the_test)}
    assert not changed, sorted(changed)
