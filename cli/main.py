"""Entry point of the ``dnsentinel`` console script.

Each component owns its commands in its own ``cli.py`` and exposes
``register(app)``; this module only composes them, so the CLI sits on top of
the import graph. Component ``cli.py`` modules keep their top-level imports
light (no TensorFlow, no Kafka clients) so ``dnsentinel --help`` is instant.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer
from rich.console import Console

from dnsentinel.errors import DnsentinelError

app = typer.Typer(
    name="dnsentinel",
    help="DNS threat detection: CoreDNS plugin, Kafka, Faust workers, a character CNN, Redis verdicts.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)

# Components that contribute commands, bottom of the import graph first.
_COMPONENTS = (
    "dnsentinel.cli.stack",
    "dnsentinel.verdict_cache.cli",
    "dnsentinel.models.cli",
    "dnsentinel.producers.cli",
    "dnsentinel.stream_processor.cli",
    "dnsentinel.dashboard.cli",
    "dnsentinel.dashboard.report",
    "dnsentinel.dashboard.alerts",
    "dnsentinel.cli.bench",
    "dnsentinel.cli.demo",
)

err_console = Console(stderr=True)

# TensorFlow's C++ start-up chatter (no CUDA here, oneDNN notes) is noise on a terminal.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _register_all() -> None:
    for module_name in _COMPONENTS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # component not built yet
                continue
            raise
        module.register(app)


@app.callback()
def _root() -> None:
    """DNS threat detection: CoreDNS plugin, Kafka, Faust workers, a character CNN, Redis verdicts."""


@app.command()
def version() -> None:
    """Print the dnsentinel version."""
    from dnsentinel import __version__

    typer.echo(__version__)


_register_all()


def main() -> None:
    """Run the CLI; expected failures become one red line and exit code 1."""
    try:
        app()
    except DnsentinelError as exc:
        # soft_wrap: one line in a log file too (rich would fold it at 80 columns off a terminal)
        err_console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
