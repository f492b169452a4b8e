"""Issue 14, depth by default: the image record says what stopped CLEAN, and `status`
names every current image whose CLEAN stopped on a cap (image.niter, image.max_cycles)
instead of its threshold."""

from __future__ import annotations

from contimg.imaging.engine_tclean import stop_record
from contimg.state import Database, images

OBS = ("20250615T032731", "20250615T033240", "20250615T033749")


def test_issue14_tclean_stopcodes_map_to_the_record() -> None:
    capped = stop_record({"iterdone": 1000, "nmajordone": 4, "stopcode": 1}, 1000, 10)
    assert capped["stopped_by"] == "niter" and capped["cap_bound"] and capped["iterations"] == 1000
    assert capped["major_cycles"] == 4 and capped["niter_cap"] == 1000
    deep = stop_record({"iterdone": 812, "nmajordone": 3, "stopcode": 8}, 1000, 10)
    assert deep["stopped_by"] == "threshold" and not deep["cap_bound"]
    assert stop_record({"iterdone": 50, "nmajordone": 10, "stopcode": 9}, 1000, 10)["cap_bound"]
    assert stop_record({"stopcode": 5}, 1000, 10)["stopped_by"] == "diverging"
    unknown = stop_record(None, 1000, 10)  # an older CASA that returns nothing
    assert unknown["stopped_by"] == "unknown" and not unknown["cap_bound"]


def _record(db: Database, obs: str, deconvolution: dict, mjd: float) -> None:
    with db.transaction() as conn:
        conn.execute("INSERT INTO observations (id, obs_mjd, first_seen_at, last_seen_at)"
                     " VALUES (?, ?, 0, 0)", (obs, mjd))
        images.record_image_in(conn, obs, dir="/x", files={}, dec_deg=55.0, start_mjd=mjd,
                               end_mjd=mjd + 0.0036, mid_mjd=mjd + 0.0018,
                               figures={"noise_jy": 1e-3, "deconvolution": deconvolution})


def test_issue14_status_names_images_whose_clean_stopped_on_a_cap(cli) -> None:
    db = Database(cli.home / "state.sqlite3")
    _record(db, OBS[0], stop_record({"iterdone": 1000, "nmajordone": 4, "stopcode": 1}, 1000, 10), 60841.1)
    _record(db, OBS[1], stop_record({"iterdone": 600, "nmajordone": 3, "stopcode": 8}, 1000, 10), 60841.2)
    capped = cli.json("status")["shallow_clean"]
    assert [c["observation_id"] for c in capped] == [OBS[0]]
    assert capped[0]["stopped_by"] == "niter" and capped[0]["iterations"] == 1000
    result = cli("status")
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("shallow-clean"))
    assert OBS[0] in line and "image.niter" in line and "1000 iterations" in line


def test_issue14_status_lists_only_the_latest_shallow_images_and_counts_all(home) -> None:
    """Months of capped images must not flood `status`: the latest `limit`, and the count."""
    from contimg.ops.status import collect_status

    db = Database(home / "state.sqlite3")
    capped = stop_record({"iterdone": 1000, "nmajordone": 4, "stopcode": 1}, 1000, 10)
    for k, obs in enumerate(OBS):
        _record(db, obs, capped, 60841.1 + 0.01 * k)
    report = collect_status(db, limit=2)
    assert report["shallow_clean_count"] == 3
    assert [i["observation_id"] for i in report["shallow_clean"]] == list(OBS[1:])
