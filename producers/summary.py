"""What replay shows: a progress bar per file while it runs, a summary table at the end."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from dnsentinel.producers.records import ParseStats
from dnsentinel.producers.replay import ReplaySummary
from dnsentinel.producers.sources import Source


class ProgressDisplay:
    """Bytes read of the (compressed) file drive the bar and ETA; lines/s is shown beside it."""

    def __init__(self, console: Console, enabled: bool = True) -> None:
        self.enabled = enabled
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[lines]:>11,} lines {task.fields[rate]:>9,.0f}/s {task.fields[events]:>11,} events"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled,
        )
        self._task: TaskID | None = None
        self._start = time.monotonic()

    def __enter__(self) -> "ProgressDisplay":
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.__exit__(*exc)

    def open_file(self, src: Source, fmt: str) -> None:
        if not self.enabled:
            return
        self._start = time.monotonic()
        self._task = self._progress.add_task(f"{src.name} ({fmt})", total=src.size, lines=0, rate=0.0, events=0)

    def update(self, src: Source, stats: ParseStats, produced: int) -> None:
        if self._task is None:
            return
        took = max(time.monotonic() - self._start, 1e-6)
        self._progress.update(self._task, completed=src.position(), lines=stats.lines,
                              rate=stats.lines / took, events=produced)


class DryRunSink:
    """Stands in for Kafka with --dry-run: shows the first events and counts the rest."""

    def __init__(self, console: Console, show: int = 5) -> None:
        self.console = console
        self.show = show
        self.sent = 0
        self.failed: dict[str, int] = {}

    def produce(self, key: bytes, value: str | bytes) -> None:
        if self.sent < self.show:
            self.console.print(f"[dim]key={key!r}[/] {value}", markup=True, highlight=False, soft_wrap=True)
        self.sent += 1

    def close(self) -> int:
        return 0


def print_summary(console: Console, summary: ReplaySummary, sink: Any) -> None:
    """One row per file, totals, skip reasons, the first malformed lines and delivery results."""
    table = Table(title="replay summary" + (" (interrupted)" if summary.interrupted else ""))
    for col in ("file", "format", "lines", "events", "unscorable", "skipped", "ignored"):
        table.add_column(col, justify="left" if col in ("file", "format") else "right")
    for f in summary.files:
        table.add_row(f.path, f.fmt or "-", f"{f.lines:,}", f"{f.produced:,}", f"{f.unscorable:,}",
                      f"{sum(f.skipped.values()):,}", f"{sum(f.ignored.values()):,}")
    console.print(table)
    rate = summary.lines / summary.duration_s if summary.duration_s > 0 else 0.0
    console.print(f"lines read {summary.lines:,}, events produced {summary.produced:,} "
                  f"in {summary.duration_s:.2f} s ({rate:,.0f} lines/s)")
    if summary.skipped:
        console.print("skipped by reason: " + ", ".join(f"{r} {n:,}" for r, n in summary.skipped.most_common()))
    if summary.ignored:
        console.print("ignored (not queries): " + ", ".join(f"{r} {n:,}" for r, n in summary.ignored.most_common()))
    for f in summary.files:
        if f.error:
            where = "" if f.error.startswith(f.path) else f"{f.path}: "
            console.print(f"[red]{where}{f.error}[/]", highlight=False)
        for example in f.examples:
            console.print(f"[yellow]{f.path} {example}[/]", highlight=False)
        for note in f.notes:
            console.print(f"[dim]{f.path}: {note}[/]")
    failed = getattr(sink, "failed", None) or {}
    if hasattr(sink, "topic"):
        total_failed = sum(failed.values())
        colour = "red" if total_failed else "green"
        console.print(f"[{colour}]delivered {sink.sent - total_failed:,} of {sink.sent:,} to {sink.topic}"
                      + (f"; failed: {dict(failed)}" if total_failed else "") + "[/]")
        if getattr(sink, "queue_full_waits", 0):
            console.print(f"[dim]local queue full {sink.queue_full_waits:,} times (waited and retried)[/]")
        if getattr(sink, "errors", None):
            console.print(f"[yellow]client errors: {dict(sink.errors)}[/]")
