"""``dnsentinel dashboard``, ``dnsentinel users …`` and ``dnsentinel audit``.

The dashboard runs the Streamlit app headless, telemetry off, and refuses to listen beyond
loopback while no user exists. ``users`` changes accounts through the same audited
functions as the Users page (``actions.py``); whoever runs it holds the settings' Redis
and Elasticsearch credentials, so it acts as an admin named ``cli:<os user>``.
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

APP = Path(__file__).resolve().parent / "app.py"
ADD_USER_HINT = "dnsentinel users add NAME --role admin"


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


def streamlit_argv(port: int, address: str) -> list[str]:
    """The ``streamlit run`` command line (headless, no usage stats, no file watcher)."""
    return [sys.executable, "-m", "streamlit", "run", str(APP),
            "--server.headless", "true", "--server.port", str(port), "--server.address", address,
            "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
            "--global.developmentMode", "false", "--client.toolbarMode", "minimal"]


def _accounts() -> Any:
    """The dashboard's accounts over the configured Redis; a one-line error when it is down."""
    from dnsentinel.dashboard.auth import Accounts
    from dnsentinel.redis_client import check_redis
    from dnsentinel.settings import get_settings

    settings = get_settings()
    accounts = Accounts.from_settings(settings)
    check_redis(settings.redis, accounts.users.client)
    return accounts


def _services() -> tuple[Any, Any]:
    """``(Accounts, Store)``: what a user change needs, the audit index checked before any change."""
    from elasticsearch import Elasticsearch

    from dnsentinel.dashboard import audit
    from dnsentinel.dashboard.store import Store
    from dnsentinel.errors import ServiceUnavailable
    from dnsentinel.settings import get_settings, redact_url

    accounts, settings = _accounts(), get_settings()
    es = Elasticsearch(**settings.elasticsearch.client_kwargs())  # type: ignore[arg-type]
    try:
        audit.ensure_index(es, settings.elasticsearch.index_prefix)  # no change goes unaudited
    except Exception as exc:
        raise ServiceUnavailable(f"Elasticsearch at {redact_url(settings.elasticsearch.url)} (audit index): {exc}") from None
    return accounts, Store(es, settings.elasticsearch.index_prefix)


def dashboard(
    port: Annotated[Optional[int], typer.Option(help="Port to listen on (default: dashboard.port).")] = None,
    address: Annotated[Optional[str], typer.Option(help="Address to bind (default: dashboard.address).")] = None,
) -> None:
    """Run the analysts' dashboard.

    Beyond loopback it needs a user first: [bold]dnsentinel users add NAME --role admin[/].

    Examples: [bold]dnsentinel dashboard[/] · [bold]dnsentinel dashboard --port 8600 --address 10.0.0.5[/]
    """
    from dnsentinel.dashboard.access import is_loopback
    from dnsentinel.errors import ConfigError
    from dnsentinel.settings import get_settings

    cfg = get_settings().dashboard
    port, address = port or cfg.port, address or cfg.address
    accounts = _accounts()  # a wrong Redis password or certificate is one line here, not a broken login page
    if not is_loopback(address) and not accounts.users.any():
        raise ConfigError(f"no dashboard user exists, and the demo login works on loopback only: "
                          f"add one with `{ADD_USER_HINT}` before listening on {address}")
    typer.echo(f"dashboard on http://{address}:{port}")
    env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    sys.stdout.flush()
    # exec, not a child: the process a supervisor started (and signals) *is* the server, so stopping
    # it stops Streamlit instead of orphaning it on the port (deploy/cluster/apps.sh, systemd).
    argv = streamlit_argv(port, address)
    os.execve(argv[0], argv, env)


# -- users ----------------------------------------------------------------------------------
def _actor() -> Any:
    import getpass
    import socket

    from dnsentinel.dashboard.access import Actor

    return Actor(f"cli:{getpass.getuser()}", "admin", socket.gethostname())


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


NAME_ARG = Annotated[str, typer.Argument(help="user name: letters, digits, '.', '_', '@', '-'")]
STDIN_OPT = Annotated[bool, typer.Option("--password-stdin", help="read the password from the first line of stdin")]
ROLE_HELP = "viewer (reads), analyst (+ vetting), admin (+ training, promote, rollback, users)"
users_app = typer.Typer(help="Dashboard users and roles (stored in Redis; every change is audited).",
                        no_args_is_help=True)


@users_app.command("add")
def users_add(name: NAME_ARG, role: Annotated[str, typer.Option("--role", help=ROLE_HELP)],
              password_stdin: STDIN_OPT = False) -> None:
    """Add a user (bcrypt hash in Redis).

    Examples: [bold]dnsentinel users add alice --role analyst[/] ·
    [bold]printf '%s\\n' "$PW" | dnsentinel users add bob --role admin --password-stdin[/]
    """
    from dnsentinel.dashboard import actions

    accounts, store = _services()
    user = actions.add_user(_actor(), store, accounts, name, _password(password_stdin), role)
    typer.echo(f"added {user.name} ({user.role})")


