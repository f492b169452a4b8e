"""Issue 17 item 20 (and 8): every configuration value is checked where it is read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from contimg.config import OPTIONS, ConfigError, load_config


def _load(tmp_path: Path, text: str | bytes, environ: dict | None = None):
    f = tmp_path / "c.toml"
    f.write_bytes(text if isinstance(text, bytes) else text.encode())
    return load_config(home=tmp_path, config_file=f, environ=environ or {})


@pytest.mark.parametrize("key", [o.key for o in OPTIONS if o.type is float])
@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_item20_non_finite_numbers_are_refused_for_every_float(tmp_path, key, bad) -> None:
    section, name = key.split(".")
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        _load(tmp_path, f"[{section}]\n{name} = {bad}\n")
    env = "CONTIMG_" + key.replace(".", "_").upper()
    with pytest.raises(ConfigError, match="finite"):
        load_config(home=tmp_path, environ={env: bad})


@pytest.mark.parametrize("text, match", [
    ("[convert]\nnsubbands = 0\n", "convert.nsubbands.*>= 1"),
    ('[mosaic]\nmode = "bogus"\n', "mosaic.mode.*not one of tiles, sliding"),
    ('[mosaic]\nmode = "tile"\n', "not one of"),
    ("[jobs]\nmax_attempts = 9223372036854775807\n", "jobs.max_attempts.*<= 1000"),
    ("[image]\nrobust = 7\n", "image.robust.*<= 2"),
    ("[image]\nrobust = -2.5\n", "image.robust.*>= -2"),
    ("[ingest]\nmin_subbands = 0\n", ">= 1"),
    ("[jobs]\nlease_s = 0\n", "jobs.lease_s.*> 0"),
    ("[mosaic]\nn = 3\nmode = 'sliding'\noverlap = 3\n", "overlap < n"),
    ("[ingest]\nmin_subbands = 17\n", "must not exceed nsubbands"),
    ('[mosaic]\nmode = 3\n', "expected a string"),
])
def test_item20_out_of_range_values_are_refused(tmp_path, text, match) -> None:
    with pytest.raises(ConfigError, match=match):
        _load(tmp_path, text)


def test_item20_huge_integers_from_the_environment_are_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match="jobs.max_attempts"):
        load_config(home=tmp_path, environ={"CONTIMG_JOBS_MAX_ATTEMPTS": str(2**66)})


@pytest.mark.parametrize("robust", [-2.0, -0.5, 0.0, 0.5, 2.0])
def test_item20_briggs_robust_accepts_minus_two_to_two(tmp_path, robust) -> None:
    assert _load(tmp_path, f"[image]\nrobust = {robust}\n").get("image.robust") == robust


def test_item20_invalid_utf8_toml_is_a_one_line_error(tmp_path) -> None:
    home = tmp_path / "h"
    home.mkdir()
    (home / "contimg.toml").write_bytes(b"[ingest]\nsettle_s = 5.0 # caf\xe9\n")
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        load_config(home=home, environ={})
    from contimg.state import Database

    Database(home / "state.sqlite3").close()
    res = subprocess.run([sys.executable, "-m", "contimg", "--home", str(home), "status"],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2 and len(lines) == 1 and "UTF-8" in lines[0], res.stderr


def test_item20_every_default_is_within_its_own_bounds(tmp_path) -> None:
    cfg = load_config(home=tmp_path, environ={})
    for opt in OPTIONS:
        if opt.choices:
            assert cfg.get(opt.key) in opt.choices
