"""Issue 17 item 5: the shipped examples are executed, so they cannot rot."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

from pipeline_helpers import age, sim, wait_for as _wait

from contimg.state import Database

BIN = Path(sys.executable).parent
EX = REPO / "examples"


def _env(home: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTIMG_")}
    return {**env, "PATH": f"{BIN}:/usr/bin:/bin", "CONTIMG_HOME": str(home), **extra}


@pytest.mark.slow
def test_item05_pipelines_sh_runs_first_time_and_again(home: Path, tmp_path: Path) -> None:
    inc = home / "incoming"
    sim(inc, observations=1)
    age(list(inc.iterdir()))
    env = _env(home, NIGHT="20250615")
    first = subprocess.run(["bash", str(EX / "pipelines.sh")], env=env, capture_output=True,
                           text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert first.returncode == 0, first.stderr
    db = Database(home / "state.sqlite3")
    assert db.query("SELECT COUNT(*) AS n FROM measurement_sets")[0]["n"] == 1, "converted"
    assert (home / "logs" / "last-ingest.stamp").exists()
    again = subprocess.run(["bash", str(EX / "pipelines.sh")], env=env, capture_output=True,
                           text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert again.returncode == 0, again.stderr
    assert "sqlite3" not in (EX / "pipelines.sh").read_text(), "no SQL against the schema"


def _cron_jobs() -> tuple[dict, list[str]]:
    env, commands = {}, []
    for line in (EX / "crontab").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([A-Z_]+)=(.*)$", line)
        if m:
            env[m.group(1)] = m.group(2)
        else:
            commands.append(line.split(None, 5)[5])
    return env, commands


def test_item05_crontab_lines_run_with_crons_path(home: Path, tmp_path: Path) -> None:
    cron_env, commands = _cron_jobs()
    assert commands
    for cmd in commands:
        words = shlex.split(cmd)
        contimg = [w for w in words if w.endswith("contimg")]
        assert contimg and all(w.startswith("/") for w in contimg), f"bare contimg: {cmd}"
    real_home = cron_env["CONTIMG_HOME"]
    subprocess.run([str(BIN / "contimg"), "--home", str(home), "init"], check=True,
                   capture_output=True)          # "create the state once by hand first"
    for cmd in commands:
        cmd = cmd.replace("/opt/contimg/.venv/bin/", f"{BIN}/").replace(real_home, str(home))
        cmd = cmd.replace("/tmp/contimg-cron.lock", str(tmp_path / "cron.lock"))
        res = subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True, timeout=300,
                             env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                  "CONTIMG_HOME": str(home)}, stdin=subprocess.DEVNULL)
        assert res.returncode == 0, (cmd, res.stdout, res.stderr)
    assert "done for now" in (home / "logs" / "cron.log").read_text()


def test_item05_systemd_unit_stops_gracefully_with_killmode_mixed(home: Path) -> None:
    unit = {}
    for line in (EX / "contimg.service").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            unit.setdefault(k.strip(), v.strip())
    assert unit["KillMode"] == "mixed" and unit["KillSignal"] == "SIGTERM"
    grace = float(re.search(r"--grace (\d+)", unit["ExecStart"]).group(1))
    assert float(unit["TimeoutStopSec"]) > grace
    exec_start = shlex.split(unit["ExecStart"].replace("/opt/contimg/.venv/bin/", f"{BIN}/"))
    assert Path(exec_start[0]).is_absolute()
    proc = subprocess.Popen([*exec_start, "--interval", "1"], env=_env(home),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    try:
        assert _wait(lambda: (home / "logs" / "watch.log").exists() or proc.poll() is not None)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGTERM)          # KillMode=mixed: the main process only
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "stop requested" in out


def test_item05_workers_honour_sigterm(home: Path) -> None:
    """The watcher stops a worker past the grace period with SIGTERM first."""
    from contimg.steps import worker

    code = ("import signal, sys, time\nsys.argv = ['w']\nfrom contimg.steps import worker\n"
            "signal.signal(signal.SIGTERM, worker._terminate)\n"
            "try:\n    time.sleep(60)\nfinally:\n    print('cleaned up', flush=True)\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    time.sleep(1.5)
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=30)
    assert "cleaned up" in out and p.returncode == 128 + signal.SIGTERM
    assert worker._terminate is not None


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed (.ci/run installs it)")
def test_item05_tmux_session_starts_watch_with_the_state_directory(home: Path, tmp_path: Path) -> None:
    sock = tmp_path / "tmux"
    sock.mkdir()
    env = _env(home, TMUX_TMPDIR=str(sock), SESSION="ctest")
    env.pop("CONTIMG_HOME")       # as in a running tmux server: not inherited
    env.pop("TMUX", None)
    try:
        res = subprocess.run(["bash", str(EX / "tmux-session.sh"), str(home)], env=env,
                             capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL)
        assert res.returncode == 0, res.stderr
        assert _wait(lambda: (home / "logs" / "watch.log").exists(), 120), "watch never ran"
        windows = subprocess.run(["tmux", "list-windows", "-t", "ctest", "-F", "#W"], env=env,
                                 capture_output=True, text=True).stdout.split()
        assert windows == ["watch", "status", "log"]
        time.sleep(1)
        pane = subprocess.run(["tmux", "capture-pane", "-p", "-t", "ctest:watch"], env=env,
                              capture_output=True, text=True).stdout
        assert "error" not in pane.lower(), pane
    finally:
        subprocess.run(["tmux", "kill-server"], env=env, capture_output=True)


def test_item05_readme_pipelines_use_xargs_r() -> None:
    text = (REPO / "README.md").read_text()
    assert not re.search(r"\|\s*xargs (?!-r)[^\n]*contimg", text), "xargs without -r exits 123"
