"""Generate shell completions and man pages from the click definitions.

Run by `make docs`; a test regenerates into a temporary directory and fails when
the checked-in copies are stale.  The man date is fixed so output is reproducible.
click-man writes NAME, SYNOPSIS, DESCRIPTION and OPTIONS; the sections an operator
looks for next (EXIT STATUS, ENVIRONMENT, FILES, EXAMPLES) are added here.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from click.shell_completion import get_completion_class

from contimg import __version__
from contimg.cli.main import COMMANDS, cli

MAN_DATE = "2026-11-22"
SHELLS = {"bash": "contimg.bash", "zsh": "_contimg", "fish": "contimg.fish"}

EXAMPLES = {
    "": ["contimg init", "contimg watch --workers 2",
         "contimg status --failed",
         "contimg list jobs --state failed | contimg retry"],
    "init": ["contimg --home /data/dsa110/contimg init"],
    "status": ["contimg status", "contimg status --failed --step calibrate --json",
               "contimg status -v --since 2h"],
    "list": ["contimg list observations | grep ^20250615T",
             "contimg list jobs --step image --state failed"],
    "retry": ["contimg retry 42", "contimg retry --step calibrate 20250615T034258",
              "contimg status --failed --json | jq -r '.failures[].id' | xargs -r contimg retry"],
    "redo": ["contimg redo convert 20250615T034258",
             "contimg list jobs --step image --state done | grep ^20250615T | contimg redo image"],
    "config": ["contimg config", "contimg config --sample > contimg.toml"],
    "simulate": ["contimg simulate --observations 3 --nants 16 --nchan 4"],
    "ingest": ["contimg ingest", "find /data/incoming -name '*_sb??.hdf5' | contimg ingest --stdin"],
    "convert": ["contimg convert --all", "printf '%s\\n' 20250615T034258 | contimg convert"],
    "calibrate": ["contimg calibrate --all", "contimg calibrate --list"],
    "image": ["contimg image 20250615T034258", "contimg image --all --limit 4"],
    "mosaic": ["contimg mosaic --all", "contimg mosaic --n 3", "contimg mosaic --list"],
    "publish": ["contimg publish --all", "contimg publish --list",
                "contimg publish --force mos_20250615T034258_0123456789ab"],
    "watch": ["contimg watch --workers 2", "contimg watch --once --json",
              "contimg watch --timeout image=1800"],
    "prune": ["contimg prune --dry-run", "contimg prune --keep-hours 48"],
}

COMMON = r"""
.SH EXIT STATUS
.TP
0
Success; nothing to do is success.
.TP
1
A job failed, or the state database stayed locked by another process for 30 s.
.TP
2
Usage, configuration or state-directory error (one line on stderr, starting with
"contimg: error:").
.SH ENVIRONMENT
.TP
CONTIMG_HOME
The state directory when \fB\-\-home\fP is not given (default ./contimg-data).
.TP
CONTIMG_CONFIG
The configuration file when \fB\-\-config\fP is not given.
.TP
CONTIMG_\fISECTION\fP_\fINAME\fP
Any configuration option, e.g. CONTIMG_MOSAIC_N=3; \fBcontimg config \-\-sample\fP lists
them all.  An unknown CONTIMG_* variable is an error.
.SH FILES
.TP
<home>/state.sqlite3
The state database shared by every command, watcher and cron job
(created by \fBcontimg init\fP).
.TP
<home>/contimg.toml
The configuration file read when present.
.TP
<home>/incoming, <home>/staging, <home>/products
Subband files in, work in progress, published products.
.TP
<home>/logs
casa.log (everything CASA prints), watch.log, jobs/<step>/<id>.log (each job's output,
from watch and from hand-run commands).
"""


def completion_scripts() -> dict[str, str]:
    out = {}
    for shell, filename in SHELLS.items():
        comp = get_completion_class(shell)(cli, {}, "contimg", "_CONTIMG_COMPLETE")
        text = comp.source()
        if shell == "fish":   # split type from value once: descriptions may hold commas
            text = text.replace('string split "," $completion', 'string split -m 1 "," -- $completion')
        out[filename] = text
    return out


def _finish_man_page(path: Path) -> None:
    """A NAME without a repeated prefix or '...', then the operator's sections."""
    sub = path.stem[len("contimg-"):] if path.stem != "contimg" else ""
    cmd = cli.get_command(None, sub) if sub else cli   # type: ignore[arg-type]
    summary = (cmd.help or "").strip().split("\n\n")[0].replace("\n", " ")
    summary = summary.split(". ")[0].rstrip(".") if summary else COMMANDS.get(sub, ("", ""))[1]
    name = "contimg" + (f"\\-{sub}" if sub else "")
    text = path.read_text()
    text = re.sub(r"(\.SH NAME\n)[^\n]*\n", lambda m: f"{m.group(1)}{name} \\- "
                  + summary.replace("-", "\\-") + "\n", text, count=1)
    examples = "\n".join(".PP\n.nf\n" + _roff(e) + "\n.fi" for e in EXAMPLES.get(sub, []))
    see = ".SH SEE ALSO\n" + (
        "contimg(1)" if sub else ", ".join(f"contimg\\-{c}(1)" for c in COMMANDS)) + "\n"
    path.write_text(text.rstrip("\n") + "\n" + COMMON.lstrip("\n")
                    + (f".SH EXAMPLES\n{examples}\n" if examples else "") + see)


def _roff(line: str) -> str:
    return line.replace("\\", "\\e").replace("-", "\\-")


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
    for name in COMMANDS:   # the group imports subcommands lazily; click-man needs them all
        cli.get_command(None, name)  # type: ignore[arg-type]
    write_man_pages("contimg", cli, version=__version__, target_dir=str(man_dir), date=MAN_DATE)
    for page in sorted(man_dir.glob("*.1")):
        _finish_man_page(page)
    written.extend(sorted(man_dir.glob("*.1")))
    return written


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1] if len(sys.argv) > 1 else ".")):
        print(path)
