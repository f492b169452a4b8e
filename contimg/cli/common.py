"""What every subcommand shares: the context object, ID input, output and exit codes."""

from __future__ import annotations

import json
import os
import stat
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import click
from rich.console import Console

from contimg.config import Config, ConfigError, load_config
from contimg.state import Database, StateError
from contimg.state.db import StateLocked

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


# Commands that may create a state directory (documented in README and man pages):
# `init` always; `ingest` and `watch` when the incoming directory already exists (the
# first run on a machine where the correlator writes).  Everything else needs one.
CREATES_STATE = {"init"}
CREATES_WITH_INCOMING = {"ingest", "watch"}
READ_ONLY = {"status", "config", "list"}


@dataclass
class App:
    """Global options, resolved lazily so `--help` never touches the disk."""

    home: str | None
    config_file: str | None
    json_output: bool
    verbosity: int
    overrides: dict[str, Any] = field(default_factory=dict)
    command: str | None = None
    all_pending: bool = False
    _config: Config | None = None
    _db: Database | None = None

    def config(self) -> Config:
        if self._config is None:
            try:
                self._config = load_config(home=self.home, config_file=self.config_file,
                                           overrides=self.overrides, json_output=self.json_output,
                                           verbosity=self.verbosity)
            except ConfigError as exc:
                fail_usage(str(exc))
        return self._config

    @property
    def read_only(self) -> bool:
        if self.command in READ_ONLY:
            return True
        params = click.get_current_context(silent=True)
        params = params.params if params is not None else {}
        return bool(params.get("list_only"))   # publish/calibrate/mosaic --list

    def require_state(self) -> Config:
        """The state directory must exist, except for the commands that create it."""
        cfg = self.config()
        if cfg.db_path.exists():
            return cfg
        creates = self.command in CREATES_STATE or (
            self.command in CREATES_WITH_INCOMING and cfg.incoming.is_dir())
        if not creates:
            fail_usage(missing_state_message(cfg))
        return cfg

    def db(self) -> Database:
        """The state database (opened once); directories are made only once it opened."""
        if self._db is None:
            cfg = self.require_state()
            try:
                self._db = Database(cfg.db_path, create=not self.read_only)
            except StateLocked as exc:
                click.echo(f"contimg: error: {exc}", err=True)
                raise SystemExit(EXIT_FAILED) from None
            except StateError as exc:
                fail_usage(str(exc))
            if not self.read_only:
                try:
                    cfg.ensure_dirs()
                except OSError as exc:
                    fail_usage(f"cannot create {exc.filename or cfg.home}: "
                               f"{exc.strerror or exc}; check --home and the paths.* settings")
        return self._db

    @property
    def console(self) -> Console:
        return Console(stderr=False, highlight=False)

    @property
    def err(self) -> Console:
        return Console(stderr=True, highlight=False)

    @property
    def interactive(self) -> bool:
        return sys.stdout.isatty() and not self.json_output

    def say(self, message: str, *, level: int = 0) -> None:
        """Progress and notes on stderr: shown at verbosity >= level (-q hides level 0)."""
        if self.verbosity >= level and not (self.json_output and level > 0):
            click.echo(message, err=True)


def missing_state_message(cfg: Config) -> str:
    return (f"no contimg state in {cfg.home} (no {cfg.db_path.name}; home from "
            f"{cfg.sources.get('home')}): create one with 'contimg --home {cfg.home} init', "
            "or point --home / $CONTIMG_HOME at the existing state directory")


pass_app = click.make_pass_decorator(App)


def fail_usage(message: str) -> None:
    click.echo(f"contimg: error: {message}", err=True)
    raise SystemExit(EXIT_USAGE)


def stdin_kind(stdin: Any) -> str:
    """'tty', 'none' (closed or /dev/null: cron, systemd, ssh -n), 'data' (a pipe or
    file) or 'unknown' (no file descriptor, e.g. an in-process test runner)."""
    if stdin is None or getattr(stdin, "closed", False):
        return "none"
    try:
        fd = stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return "unknown"
    try:
        if os.isatty(fd):
            return "tty"
        return "none" if stat.S_ISCHR(os.fstat(fd).st_mode) else "data"
    except OSError:
        return "none"


def items_from(args: Sequence[str], *, stdin: Any = None) -> list[str]:
    """IDs or paths from arguments, or one per line from stdin (piped, or given '-').

    The same rule for every command that takes IDs: arguments win; otherwise a pipe or
    file on stdin is read, and EMPTY input means nothing to do (this exits 0 here, so
    `grep nomatch ids | contimg convert` converts nothing).  An empty list is returned
    only for "every pending one": ``--all``, or no stdin at all (a terminal, /dev/null).
    """
    stdin = stdin or sys.stdin
    ctx = click.get_current_context(silent=True)
    app = ctx.find_object(App) if ctx is not None else None
    everything = bool(app and app.all_pending)
    items = [a for a in args if a != "-"]
    if everything:
        if args:
            fail_usage("give IDs or --all, not both")
        return []
    kind = stdin_kind(stdin)
    explicit = "-" in args
    if explicit or (not args and kind in ("data", "unknown")):
        items.extend(line.strip() for line in stdin if line.strip())
        if not items and (explicit or kind == "data"):
            if app is not None and app.json_output:
                emit_json([])
            click.echo("nothing to do: no IDs on stdin (give --all for every pending one)",
                       err=True)
            raise SystemExit(EXIT_OK)
    return items


def _set_all(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_object(App).all_pending = True


def all_option(f: Callable) -> Callable:
    """`--all`: every pending item (what a bare command does on a terminal)."""
    return click.option("--all", "all_pending", is_flag=True, expose_value=False,
                        callback=_set_all,
                        help="Every pending item (needed when stdin is a pipe, e.g. in cron).")(f)


def emit_json(payload: Any) -> None:
    click.echo(json.dumps(payload, indent=2, default=str))


def emit_lines(lines: Iterable[str]) -> None:
    for line in lines:
        click.echo(line)


def exit_for(failures: int) -> None:
    if failures:
        raise SystemExit(EXIT_FAILED)


def with_override(key: str) -> Callable:
    """Click callback storing a flag value as a configuration override."""
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value is not None:
            ctx.find_object(App).overrides[key] = value
        return value
    return callback


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_object(App).json_output = True


def json_option(f: Callable) -> Callable:
    """`--json` accepted after the subcommand too (`contimg status --json`)."""
    return click.option("--json", "json_flag", is_flag=True, expose_value=False,
                        callback=_set_json, help="Machine-readable JSON output.")(f)
