"""``dnsentinel replay`` and ``dnsentinel loadgen`` (``report`` moved to the dashboard: dashboard/report.py).

Top-level imports stay light (typer, rich, and the parser registry for ``--format``, whose
modules import nothing heavy at the top): Kafka and Redis clients are imported inside the
commands so ``dnsentinel --help`` stays instant.
"""

from __future__ import annotations

import signal
from enum import Enum
from typing import Any, List, Literal, Optional

import typer
from rich.console import Console

from dnsentinel.producers.formats import FORMATS

console = Console(stderr=True)

FormatChoice = Literal[("auto", *FORMATS)]  # type: ignore[valid-type]
"""``--format``: auto or any registered parser (producers/formats.py)."""


class NameSource(str, Enum):
    auto = "auto"
    corpus = "corpus"
    synthetic = "synthetic"


class _Stop:
    """SIGINT/SIGTERM set a flag the loops check, so Ctrl-C still flushes and summarises."""

    def __init__(self) -> None:
        self.stopped = False
        self._old: dict[int, Any] = {}

    def __call__(self) -> bool:
        return self.stopped

    def __enter__(self) -> "_Stop":
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.stopped:  # second Ctrl-C: leave now
            raise KeyboardInterrupt
        self.stopped = True
        console.print("[yellow]stopping: flushing what was produced (Ctrl-C again to abort)[/]")

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def replay_cmd(
    files: List[str] = typer.Argument(..., help="Log files (gzip/xz/zstd read transparently); '-' reads stdin."),
    fmt: FormatChoice = typer.Option("auto", "--format", "-f", help="Log format; auto detects from the first lines."),
    max_speed: bool = typer.Option(False, "--max", help="As fast as possible (the default)."),
    rate: Optional[float] = typer.Option(None, "--rate", help="Produce at most N events per second."),
    speed: Optional[float] = typer.Option(None, "--speed", help="Follow the log's own timing, X times faster."),
    follow: bool = typer.Option(False, "--follow", help="Keep reading a growing (uncompressed) file, like tail -f."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Parse and encode, print a few events, produce nothing."),
    wait_verdicts: bool = typer.Option(False, "--wait-verdicts", help="After producing, wait until every replayed name has a verdict in Redis."),
    wait_timeout: float = typer.Option(300.0, "--wait-timeout", help="Seconds --wait-verdicts waits at most."),
    mapping: Optional[str] = typer.Option(None, "--map", help="jsonl/csv field mapping, e.g. 'name=query,client=src_ip,ts=time'."),
    topic: Optional[str] = typer.Option(None, "--topic", help="Topic to produce to (default: kafka.queries_topic)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Replay historical DNS logs into the query topic, keeping the logs' timestamps.

    Examples:
      dnsentinel replay dns.log.gz
      dnsentinel replay --format bind --speed 10 queries.log
      zcat dns.log.gz | dnsentinel replay - --wait-verdicts && dnsentinel report --since 1d
    """
    from dnsentinel.producers.mapping import parse_mapping
    from dnsentinel.producers.replay import ReplayOptions, replay
    from dnsentinel.producers.summary import ProgressDisplay, print_summary

    if sum(x is not None and x is not False for x in (rate, speed)) + max_speed > 1:
        raise typer.BadParameter("choose one of --max, --rate and --speed")
    if (rate is not None and rate <= 0) or (speed is not None and speed <= 0):
        raise typer.BadParameter("--rate and --speed must be positive")
    if follow and len(files) != 1:
        raise typer.BadParameter("--follow reads exactly one file")
    if dry_run and wait_verdicts:
        raise typer.BadParameter("--dry-run produces nothing to wait for")
    opts = ReplayOptions(fmt=fmt, rate=rate, speed=speed, follow=follow,
                         mapping=parse_mapping(mapping), collect_names=wait_verdicts)
    sink: Any
    if dry_run:
        from dnsentinel.producers.summary import DryRunSink

        sink = DryRunSink(console)
    else:
        from dnsentinel.producers.kafka_out import EventProducer

        sink = EventProducer(topic=topic)
        sink.check_reachable()
        if wait_verdicts:  # a wrong Redis password now, not after the whole replay
            from dnsentinel.redis_client import check_redis
            from dnsentinel.settings import get_settings

            check_redis(get_settings().redis)
    with _Stop() as stop, ProgressDisplay(console, enabled=progress and console.is_terminal) as display:
        summary = replay(files, sink, opts, progress=display.update, on_open=display.open_file, stop=stop)
    if not dry_run:
        with console.status("flushing to Kafka…"):
            sink.close()
    print_summary(console, summary, sink)
    failed = sum(getattr(sink, "failed", {}).values()) if not dry_run else 0
    if wait_verdicts and summary.names:
        _wait(summary.names, wait_timeout)
    if failed or any(f.error for f in summary.files):
        raise typer.Exit(1)


def _wait(names: set[str], timeout_s: float) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from dnsentinel.producers.wait import wait_for_verdicts
    from dnsentinel.verdict_cache.cache import VerdictCache

    cache = VerdictCache.from_settings()
    with Progress(TextColumn("waiting for verdicts"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("verdicts", total=len(names))
        missing = wait_for_verdicts(names, cache, timeout_s,
                                    on_progress=lambda done, total: bar.update(task, completed=done))
    if missing:
        sample = ", ".join(sorted(missing)[:5])
        console.print(f"[red]{len(missing)} of {len(names)} names have no verdict after {timeout_s:.0f} s[/] (e.g. {sample}); are the workers running?")
        raise typer.Exit(2)
    console.print(f"[green]all {len(names)} replayed names have a verdict[/]")


def loadgen_cmd(
    rate: float = typer.Option(1000.0, "--rate", help="Queries per second."),
    duration: float = typer.Option(60.0, "--duration", help="Seconds to run."),
    dga_share: float = typer.Option(0.02, "--dga-share", help="Share of DGA-like names (0..1)."),
    phishing_share: float = typer.Option(0.01, "--phishing-share", help="Share of phishing-like names."),
    flood_share: float = typer.Option(0.01, "--flood-share", help="Share of random-subdomain (water torture) names."),
    clients: int = typer.Option(500, "--clients", help="Number of distinct client addresses."),
    names: NameSource = typer.Option(NameSource.auto, "--names", help="corpus (models/data), synthetic, or auto."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed for a repeatable mix."),
    topic: Optional[str] = typer.Option(None, "--topic", help="Topic (default: kafka.queries_topic)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print a few events instead of producing."),
) -> None:
    """Produce realistic synthetic DNS traffic (source=loadgen) for benchmarks and demos.

    Examples:
      dnsentinel loadgen --rate 5000 --duration 60
      dnsentinel loadgen --rate 200 --duration 600 --dga-share 0.1 --flood-share 0.05
    """
    import time

    from dnsentinel.producers.encode import EventEncoder
    from dnsentinel.producers.loadgen import Mix, TrafficModel, generate

    if rate <= 0 or duration <= 0 or clients < 1:
        raise typer.BadParameter("--rate, --duration and --clients must be positive")
    try:
        model = TrafficModel(Mix(dga_share, phishing_share, flood_share), clients=clients, names=names.value, seed=seed)
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    encoder = EventEncoder("loadgen")
    skipped: dict[str, int] = {}
    if dry_run:
        from dnsentinel.producers.summary import DryRunSink

        sink: Any = DryRunSink(console, show=20)
    else:
        from dnsentinel.producers.kafka_out import EventProducer

        sink = EventProducer(topic=topic)
        sink.check_reachable()

    def emit(q: Any) -> None:
        enc = encoder.encode(q)
        if type(enc) is str:
            skipped[enc] = skipped.get(enc, 0) + 1
        else:
            sink.produce(enc.key, enc.value)

    console.print(f"loadgen: {rate:g}/s for {duration:g} s, names from {model.source}, "
                  f"dga {dga_share:g} phishing {phishing_share:g} flood {flood_share:g}")
    start = time.monotonic()
    with _Stop() as stop, console.status("producing…"):
        sent = generate(model, rate, duration, emit, stop=stop)
    if not dry_run:
        sink.close()
    took = time.monotonic() - start
    failed = sum(getattr(sink, "failed", {}).values())
    console.print(f"sent {sent:,} queries in {took:.1f} s ({sent / took:,.0f}/s); "
                  f"skipped {skipped or 0}; delivery failures {failed}")
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("replay")(replay_cmd)
    app.command("loadgen")(loadgen_cmd)
