"""Progress display for long work: a rich bar on a terminal, nothing otherwise."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterator

from contimg.cli.common import App


@contextmanager
def progress_reporter(app: App) -> Iterator[Callable[[str, float], None] | None]:
    """Yields ``report(message, fraction)`` for a terminal, or None when piped."""
    if not sys.stderr.isatty() or app.json_output:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=app.err, transient=True) as bar:
        task = bar.add_task("starting", total=1.0)

        def report(message: str, fraction: float) -> None:
            bar.update(task, description=message, completed=max(0.0, min(1.0, fraction)))

        yield report
