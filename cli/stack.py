"""``dnsentinel stack up|down|status|logs``: the local stack (Kafka, Redis, Elasticsearch, CoreDNS).

The work is done by deploy/ scripts through :mod:`dnsentinel.cli.stackctl`;
this module is only the command line over it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from dnsentinel.errors import ServiceUnavailable

if TYPE_CHECKING:
    from rich.table import Table

SERVICE_HELP = "one of: redis, kafka, elasticsearch, coredns (cluster profile: redis, kafka, elasticsearch, coredns, apps)"
PROFILE_HELP = "single: one node of each service (default); cluster: 3-node Kafka/ES, Redis+Sentinels, TLS and users (deploy/cluster.sh)"
ProfileOpt = Annotated[str, typer.Option("--profile", help=PROFILE_HELP)]


def _is_cluster(profile: str) -> bool:
    """Whether ``--profile`` names the cluster profile; any other value than the two is a usage error."""
    from dnsentinel.cli.stackctl import PROFILES

    if profile not in PROFILES:
        raise typer.BadParameter(f"{profile!r}: use one of {', '.join(PROFILES)}", param_hint="--profile")
    return profile == "cluster"


def register(app: typer.Typer) -> None:
    """Add the ``stack`` group to the root CLI."""
    stack = typer.Typer(help="Run the local stack: Kafka, Redis, Elasticsearch, CoreDNS.", no_args_is_help=True)

    @stack.command()
    def up(
        only: Annotated[Optional[list[str]], typer.Option("--only", help=f"start only this service ({SERVICE_HELP}); repeatable")] = None,
        profile: ProfileOpt = "single",
    ) -> None:
        """Start the stack (idempotent: running services are left alone) and create the Kafka topics."""
        from dnsentinel.cli import stackctl
        from dnsentinel.settings import get_settings

        if _is_cluster(profile):
            from dnsentinel.cli.cluster import profile as cluster

            settings = get_settings()
            took = cluster.up(settings, tuple(only) if only else cluster.SERVICES)
            typer.echo(f"cluster is up after {took:.0f}s: `dnsentinel stack status --profile cluster` shows it; "
                       f"the product's processes read {cluster.settings_file(settings)}")
            return

        stackctl.up(get_settings(), tuple(only) if only else stackctl.SERVICES)
        typer.echo("stack is up: `dnsentinel stack status` shows it")

    @stack.command()
    def down(
        only: Annotated[Optional[list[str]], typer.Option("--only", help=f"stop only this service ({SERVICE_HELP}); repeatable")] = None,
        profile: ProfileOpt = "single",
    ) -> None:
        """Stop the stack; leaves no process and no listening port behind. Data stays in the state dir.

        Without --only, the applications started on top of it (workers, dashboard, load
        generator of `dnsentinel demo`) are stopped first.
        """
        from dnsentinel.cli import apps, stackctl
        from dnsentinel.settings import get_settings

        settings = get_settings()
        if _is_cluster(profile):
            from dnsentinel.cli.cluster import profile as cluster

            cluster.down(settings, tuple(only) if only else cluster.SERVICES)
            return
        if not only:
            stopped = apps.stop_all(settings)
            if stopped:
                typer.echo(f"stopped {', '.join(stopped)}")
        stackctl.down(settings, tuple(only) if only else stackctl.SERVICES)

    @stack.command()
    def status(profile: ProfileOpt = "single") -> None:
        """Show each service, its address, version and health (exit code 1 unless all are healthy).

        Warns about a running service that takes clients without auth on a non-loopback address.
        With --profile cluster: every node, and each certificate's expiry (warning under 30 days
        left, error once expired).
        """
        if _is_cluster(profile):
            _cluster_status()
            return
        from rich.console import Console

        from dnsentinel.cli import apps, stackctl
        from dnsentinel.settings import get_settings

        settings = get_settings()
        rows = stackctl.status(settings)
        table = _health_table(f"dnsentinel stack ({settings.stack.state_dir})", ("service", "address", "version"),
                              [((r.name, r.address, r.version), r.state, r.detail) for r in rows], "not-built")
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
        profile: ProfileOpt = "single",
        node: Annotated[Optional[str], typer.Option("--node", help="cluster profile: which node (e.g. sentinel-2, kafka-1)")] = None,
    ) -> None:
        """Print the last lines of a service's log."""
        from dnsentinel.cli import stackctl
        from dnsentinel.settings import get_settings

        if _is_cluster(profile):
            from dnsentinel.cli.cluster import profile as cluster

            rc = cluster.logs(get_settings(), service, node, lines, follow)
            if rc:
                raise typer.Exit(rc)
            return

        rc = stackctl.logs(get_settings(), service, lines, follow)
        if rc:
            raise typer.Exit(rc)

    app.add_typer(stack, name="stack")


def _health_table(title: str, columns: tuple[str, ...], rows: list[tuple[tuple[str, ...], str, str]],
                  not_yet: str) -> Table:
    """One row per service or node: its ``columns``, then its health (green when healthy, yellow when
    stopped or ``not_yet`` there, red otherwise) and the detail; both profiles' status tables."""
    from rich.table import Table

    colour = {"healthy": "green", "stopped": "yellow", not_yet: "yellow"}
    table = Table(title=title)
    for col in (*columns, "health", "detail"):
        table.add_column(col)
    for cells, state, detail in rows:
        table.add_row(*cells, f"[{colour.get(state, 'red')}]{state}[/]", detail)
    return table


def _cluster_status() -> None:
    """The cluster profile's table: one row per node, then the certificates; exit 1 unless all is well."""
    from datetime import datetime, timezone

    from rich.console import Console
    from rich.table import Table

    from dnsentinel.cli.cluster import profile as cluster
    from dnsentinel.settings import get_settings

    settings = get_settings()
    rows = cluster.status(settings)
    table = _health_table(f"dnsentinel cluster profile ({cluster.cluster_dir(settings)})", ("service", "node", "address"),
                          [((r.service, r.node, r.address), r.state, r.detail) for r in rows], "missing")
    console = Console()
    console.print(table)
    certs = cluster.certificates(settings)
    level_colour = {"ok": "green", "warn": "yellow", "error": "red"}
    if certs:
        ct = Table(title=f"certificates (warning under {cluster.CERT_WARN_DAYS} days left)")
        for col in ("certificate", "expires (UTC)", "days left", ""):
            ct.add_column(col)
        for c in sorted(certs, key=lambda c: c.not_after):
            when = datetime.fromtimestamp(c.not_after, timezone.utc).strftime("%Y-%m-%d %H:%M")
            ct.add_row(c.name, when, f"{c.days_left:.0f}", f"[{level_colour[c.level]}]{c.level}[/]")
        console.print(ct)
    for c in certs:
        if c.level == "warn":
            console.print(f"[yellow]warning:[/] certificate {c.name} expires in {c.days_left:.0f} days; "
                          f"renew it: delete it and its key from {cluster.cluster_dir(settings)}/pki, then stack up --profile cluster")
        elif c.level == "error":
            console.print(f"[red]error:[/] certificate {c.name} has expired; TLS clients refuse it: renew it "
                          f"(delete it and its key from {cluster.cluster_dir(settings)}/pki, then stack up --profile cluster)")
    if not all(r.healthy for r in rows) or any(c.level == "error" for c in certs):
        raise typer.Exit(1)


__all__ = ["register", "ServiceUnavailable"]
