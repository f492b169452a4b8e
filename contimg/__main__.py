"""`python -m contimg` is the `contimg` command."""

from contimg.cli.main import cli

if __name__ == "__main__":
    cli()