@users_app.command("list")
def users_list(out: Annotated[Format, typer.Option("--format", help="table, csv or json")] = Format.table) -> None:
    """List users: name, role, source (redis or settings), created and changed (no hashes)."""
    rows = [u.public() for u in _accounts().users.all()]
    _print(rows, ("name", "role", "source", "created_at", "created_by", "changed_at", "changed_by"), out, "users")


@users_app.command("remove")
def users_remove(name: NAME_ARG) -> None:
    """Remove a user; their sessions end at once. Example: [bold]dnsentinel users remove alice[/]"""
    from dnsentinel.dashboard import actions

    accounts, store = _services()
    user = actions.remove_user(_actor(), store, accounts, name)
    typer.echo(f"removed {user.name}")


@users_app.command("passwd")
def users_passwd(name: NAME_ARG, password_stdin: STDIN_OPT = False) -> None:
    """Set a new password; the user's open sessions end. Example: [bold]dnsentinel users passwd alice[/]"""
    from dnsentinel.dashboard import actions

    accounts, store = _services()
    actions.set_password(_actor(), store, accounts, name, _password(password_stdin))
    typer.echo(f"new password for {name}")


@users_app.command("role")
def users_role(name: NAME_ARG, role: Annotated[str, typer.Argument(help=ROLE_HELP)]) -> None:
    """Change a user's role (applies at their next click). Example: [bold]dnsentinel users role alice admin[/]"""
    from dnsentinel.dashboard import actions

    accounts, store = _services()
    before = accounts.users.get(name)
    user = actions.set_role(_actor(), store, accounts, name, role)
    typer.echo(f"{user.name}: {before.role if before else '?'} -> {user.role}")


# -- audit ----------------------------------------------------------------------------------
def audit_cmd(
    since: Annotated[Optional[str], typer.Option("--since", help="Start: ISO time, epoch, or '2h'/'3d' ago.")] = "1d",
    until: Annotated[Optional[str], typer.Option("--until", help="End: ISO time, epoch, or '1h' ago.")] = None,
    who: Annotated[str, typer.Option("--who", help="only this user (cli:<os user> for the CLI)")] = "",
    action: Annotated[Optional[list[str]], typer.Option("--action", help="only this action; repeatable")] = None,
    target: Annotated[str, typer.Option("--target", help="target contains this text (a name, model:, user:)")] = "",
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="newest N entries")] = 1000,
    out: Annotated[Format, typer.Option("--format", help="table, csv or json")] = Format.table,
) -> None:
    """Print the audit trail: who did what, when, from where, before and after.

    Examples: [bold]dnsentinel audit --since 1d[/] · [bold]dnsentinel audit --since 7d --action login_failed --action lockout[/] ·
    [bold]dnsentinel audit --since 2026-12-01 --who alice --format csv > alice.csv[/]
    """
    from elasticsearch import Elasticsearch

    from dnsentinel.dashboard import audit
    from dnsentinel.dashboard.output import parse_when
    from dnsentinel.errors import ServiceUnavailable
    from dnsentinel.settings import get_settings, redact_url

    unknown = sorted(set(action or ()) - set(audit.ACTIONS))
    if unknown:
        raise typer.BadParameter(f"{', '.join(unknown)}: expected one of {', '.join(audit.ACTIONS)}", param_hint="--action")
    try:
        since_ms, until_ms = parse_when(since), parse_when(until)
    except ValueError as exc:
        raise typer.BadParameter(f"--since/--until: {exc}") from exc
    settings = get_settings()
    es = Elasticsearch(**settings.elasticsearch.client_kwargs())  # type: ignore[arg-type]
    try:
        rows = audit.search(es, settings.elasticsearch.index_prefix, size=limit, since_ms=since_ms, until_ms=until_ms,
                            who=who, actions=tuple(action or ()), target=target)
    except Exception as exc:
        raise ServiceUnavailable(f"Elasticsearch at {redact_url(settings.elasticsearch.url)}: {exc}") from None
    _print(rows, audit.COLUMNS, out, "audit entries, newest first")


def _print(rows: list[dict], columns: tuple[str, ...], out: Format, title: str) -> None:
    """Rows as a rich table, CSV or JSON on stdout."""
    import csv
    import json

    if out is Format.json:
        typer.echo(json.dumps(rows, indent=1, default=str))
    elif out is Format.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{len(rows)} {title}")
        for col in columns:
            table.add_column(col, overflow="fold")
        for r in rows:
            table.add_row(*(str(r.get(c, "")) for c in columns))
        Console(width=max(Console().width, 140)).print(table)


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard)
    app.add_typer(users_app, name="users")
    app.command("audit")(audit_cmd)
