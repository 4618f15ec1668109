"""``dnsentinel stack up|down|status|logs``: the local stack (Kafka, Redis, Elasticsearch, CoreDNS).

The work is done by deploy/ scripts through :mod:`dnsentinel.cli.stackctl`;
this module is only the command line over it.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from dnsentinel.errors import ServiceUnavailable

SERVICE_HELP = "one of: redis, kafka, elasticsearch, coredns"


def register(app: typer.Typer) -> None:
    """Add the ``stack`` group to the root CLI."""
    stack = typer.Typer(help="Run the local stack: Kafka, Redis, Elasticsearch, CoreDNS.", no_args_is_help=True)

    @stack.command()
    def up(
        only: Annotated[Optional[list[str]], typer.Option("--only", help=f"start only this service ({SERVICE_HELP}); repeatable")] = None,
    ) -> None:
        """Start the stack (idempotent: running services are left alone) and create the Kafka topics."""
        from dnsentinel.cli import stackctl
        from dnsentinel.settings import get_settings

        stackctl.up(get_settings(), tuple(only) if only else stackctl.SERVICES)
        typer.echo("stack is up: `dnsentinel stack status` shows it")

    @stack.command()
    def down(
        only: Annotated[Optional[list[str]], typer.Option("--only", help=f"stop only this service ({SERVICE_HELP}); repeatable")] = None,
    ) -> None:
        """Stop the stack; leaves no process and no listening port behind. Data stays in the state dir.

        Without --only, the applications started on top of it (workers, dashboard, load
        generator of `dnsentinel demo`) are stopped first.
        """
        from dnsentinel.cli import apps, stackctl
        from dnsentinel.settings import get_settings

        settings = get_settings()
        if not only:
            stopped = apps.stop_all(settings)
            if stopped:
                typer.echo(f"stopped {', '.join(stopped)}")
        stackctl.down(settings, tuple(only) if only else stackctl.SERVICES)

    @stack.command()
    def status() -> None:
        """Show each service, its address, version and health (exit code 1 unless all are healthy).

        Warns about a running service that takes clients without auth on a non-loopback address.
        """
        from rich.console import Console
        from rich.table import Table

        from dnsentinel.cli import apps, stackctl
        from dnsentinel.settings import get_settings

        settings = get_settings()
        rows = stackctl.status(settings)
        colour = {"healthy": "green", "stopped": "yellow", "not-built": "yellow"}
        table = Table(title=f"dnsentinel stack ({settings.stack.state_dir})")
        for col in ("service", "address", "version", "health", "detail"):
            table.add_column(col)
        for row in rows:
            table.add_row(row.name, row.address, row.version, f"[{colour.get(row.state, 'red')}]{row.state}[/]", row.detail)
        for name, pid in apps.running(settings).items():
            table.add_row(name, "", "", "[green]running[/]", f"pid {pid}")
        console = Console()
        console.print(table)
        for line in stackctl.exposure_warnings(settings, [r.name for r in rows if r.healthy]):
            console.print(f"[yellow]warning:[/] {line}")
        if not all(r.healthy for r in rows):
            raise typer.Exit(1)

    @stack.command()
    def logs(
        service: Annotated[str, typer.Argument(help=SERVICE_HELP)],
        lines: Annotated[int, typer.Option("-n", "--lines", help="how many last lines")] = 50,
        follow: Annotated[bool, typer.Option("-f", "--follow", help="keep printing new lines")] = False,
    ) -> None:
        """Print the last lines of a service's log."""
        from dnsentinel.cli import stackctl
        from dnsentinel.settings import get_settings

        rc = stackctl.logs(get_settings(), service, lines, follow)
        if rc:
            raise typer.Exit(rc)

    app.add_typer(stack, name="stack")


__all__ = ["register", "ServiceUnavailable"]
