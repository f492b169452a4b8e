"""What every subcommand shares: the context object, ID input, output and exit codes."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import click
from rich.console import Console

from contimg.config import Config, ConfigError, load_config
from contimg.state import Database, StateError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


@dataclass
class App:
    """Global options, resolved lazily so `--help` never touches the disk."""

    home: str | None
    config_file: str | None
    json_output: bool
    verbosity: int
    overrides: dict[str, Any] = field(default_factory=dict)
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

    def db(self) -> Database:
        if self._db is None:
            cfg = self.config()
            cfg.ensure_dirs()
            try:
                self._db = Database(cfg.db_path)
            except StateError as exc:
                fail_usage(str(exc))
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


pass_app = click.make_pass_decorator(App)


def fail_usage(message: str) -> None:
    click.echo(f"contimg: error: {message}", err=True)
    raise SystemExit(EXIT_USAGE)


def items_from(args: Sequence[str], *, stdin: Any = None) -> list[str]:
    """IDs or paths from arguments, or one per line from stdin when piped or given '-'."""
    stdin = stdin or sys.stdin
    items = [a for a in args if a != "-"]
    if "-" in args or (not args and not stdin.isatty()):
        items.extend(line.strip() for line in stdin if line.strip())
    return items


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
