"""Configuration precedence and the foundation subcommands (O1, O3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contimg.config import ConfigError, load_config, sample_toml


def test_defaults_need_no_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config(environ={})
    assert cfg.home == tmp_path / "contimg-data"
    assert cfg.incoming == tmp_path / "contimg-data" / "incoming"
    assert cfg.db_path.name == "state.sqlite3"
    assert cfg.sources["ingest.min_subbands"] == "default"


def test_precedence_default_file_env_flag(tmp_path: Path) -> None:
    home = tmp_path / "h"
    home.mkdir()
    (home / "contimg.toml").write_text("[ingest]\nmin_subbands = 10\ngroup_tolerance_s = 30\n"
                                       "[paths]\nincoming = \"in\"\n")
    cfg = load_config(home=home, environ={"CONTIMG_INGEST_GROUP_TOLERANCE_S": "45"},
                      overrides={"ingest.settle_s": 1})
    assert cfg.get("ingest.min_subbands") == 10 and cfg.sources["ingest.min_subbands"].startswith("file")
    assert cfg.get("ingest.group_tolerance_s") == 45.0
    assert cfg.sources["ingest.group_tolerance_s"] == "env CONTIMG_INGEST_GROUP_TOLERANCE_S"
    assert cfg.get("ingest.settle_s") == 1.0 and cfg.sources["ingest.settle_s"] == "flag"
    assert cfg.incoming == home / "in", "relative paths in the file are relative to the home"
    cfg2 = load_config(home=home, environ={"CONTIMG_INGEST_MIN_SUBBANDS": "14"},
                       overrides={"ingest.min_subbands": 16})
    assert cfg2.get("ingest.min_subbands") == 16


@pytest.mark.parametrize("text, match", [
    ("[ingest]\nmin_subband = 3\n", "unknown key ingest.min_subband"),
    ("[nosuch]\nx = 1\n", "unknown section"),
    ("[ingest]\nmin_subbands = 'many'\n", "bad value"),
    ("[ingest]\nsettle_s = -1\n", "must not be negative"),
    ("[ingest\n", "not valid TOML"),
])
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str, match: str) -> None:
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(home=tmp_path, config_file=f, environ={})


def test_sample_toml_round_trips(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text(sample_toml())
    cfg = load_config(home=tmp_path, config_file=f, environ={})
    from contimg.config import OPTION_BY_KEY

    assert all(src.startswith("file") for key, src in cfg.sources.items()
               if key in OPTION_BY_KEY and OPTION_BY_KEY[key].default is not None)


def test_o3_cli_help_lists_subcommands(cli) -> None:
    res = cli("--help")
    assert res.exit_code == 0
    for name in ("status", "retry", "config"):
        assert f"  {name} " in res.stdout


def test_o1_status_json_on_fresh_home_has_zero_counts(cli) -> None:
    report = cli.json("status")
    assert report["counts"] == {} and report["failures"] == [] and report["expired_leases"] == []
    assert (cli.home / "state.sqlite3").is_file()


def test_config_json_shows_each_source(cli) -> None:
    (cli.home / "contimg.toml").write_text("[jobs]\nmax_attempts = 7\n")
    res = cli("config", "--json", env={"CONTIMG_JOBS_LEASE_S": "120"})
    assert res.exit_code == 0, res.output
    rows = {r["key"]: r for r in json.loads(res.stdout)}
    assert rows["jobs.max_attempts"]["value"] == 7 and rows["jobs.max_attempts"]["source"].startswith("file")
    assert rows["jobs.lease_s"]["source"] == "env CONTIMG_JOBS_LEASE_S"
    assert rows["home"]["source"] == "flag --home"
    assert rows["ingest.min_subbands"]["source"] == "default"


def test_bad_config_exits_2_naming_the_key(cli) -> None:
    (cli.home / "contimg.toml").write_text("[jobs]\nmax_atempts = 7\n")
    res = cli("status")
    assert res.exit_code == 2
    assert "jobs.max_atempts" in res.stderr


def test_o3_real_process_exit_codes(cli) -> None:
    ok = cli.proc("status", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["counts"] == {}
    bad = cli.proc("retry")
    assert bad.returncode == 2 and "give job IDs" in bad.stderr
