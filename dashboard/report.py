"""``dnsentinel report``: which clients queried malicious or uncertain names, and when.

Answered by Elasticsearch, never by pulling rows: a composite aggregation over the per-minute
activity indices (SPEC §4), bucketed by (client, name), with first/last minute and summed
counts per bucket. Composite aggregations page with ``after_key``, so a report over millions of
activity documents stays a few requests of at most ``PAGE`` buckets each.

The command is registered from here (``register``, listed in cli/main.py); like every CLI
module, its top-level imports stay light: the Elasticsearch client is imported when it runs.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any, Iterator, Optional

import typer

from dnsentinel.verdict_cache.es_schema import BLOCKED, CLIENT_ADDRESS, COUNT, DECISION, LABEL, Q_NAME, TIMESTAMP
from dnsentinel.verdict_cache.vocabulary import BLOCKING_DECISIONS, FLAGGED_LABELS, VETTED_ACTIONS

PAGE = 1_000
FLAGGED_DECISIONS: tuple[str, ...] = (*FLAGGED_LABELS, *(a for a in VETTED_ACTIONS if a in BLOCKING_DECISIONS))
"""Decisions an analyst looks at: a flagged label, or a vetted block or honeypot."""


@dataclass
class ReportRow:
    client: str
    name: str
    label: str
    first_seen: int
    last_seen: int
    count: int
    blocked: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "client": self.client, "name": self.name, "label": self.label,
            "first_seen": _iso(self.first_seen), "last_seen": _iso(self.last_seen),
            "count": self.count, "blocked": self.blocked,
        }


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).isoformat(timespec="seconds")


def build_query(since_ms: int | None, until_ms: int | None) -> dict[str, Any]:
    """The filter: flagged by label or decision, within the time range (on the window's minute, ``@timestamp``)."""
    filters: list[dict[str, Any]] = [{
        "bool": {
            "should": [
                {"terms": {LABEL: list(FLAGGED_LABELS)}},
                {"terms": {DECISION: list(FLAGGED_DECISIONS)}},
            ],
            "minimum_should_match": 1,
        }
    }]
    if since_ms is not None or until_ms is not None:
        rng: dict[str, Any] = {"format": "epoch_millis"}
        if since_ms is not None:
            rng["gte"] = since_ms
        if until_ms is not None:
            rng["lte"] = until_ms
        filters.append({"range": {TIMESTAMP: rng}})
    return {"bool": {"filter": filters}}


def build_aggs(after: dict[str, Any] | None = None) -> dict[str, Any]:
    composite: dict[str, Any] = {
        "size": PAGE,
        "sources": [{"client": {"terms": {"field": CLIENT_ADDRESS}}}, {"name": {"terms": {"field": Q_NAME}}}],
    }
    if after:
        composite["after"] = after
    return {
        "pairs": {
            "composite": composite,
            "aggs": {
                "first": {"min": {"field": TIMESTAMP}},
                "last": {"max": {"field": TIMESTAMP}},
                "count": {"sum": {"field": COUNT}},
                "blocked": {"sum": {"field": BLOCKED}},
                "label": {"terms": {"field": LABEL, "size": 1}},
                "decision": {"terms": {"field": DECISION, "size": 1}},
            },
        }
    }


def report_rows(es: Any, index: str, since_ms: int | None = None, until_ms: int | None = None) -> Iterator[ReportRow]:
    """Every (client, name) bucket, page by page."""
    query = build_query(since_ms, until_ms)
    after: dict[str, Any] | None = None
    while True:
        resp = es.search(index=index, size=0, query=query, aggs=build_aggs(after),
                         ignore_unavailable=True, allow_no_indices=True)
        aggs = resp.get("aggregations") or {}
        pairs = aggs.get("pairs") or {}
        buckets = pairs.get("buckets") or []
        for b in buckets:
            label_buckets = b["label"]["buckets"] or b["decision"]["buckets"]
            yield ReportRow(
                client=b["key"]["client"], name=b["key"]["name"],
                label=label_buckets[0]["key"] if label_buckets else "",
                first_seen=int(b["first"]["value"] or 0), last_seen=int(b["last"]["value"] or 0),
                count=int(b["count"]["value"] or 0), blocked=int(b["blocked"]["value"] or 0),
            )
        after = pairs.get("after_key")
        if not buckets or not after:
            return


def parse_when(text: str | None) -> int | None:
    """``--since``/``--until``: ISO 8601 (UTC unless a zone is given), epoch s/ms/µs, or ``2h``/``3d`` ago."""
    if text is None:
        return None
    t = text.strip()
    units = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    if len(t) >= 2 and t[-1] in units and t[:-1].isdigit():
        return int((time.time() - int(t[:-1]) * units[t[-1]]) * 1000)
    try:
        num = float(t)
    except ValueError:
        when = dt.datetime.fromisoformat(t)  # raises ValueError for anything else
        return int((when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)).timestamp() * 1000)
    if not math.isfinite(num):
        raise ValueError(f"{t!r} is not a time")
    # epoch seconds, milliseconds or microseconds: their magnitudes do not overlap for real dates
    return int(num / 1000) if num > 1e14 else int(num) if num > 1e11 else int(num * 1000)


class ReportFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


def report_cmd(
    since: Optional[str] = typer.Option(None, "--since", help="Start: ISO time, epoch, or '2h'/'3d' ago."),
    until: Optional[str] = typer.Option(None, "--until", help="End: ISO time, epoch, or '1h' ago."),
    out: ReportFormat = typer.Option(ReportFormat.table, "--format", help="table, csv or json."),
) -> None:
    """Which clients queried malicious or uncertain names: first/last time and counts.

    Examples:
      dnsentinel report --since 1d
      dnsentinel report --since 2022-03-09 --until 2022-03-10 --format csv > infected.csv
    """
    from elasticsearch import Elasticsearch

    from dnsentinel.errors import ServiceUnavailable
    from dnsentinel.settings import get_settings
    from dnsentinel.verdict_cache.es_schema import index_name

    try:
        since_ms, until_ms = parse_when(since), parse_when(until)
    except ValueError as exc:
        raise typer.BadParameter(f"--since/--until: {exc}") from exc
    es = Elasticsearch(**get_settings().elasticsearch.client_kwargs())  # type: ignore[arg-type]
    try:
        rows = list(report_rows(es, index_name("activity"), since_ms, until_ms))
    except Exception as exc:
        if type(exc).__name__ in ("ConnectionError", "ConnectionTimeout"):
            raise ServiceUnavailable(f"Elasticsearch unreachable: {exc}") from exc
        raise
    if out is ReportFormat.json:
        _write_json(rows)
    elif out is ReportFormat.csv:
        _write_csv(rows)
    else:
        _print_table(rows)


def _write_json(rows: list[ReportRow]) -> None:
    import json
    import sys

    json.dump([r.as_dict() for r in rows], sys.stdout, indent=1)
    sys.stdout.write("\n")


def _write_csv(rows: list[ReportRow]) -> None:
    import csv
    import sys

    writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0].as_dict()) if rows else ["client", "name"])
    writer.writeheader()
    for r in rows:
        writer.writerow(r.as_dict())


def _print_table(rows: list[ReportRow]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"clients querying malicious or uncertain names ({len(rows)} pairs)")
    for col in ("client", "name", "label", "first seen (UTC)", "last seen (UTC)", "queries", "blocked"):
        table.add_column(col, justify="right" if col in ("queries", "blocked") else "left",
                         overflow="fold", min_width={"client": 15, "name": 24}.get(col))
    for r in sorted(rows, key=lambda r: (-r.count, r.client, r.name)):
        d = r.as_dict()
        first, last = (d[k][:19].replace("T", " ") for k in ("first_seen", "last_seen"))  # UTC
        table.add_row(r.client, r.name, r.label, first, last, str(r.count), str(r.blocked))
    console = Console()
    console.width = max(console.width, 130)  # a report row is never cut; narrow terminals wrap
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("report")(report_cmd)
