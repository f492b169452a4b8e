"""Issue 13 registry rules on a real SQLite state: nearest transit (not newest solved), and the
flux scale only from Perley-Butler 2017 sets (a phase-only set borrows the nearest PB17 set's
amplitudes, or the observation waits)."""

from __future__ import annotations

from pathlib import Path

from contimg.config import load_config
from contimg.state import Database, calibration
from contimg.steps.calibrate import tables_to_apply
from contimg.steps.runner import StepContext, make_owner

T0 = 60000.0
HOUR = 1 / 24


def _register(db, name: str, calibrator: str, transit: float, flux_scale: bool, tmp: Path) -> None:
    calibration.register_set(
        db, set_name=name, tables={"bandpass": str(tmp / f"{name}.bcal"), "gain": str(tmp / f"{name}.gcal")},
        windows={"bandpass": 12 * HOUR, "gain": 1 * HOUR}, transit_mjd=transit,
        source_observation=f"obs_{name}", calibrator=calibrator, refant="29",
        params={"flux_scale": flux_scale, "amplitude_table": str(tmp / f"{name}.acal") if flux_scale else None},
        quality={"bandpass": {}, "gain": {}})


def _ctx(tmp_path: Path) -> StepContext:
    cfg = load_config(home=tmp_path, environ={})
    return StepContext(cfg, Database(tmp_path / "state.sqlite3"), make_owner())


def test_issue13_nearest_transit_wins_and_pb17_sets_the_amplitudes(tmp_path) -> None:
    ctx = _ctx(tmp_path)
    _register(ctx.db, "near", "J0739+0137", T0, False, tmp_path)          # solved first
    _register(ctx.db, "far", "3C286", T0 + 0.8 * HOUR, True, tmp_path)   # solved later (newest)
    chosen = calibration.covering(ctx.db, T0 + 0.2 * HOUR)
    assert chosen["gain"]["set_name"] == "near" and chosen["gain"]["selection"] == "nearest transit"
    assert calibration.covering(ctx.db, T0 + 0.6 * HOUR)["gain"]["set_name"] == "far"
    paths, info = tables_to_apply(ctx, T0 + 0.2 * HOUR)
    assert [p.name for p in paths] == ["near.bcal", "near.gcal", "far.acal"]
    assert info["tables"]["amplitude"]["selection"] == "nearest flux-scale transit"
    paths, info = tables_to_apply(ctx, T0 + 0.6 * HOUR)  # a PB17 gain needs no borrowed amplitudes
    assert [p.name for p in paths] == ["far.bcal", "far.gcal"] and "amplitude" not in info["tables"]


def test_issue13_phase_only_set_without_a_pb17_transit_waits(tmp_path) -> None:
    ctx = _ctx(tmp_path)
    _register(ctx.db, "near", "J0739+0137", T0, False, tmp_path)
    why = tables_to_apply(ctx, T0)
    assert isinstance(why, str) and "flux-scale calibrator" in why and "3C286" in why and "phase-only" in why
    _register(ctx.db, "pb", "3C48", T0 + 11 * HOUR, True, tmp_path)  # within amplitude_valid_h (12 h)
    paths, _ = tables_to_apply(ctx, T0)
    assert paths[-1].name == "pb.acal"
