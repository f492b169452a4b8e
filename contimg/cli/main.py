"""The `contimg` command: global options and the registry of subcommands."""

from __future__ import annotations

import click

from contimg import __version__
from contimg.cli.common import App


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False), default=None,
              help="State directory (default $CONTIMG_HOME or ./contimg-data).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="TOML configuration file (default $CONTIMG_CONFIG or <home>/contimg.toml).")
@click.option("--json", "json_output", is_flag=True, help="Machine-readable JSON output.")
@click.option("-v", "--verbose", count=True, help="More detail (repeatable).")
@click.option("-q", "--quiet", count=True, help="Less output (repeatable).")
@click.version_option(__version__, prog_name="contimg")
@click.pass_context
def cli(ctx: click.Context, home, config_file, json_output, verbose, quiet) -> None:
    """contimg: the DSA-110 continuum imaging pipeline.

    Subband files -> ingest -> convert (MS) -> calibrate -> image -> mosaic ->
    publish, coordinated through one SQLite state database in the state
    directory.  Every step can be run by hand, from cron or in `contimg watch`.
    """
    ctx.obj = App(home=home, config_file=config_file, json_output=json_output,
                  verbosity=verbose - quiet)


def _register() -> None:
    from contimg.cli import (calibrate, config_cmd, convert, image, ingest, mosaic, prune, publish,
                             retry, simulate, status, watch)

    for module in (status, retry, config_cmd, simulate, ingest, convert, calibrate, image, mosaic,
                   publish, watch, prune):
        cli.add_command(module.command)


_register()
