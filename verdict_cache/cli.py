"""``dnsentinel lists``: import, show, export and remove vetted entries; export an RPZ zone.

Top-level imports stay light (typer only): Redis and rich load inside commands.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated, Optional

import typer

from dnsentinel.errors import DnsentinelError, ServiceUnavailable

lists_app = typer.Typer(
    name="lists",
    help="Vetted allow / block / honeypot lists in the Redis verdict cache.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

Action = Annotated[str, typer.Option("--as", help="allow, block or honeypot.", show_default=False)]
By = Annotated[Optional[str], typer.Option("--by", help="Who is making the change (default: your login name).")]


def register(app: typer.Typer) -> None:
    app.add_typer(lists_app, name="lists")


def _who(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except Exception:  # no login name in a container: say so instead of guessing
        raise DnsentinelError("cannot tell who you are; pass --by NAME") from None


def _cache():
    """A VerdictCache on the configured Redis; an unreachable Redis is one clear error."""
    from dnsentinel.redis_client import check_redis
    from dnsentinel.settings import get_settings
    from dnsentinel.verdict_cache.cache import VerdictCache

    settings = get_settings()
    cache = VerdictCache.from_settings(settings)
    check_redis(settings.redis, cache.client)
    return cache


def _check_action(action: str | None, allow_none: bool = False) -> None:
    from dnsentinel.verdict_cache.policy import VETTED_ACTIONS

    if action is None and allow_none:
        return
    if action not in VETTED_ACTIONS:
        raise typer.BadParameter(f"{action!r} is not one of {', '.join(VETTED_ACTIONS)}")


@lists_app.command("import")
def import_cmd(
    files: Annotated[list[Path], typer.Argument(help="List files: plain, hosts or Adblock; .gz/.xz read transparently.")],
    action: Action,
    by: By = None,
    note: Annotated[Optional[str], typer.Option(help="Why (stored with every entry, ≤ 512 characters).")] = None,
    show_bad: Annotated[int, typer.Option(help="How many bad lines to show per file (all are counted).")] = 10,
    replace: Annotated[bool, typer.Option(help="Overwrite entries vetted with another action (default: keep them).")] = False,
) -> None:
    """Import domain lists as vetted [bold]allow[/], [bold]block[/] or [bold]honeypot[/] entries.

    Examples: [bold]dnsentinel lists import hosts.txt.gz --as block --note "StevenBlack hosts"[/]
    · [bold]dnsentinel lists import easylist.txt --as block[/] (only [cyan]||domain^[/] rules)
    """
    import redis
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn
    from rich.table import Table

    from dnsentinel.verdict_cache.lists import import_list

    _check_action(action)
    for f in files:
        if not f.is_file():
            raise DnsentinelError(f"{f}: no such file")
    who = _who(by)
    cache = _cache()
    console = Console()
    reports = []
    for f in files:
        with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                      TransferSpeedColumn(), TimeRemainingColumn(), console=console, transient=True) as bar:
            task = bar.add_task(f.name, total=f.stat().st_size)

            def progress(done: int, total: int, task=task, bar=bar) -> None:
                bar.update(task, completed=done, total=total)

            try:
                report = import_list(cache, f, action, who, note, max_examples=show_bad, progress=progress,
                                     replace=replace)
            except ValueError as exc:
                raise DnsentinelError(str(exc)) from None
            except redis.RedisError as exc:
                done = ", ".join(f"{Path(r.file).name}: {r.added + r.changed} written" for r in reports) or "none"
                raise ServiceUnavailable(f"Redis failed while importing {f} ({exc}); files finished before: {done}. "
                                         "Importing a file again is safe (unchanged entries are skipped).") from None
        reports.append(report)
        for bad in report.examples:
            console.print(f"[yellow]{bad.file}:{bad.line}[/]: {bad.reason}: {bad.detail}  [dim]{bad.text}[/]",
                          highlight=False, markup=True)
        if report.bad_total > len(report.examples):
            console.print(f"[yellow]… {report.bad_total - len(report.examples)} more bad lines in {f}[/]")

    table = Table(title=f"lists import --as {action}")
    for col in ("file", "lines", "entries", "added", "changed", "same", "kept", "dup", "skip", "bad", "s"):
        table.add_column(col, justify="left" if col == "file" else "right")
    for r in reports:
        table.add_row(Path(r.file).name, str(r.lines), str(r.entries), str(r.added), str(r.changed), str(r.unchanged),
                      str(r.conflicts), str(r.duplicates), str(r.blank_or_comment), str(r.bad_total), f"{r.seconds:.1f}")
    console.print(table)
    if any(r.conflicts for r in reports):
        console.print("[yellow]kept[/]: entries already vetted with another action were left as they are (--replace)")
    bad_reasons = sum((r.bad for r in reports), start=type(reports[0].bad)()) if reports else {}
    if bad_reasons:
        console.print("bad lines by reason: " + ", ".join(f"{k}={v}" for k, v in sorted(bad_reasons.items())))


@lists_app.command("show")
def show_cmd(
    name: Annotated[Optional[str], typer.Argument(help="A name: show its decision and the entries that cover it.")] = None,
    action: Annotated[Optional[str], typer.Option("--action", help="Only allow, block or honeypot entries.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many entries (0: all).")] = 100,
) -> None:
    """Show vetted entries, or what decides one name.

    Examples: [bold]dnsentinel lists show --action block[/] · [bold]dnsentinel lists show www.example.com[/]
    """
    import time

    from rich.console import Console
    from rich.table import Table

    from dnsentinel.verdict_cache.names import InvalidName, normalize
    from dnsentinel.verdict_cache.policy import candidates

    _check_action(action, allow_none=True)
    cache = _cache()
    console = Console()

    def when(at: int) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.gmtime(at))

    if name is not None:
        try:
            n = normalize(name)
        except InvalidName as exc:
            raise DnsentinelError(f"{name!r} is not a valid name: {exc}") from None
        records = cache.get_vetted(candidates(n.name))
        verdict = cache.get_verdicts([n.name]).get(n.name)
        console.print(f"[bold]{n.name}[/] ({n.kind}, registrable {n.registrable or '-'}): "
                      f"decision [bold]{cache.effective_decision(n.name)}[/]")
        if verdict:
            console.print(f"model verdict: {verdict.label} {verdict.score:.4f} by {verdict.model} at {when(verdict.ts)}")
        if action:
            records = {k: v for k, v in records.items() if v.action == action}
    else:
        records = cache.list_vetted(action)
    table = Table(title=f"vetted entries ({len(records)})")
    for col in ("name", "action", "by", "at (UTC)", "note"):
        table.add_column(col)
    shown = sorted(records.items()) if limit <= 0 else sorted(records.items())[:limit]
    for entry, rec in shown:
        table.add_row(entry, rec.action, rec.by, when(rec.at), rec.note or "")
    console.print(table)
    if len(shown) < len(records):
        console.print(f"… {len(records) - len(shown)} more (use --limit 0)")


@lists_app.command("export")
def export_cmd(
    file: Annotated[Path, typer.Argument(help="Where to write ('-' for standard output).")],
    action: Annotated[Optional[str], typer.Option("--action", help="Only allow, block or honeypot entries.")] = None,
    plain: Annotated[bool, typer.Option(help="Names only, one per line (re-importable with lists import).")] = False,
) -> None:
    """Export vetted entries as TSV (name, action, by, at, note) or a plain list.

    Examples: [bold]dnsentinel lists export vetted.tsv[/] · [bold]dnsentinel lists export blocks.txt --action block --plain[/]
    """
    import sys

    from dnsentinel.verdict_cache.lists import export_vetted, write_text_atomically

    _check_action(action, allow_none=True)
    records = _cache().list_vetted(action)
    if str(file) == "-":
        export_vetted(records, sys.stdout, plain)
        return
    write_text_atomically(file, lambda fh: export_vetted(records, fh, plain))
    typer.echo(f"wrote {len(records)} entries to {file}")


@lists_app.command("remove")
def remove_cmd(
    names: Annotated[list[str], typer.Argument(help="Entries to remove (example.com, *.example.com).")],
    by: By = None,
) -> None:
    """Remove vetted entries (each removal is logged with who made it)."""
    from dnsentinel.verdict_cache.names import InvalidName

    who = _who(by)
    cache = _cache()
    missing = 0
    for name in names:
        try:
            before = cache.remove_vetted(name, who)
        except (InvalidName, ValueError) as exc:
            typer.echo(f"{name}: not removed: {exc}", err=True)
            missing += 1
            continue
        if before is None:
            typer.echo(f"{name}: not a vetted entry", err=True)
            missing += 1
        else:
            typer.echo(f"{name}: removed ({before.action}, set by {before.by})")
    if missing:
        raise typer.Exit(1)


@lists_app.command("export-rpz")
def export_rpz_cmd(
    file: Annotated[Path, typer.Argument(help="Zone file to write ('-' for standard output).")],
    zone: Annotated[Optional[str], typer.Option(help="Zone name (default: rpz.zone).")] = None,
    include_malicious: Annotated[bool, typer.Option(help="Include names with a malicious model verdict.")] = True,
) -> None:
    """Write vetted decisions and malicious verdicts as an RPZ zone (BIND, Unbound, PowerDNS, Knot).

    Blocks and malicious names: NXDOMAIN ([cyan]CNAME .[/]) or sinkhole addresses (rpz.block_action);
    honeypots: local-data A/AAAA; allows: [cyan]rpz-passthru.[/]; subdomains follow SPEC §1.3.
    Example: [bold]dnsentinel lists export-rpz /etc/bind/rpz.dnsentinel.local.zone[/]
    """
    import sys

    from dnsentinel.settings import get_settings
    from dnsentinel.verdict_cache.lists import export_rpz, write_text_atomically

    cfg = get_settings().rpz
    cache = _cache()
    vetted = {name: rec.action for name, rec in cache.list_vetted().items()}
    malicious = [v.name for v in cache.iter_verdicts("malicious")] if include_malicious else []

    def write(fh):
        return export_rpz(vetted, malicious, fh, zone=zone or cfg.zone, ttl=cfg.ttl_s, nameserver=cfg.nameserver,
                          block_action=cfg.block_action,
                          sinkhole=(str(cfg.sinkhole_ipv4), str(cfg.sinkhole_ipv6)),
                          honeypot=(str(cfg.honeypot_ipv4), str(cfg.honeypot_ipv6)))

    if str(file) == "-":
        write(sys.stdout)
        return
    report = write_text_atomically(file, write)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report.owners.items())) or "nothing"
    typer.echo(f"wrote {report.records} records to {file} (owners: {counts})")
    if report.skipped_too_long:
        typer.echo(f"skipped {report.skipped_too_long} names too long for the zone", err=True)
