"""Shared fixtures: a fresh state directory and a way to run the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A state directory as `contimg init` leaves it (commands other than init refuse a
    directory without a state database)."""
    from contimg.state import Database

    h = tmp_path / "home"
    h.mkdir()
    Database(h / "state.sqlite3").close()
    return h


@pytest.fixture(autouse=True)
def _clean_contimg_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never inherit an operator's CONTIMG_* settings."""
    for name in list(os.environ):
        if name.startswith("CONTIMG_"):
            monkeypatch.delenv(name)


class Cli:
    """Runs `contimg` in-process (fast) or as a real subprocess (`proc=True`)."""

    def __init__(self, home: Path):
        self.home = home

    def __call__(self, *args: str, input: str | None = None, env: dict | None = None):
        from contimg.cli.main import cli

        result = CliRunner().invoke(cli, ["--home", str(self.home), *args], input=input,
                                    env=env, catch_exceptions=False)
        return result

    def json(self, *args: str, input: str | None = None):
        result = self(*args, "--json", input=input)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def proc(self, *args: str, input: str | None = None, env: dict | None = None,
             timeout: float = 600) -> subprocess.CompletedProcess:
        full_env = {**os.environ, **(env or {})}
        return subprocess.run([sys.executable, "-m", "contimg", "--home", str(self.home), *args],
                              input=input, capture_output=True, text=True, env=full_env,
                              stdin=subprocess.DEVNULL if input is None else None,
                              timeout=timeout)


@pytest.fixture
def cli(home: Path) -> Cli:
    return Cli(home)
