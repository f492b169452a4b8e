"""Issue 17 item 11 and "docs stand alone": man pages, completions, requirement IDs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def test_item11_man_pages_have_the_operator_sections() -> None:
    pages = sorted((REPO / "man").glob("*.1"))
    assert len(pages) >= 15
    for page in pages:
        text = page.read_text()
        for section in ("EXIT STATUS", "ENVIRONMENT", "FILES", "SEE ALSO"):
            assert f".SH {section}" in text, (page.name, section)
        name = text.split(".SH NAME\n", 1)[1].split("\n", 1)[0]
        assert "contimg:" not in name and "..." not in name, (page.name, name)
    for page in ("contimg.1", "contimg-retry.1", "contimg-redo.1", "contimg-watch.1"):
        assert ".SH EXAMPLES" in (REPO / "man" / page).read_text(), page


def test_item11_fish_descriptions_keep_their_commas() -> None:
    fish = (REPO / "completions" / "contimg.fish").read_text()
    assert 'string split -m 1 "," --' in fish and 'string split "," $completion' not in fish


def _complete(words: str, cword: int, home: Path, shell: str = "bash") -> list[str]:
    env = {**os.environ, "_CONTIMG_COMPLETE": f"{shell}_complete", "COMP_WORDS": words,
           "COMP_CWORD": str(cword), "CONTIMG_HOME": str(home)}
    res = subprocess.run([str(Path(sys.executable).parent / "contimg")], env=env,
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    return res.stdout.splitlines()


def test_item11_completion_of_step_values_and_ids(cli) -> None:
    from contimg.state import Database, jobs

    db = Database(cli.home / "state.sqlite3")
    jobs.enqueue(db, "convert", "20250615T034258", 60841.1)
    jobs.enqueue(db, "convert", "20250615T034808", 60841.2)
    steps = _complete("contimg status --step ", 3, cli.home)
    assert steps == [f"plain,{s}" for s in ("convert", "calibrate", "image", "mosaic", "publish")]
    ids = _complete("contimg convert 20250615T0342", 2, cli.home)
    assert ids == ["plain,20250615T034258"]


def test_item11_tab_completion_imports_no_heavy_package(cli) -> None:
    code = ("import os, sys\n"
            "os.environ.update(_CONTIMG_COMPLETE='bash_complete', COMP_WORDS='contimg convert ',"
            " COMP_CWORD='2')\n"
            "from contimg.cli.main import cli\n"
            "try:\n    cli(prog_name='contimg')\nexcept SystemExit:\n    pass\n"
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
            "{'astropy', 'casatools', 'casatasks', 'pyuvdata', 'numba', 'h5py', 'scipy'})\n"
            "print('HEAVY', heavy, file=sys.stderr)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "CONTIMG_HOME": str(cli.home)}, timeout=120)
    assert "HEAVY []" in res.stderr, res.stderr


def test_docs_stand_alone_requirement_ids_cited_by_tests_are_defined() -> None:
    doc = (REPO / "docs" / "requirements.md").read_text()
    defined = set(re.findall(r"^\| ([A-Z]\d) \|", doc, re.M))
    cited = set()
    for f in (REPO / "tests").glob("test_*.py"):
        cited |= {m.upper() for m in re.findall(r"def test_([a-z]\d)_", f.read_text())}
    assert cited and cited <= defined, sorted(cited - defined)
    data = (REPO / "docs" / "data-format.md").read_text()
    for fact in ("OVRO_MMA", "sb00 is the highest", "12.8849", "phase_center_dec", "HADEC"):
        assert fact in data, fact
    for doc_name in ("requirements.md", "data-format.md"):
        assert "../shared" not in (REPO / "docs" / doc_name).read_text()
