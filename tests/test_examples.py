"""The shipped examples stay true to the code."""

from __future__ import annotations

import tomllib

from conftest import REPO

from contimg.config import OPTIONS, load_config, sample_toml


def test_example_toml_is_current_and_loads(tmp_path) -> None:
    text = (REPO / "examples" / "contimg.toml").read_text()
    assert text.strip() == sample_toml().strip(), "run: contimg config --sample > examples/contimg.toml"
    data = tomllib.loads(text)
    keys = {f"{s}.{k}" for s, body in data.items() for k in body}
    assert keys == {o.key for o in OPTIONS if o.default is not None}
    f = tmp_path / "c.toml"
    f.write_text(text)
    load_config(home=tmp_path, config_file=f, environ={})


def test_example_scripts_parse() -> None:
    import subprocess

    for script in ("tmux-session.sh", "pipelines.sh", "demo.sh", "dask-one-host.sh", "dask-worker.sh"):
        res = subprocess.run(["bash", "-n", str(REPO / "examples" / script)], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr


def test_issue16_slurm_example_parses_its_options() -> None:
    """The Slurm example needs Slurm to run; here it must at least load and explain itself."""
    import subprocess
    import sys

    res = subprocess.run([sys.executable, str(REPO / "examples" / "dask-slurm.py"), "--help"],
                         capture_output=True, text=True)
    assert res.returncode == 0 and "--jobs" in res.stdout and "Slurm" in res.stdout, res.stderr
