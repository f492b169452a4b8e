"""RFI flagging (issue 13 item 1) on the realistic sky's RFI against its truth mask.

One simulated realistic observation (24 antennas, 16 x 8 channels, seed 12: two
broad-band bursts, one in the first integration, three persistent channels, a dead
antenna and a crosstalk baseline), flagged on copies with the packaged AOFlagger
strategy's time and frequency settings and with contimg's (flag.time_sigma_s,
flag.freq_dilation).  CASA and python-casacore work runs in child processes.
Seed 12 measured (clean data flagged): packaged 3.7 %, tuned 2.6 %; bursts and
channels found in full by both.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from calib_helpers import Worker

from contimg.calib import flagging
from contimg.calib.types import CalibrationError

SIM = {"nants": 24, "nchan": 8, "observations": 1, "seed": 12, "sky": "realistic", "flux_floor_jy": 0.01}


@pytest.fixture(scope="module")
def rfi_ms(tmp_path_factory) -> dict:
    w = Worker()
    try:
        return w("build", out=str(tmp_path_factory.mktemp("rfi")), opts=SIM, obs=[0])
    finally:
        w.close()


@pytest.fixture(scope="module")
def scored(rfi_ms, tmp_path_factory) -> dict:
    """flag_vs_truth with the packaged settings ("packaged") and contimg's ("tuned")."""
    state = tmp_path_factory.mktemp("rfi_state")
    w = Worker(cwd=str(state))
    try:
        return {name: w("flag_vs_truth", state=str(state), ms=rfi_ms["ms"]["0"], manifest=rfi_ms["manifest"],
                        engine="aoflagger", **kw)
                for name, kw in (("packaged", {"time_sigma_s": None, "freq_dilation": None}), ("tuned", {}))}
    finally:
        w.close()


@pytest.mark.slow
def test_issue13_rfi_flagging_finds_the_interference_and_spares_clean_data(scored):
    tuned, packaged = scored["tuned"], scored["packaged"]
    # the interference a time-frequency flagger can see (the dead antenna is the solve's)
    assert tuned["recall_by_kind"]["channels"] >= 0.99, tuned
    assert tuned["recall_by_kind"]["bursts"] >= 0.95, tuned
    assert tuned["clean_flagged"] <= 0.05, tuned
    # the packaged strategy's flat background fit flags around bursts and at the edges
    assert tuned["clean_flagged"] < 0.8 * packaged["clean_flagged"], (tuned, packaged)
    assert tuned["time_sigma_s"] == flagging.DEFAULT_TIME_SIGMA_S and packaged["time_sigma_s"] is None


def test_issue13_strategy_settings_are_written_into_the_lua(tmp_path):
    lua = flagging.strategy_file("generic-default", 1.6, tmp_path, time_sigma_s=40.0, integration_s=12.8849,
                                 freq_dilation=0.05)
    text = lua.read_text()
    assert "local base_threshold = 1.6" in text
    assert "low_pass_filter(resized_data, 21, 31, 1.035, 5.0)" in text  # 40 s / (3 x 12.88 s)
    assert "scale_invariant_rank_operator_masked(input, copy_of_input, 0.2, 0.05)" in text
    assert lua.parent == tmp_path and lua.name.startswith(".")  # a private temporary name


def test_issue13_a_strategy_without_the_setting_is_refused_by_name(tmp_path):
    own = tmp_path / "mine.lua"
    own.write_text("function execute(input)\n  aoflagger.sumthreshold(input, 1.0, 1.0, true, true)\nend\n")
    assert flagging.strategy_file(str(own)) == own  # nothing to set: used as it is
    with pytest.raises(CalibrationError, match=r"mine\.lua.*flag\.time_sigma_s"):
        flagging.strategy_file(str(own), time_sigma_s=40.0, integration_s=12.9)
    with pytest.raises(CalibrationError, match=r"mine\.lua.*flag\.freq_dilation"):
        flagging.strategy_file(str(own), freq_dilation=0.05)
    assert not any(Path(tmp_path).glob(".mine*"))  # nothing half-written left
