"""Generate shell completions and man pages from the click definitions.

Run by `make docs`; a test regenerates into a temporary directory and fails when
the checked-in copies are stale.  The man date is fixed so output is reproducible.
"""

from __future__ import annotations

import sys
from pathlib import Path

from click.shell_completion import get_completion_class

from contimg import __version__
from contimg.cli.main import cli

MAN_DATE = "2026-11-22"
SHELLS = {"bash": "contimg.bash", "zsh": "_contimg", "fish": "contimg.fish"}


def completion_scripts() -> dict[str, str]:
    out = {}
    for shell, filename in SHELLS.items():
        comp = get_completion_class(shell)(cli, {}, "contimg", "_CONTIMG_COMPLETE")
        out[filename] = comp.source()
    return out


def generate(root: Path) -> list[Path]:
    from click_man.core import write_man_pages

    written = []
    comp_dir = root / "completions"
    comp_dir.mkdir(parents=True, exist_ok=True)
    for filename, text in completion_scripts().items():
        (comp_dir / filename).write_text(text)
        written.append(comp_dir / filename)
    man_dir = root / "man"
    man_dir.mkdir(parents=True, exist_ok=True)
    for old in man_dir.glob("*.1"):
        old.unlink()
    write_man_pages("contimg", cli, version=__version__, target_dir=str(man_dir), date=MAN_DATE)
    written.extend(sorted(man_dir.glob("*.1")))
    return written


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1] if len(sys.argv) > 1 else ".")):
        print(path)
