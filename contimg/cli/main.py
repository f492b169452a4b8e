"""The `contimg` command: global options and the registry of subcommands.

Global options (--home, --config, --json, -v, -q) are accepted before or after the
subcommand.  Errors about the state database (missing, not a database, locked) end
as one line on stderr with the documented exit code, never as a traceback.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import click

from contimg import __version__
from contimg.cli.common import EXIT_FAILED, EXIT_USAGE, App, all_option
from contimg.state.db import StateError, StateLocked, is_lock_error, locked_message

# subcommands whose IDs can also be "every pending one"
TAKES_ALL = ("convert", "calibrate", "image", "mosaic", "publish")


class ContimgGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StateLocked as exc:
            _die(str(exc), EXIT_FAILED)
        except StateError as exc:
            _die(str(exc), EXIT_USAGE)
        except sqlite3.OperationalError as exc:
            if not is_lock_error(exc):
                raise
            _die(locked_message(_db_path(ctx)), EXIT_FAILED)
        except sqlite3.DatabaseError as exc:
            _die(f"{_db_path(ctx)} is not a contimg state database, or is damaged ({exc}); "
                 "restore it from a backup or move it aside", EXIT_USAGE)


def _db_path(ctx: click.Context) -> str:
    app = ctx.find_object(App)
    try:
        return str(app.config().db_path) if app else "the state database"
    except SystemExit:
        return "the state database"


def _die(message: str, code: int) -> None:
    click.echo(f"contimg: error: {message}", err=True)
    raise SystemExit(code)


HOME_HELP = "State directory (default $CONTIMG_HOME or ./contimg-data)."
CONFIG_HELP = "TOML configuration file (default $CONTIMG_CONFIG or <home>/contimg.toml)."


@click.group(cls=ContimgGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False), default=None, help=HOME_HELP)
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help=CONFIG_HELP)
@click.option("--json", "json_output", is_flag=True, help="Machine-readable JSON output.")
@click.option("-v", "--verbose", count=True, help="More detail (repeatable).")
@click.option("-q", "--quiet", count=True, help="Less output (repeatable).")
@click.version_option(__version__, prog_name="contimg")
@click.pass_context
def cli(ctx: click.Context, home, config_file, json_output, verbose, quiet) -> None:
    """The DSA-110 continuum imaging pipeline.

    Subband files -> ingest -> convert (MS) -> calibrate -> image -> mosaic ->
    publish, coordinated through one SQLite state database in the state
    directory.  Every step can be run by hand, from cron or in `contimg watch`.
    Global options may come before or after the subcommand.
    """
    ctx.obj = App(home=home, config_file=config_file, json_output=json_output,
                  verbosity=verbose - quiet, command=ctx.invoked_subcommand)


def _setter(attr: str):
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        app = ctx.find_object(App)
        if app is None or value in (None, False, 0):
            return
        if attr == "verbose":
            app.verbosity += value
        elif attr == "quiet":
            app.verbosity -= value
        else:
            setattr(app, attr, value)
    return callback


def _global_options() -> list[click.Option]:
    """The group's options, repeated on every subcommand (after it, they win)."""
    return [
        click.Option(["--home"], type=click.Path(file_okay=False), default=None,
                     expose_value=False, callback=_setter("home"), help=HOME_HELP),
        click.Option(["--config", "config_file"], type=click.Path(dir_okay=False), default=None,
                     expose_value=False, callback=_setter("config_file"), help=CONFIG_HELP),
        click.Option(["--json", "json_flag"], is_flag=True, expose_value=False,
                     callback=_setter("json_output"), help="Machine-readable JSON output."),
        click.Option(["-v", "--verbose"], count=True, expose_value=False,
                     callback=_setter("verbose"), help="More detail (repeatable)."),
        click.Option(["-q", "--quiet"], count=True, expose_value=False,
                     callback=_setter("quiet"), help="Less output (repeatable)."),
    ]


def _add_global_options(cmd: click.Command) -> None:
    taken = {o for p in cmd.params for o in getattr(p, "opts", [])}
    for opt in _global_options():
        if not taken.intersection(opt.opts):
            cmd.params.append(opt)


def _register() -> None:
    from contimg.cli import (calibrate, config_cmd, convert, image, ingest, init_cmd, list_cmd,
                             mosaic, prune, publish, redo, retry, simulate, status, watch)

    for module in (init_cmd, status, list_cmd, retry, redo, config_cmd, simulate, ingest,
                   convert, calibrate, image, mosaic, publish, watch, prune):
        cmd = module.command
        if cmd.name in TAKES_ALL and not any(p.name == "all_pending" for p in cmd.params):
            all_option(cmd)
        _add_global_options(cmd)
        cli.add_command(cmd)


_register()
