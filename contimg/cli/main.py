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


# name -> (module, one-line summary for TAB completion without importing the module)
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("contimg.cli.init_cmd", "Create the state directory"),
    "status": ("contimg.cli.status", "Counts per step and state, failures, stuck items"),
    "list": ("contimg.cli.list_cmd", "Observation, mosaic, product IDs, one per line"),
    "retry": ("contimg.cli.retry", "Reset failed/dead jobs to pending"),
    "redo": ("contimg.cli.redo", "Do a step again for named observations"),
    "reprocess": ("contimg.cli.reprocess", "New image versions with changed options"),
    "config": ("contimg.cli.config_cmd", "Effective configuration and its sources"),
    "simulate": ("contimg.cli.simulate", "Write simulated subband files"),
    "ingest": ("contimg.cli.ingest", "Register subband files, queue observations"),
    "convert": ("contimg.cli.convert", "Subband files -> Measurement Sets"),
    "calibrate": ("contimg.cli.calibrate", "Solve on calibrator transits and apply"),
    "image": ("contimg.cli.image", "Primary-beam-corrected images"),
    "mosaic": ("contimg.cli.mosaic", "Form groups of images and combine them"),
    "publish": ("contimg.cli.publish", "Move QA-passed products into products/"),
    "watch": ("contimg.cli.watch", "Run every step continuously"),
    "prune": ("contimg.cli.prune", "Remove MSs whose mosaics are all published"),
}


class ContimgGroup(click.Group):
    """Subcommands are imported when used: TAB completion and `contimg status` never
    import CASA, astropy or pyuvdata (a TAB must answer at once)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        if name not in self.commands:
            import importlib

            cmd = importlib.import_module(COMMANDS[name][0]).command
            _decorate(cmd)
            self.commands[name] = cmd
        return self.commands[name]

    def shell_complete(self, ctx: click.Context, incomplete: str):
        from click.shell_completion import CompletionItem

        items = [CompletionItem(n, help=h) for n, (_m, h) in COMMANDS.items()
                 if n.startswith(incomplete)]
        return items + click.Command.shell_complete(self, ctx, incomplete)

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


ID_ARGUMENTS = {"observations": "observation", "items": "observation",
                "mosaic_ids": "mosaic", "product_ids": "product", "job_ids": "job"}


def _decorate(cmd: click.Command) -> None:
    """What every subcommand shares: --all where IDs are taken, the global options, and
    completion of IDs from the state database."""
    from contimg.cli.complete import complete_ids

    if cmd.name in TAKES_ALL and not any(p.name == "all_pending" for p in cmd.params):
        all_option(cmd)
    for p in cmd.params:
        if isinstance(p, click.Argument) and p.name in ID_ARGUMENTS and \
                p._custom_shell_complete is None:
            p._custom_shell_complete = complete_ids
    _add_global_options(cmd)
