"""``dnsentinel report``: which clients queried malicious or uncertain names, and when.

Answered by Elasticsearch, never by pulling rows: a composite aggregation over the per-minute
activity indices (SPEC §4), bucketed by (client, name), with first/last minute and summed
counts per bucket. Composite aggregations page with ``after_key``, so a report over millions of
activity documents stays a few requests of at most ``PAGE`` buckets each.

The command is registered from here (``register``, listed in cli/main.py); like every CLI
module, its top-level imports stay light: the Elasticsearch client is imported when it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional

import typer

from dnsentinel.dashboard.output import OutputFormat, elasticsearch_errors, emit, iso_utc, parse_when, table_time
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
            "first_seen": iso_utc(self.first_seen), "last_seen": iso_utc(self.last_seen),
            "count": self.count, "blocked": self.blocked,
        }


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


def report_cmd(
    since: Optional[str] = typer.Option(None, "--since", help="Start: ISO time, epoch, or '2h'/'3d' ago."),
    until: Optional[str] = typer.Option(None, "--until", help="End: ISO time, epoch, or '1h' ago."),
    out: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, csv or json."),
) -> None:
    """Which clients queried malicious or uncertain names: first/last time and counts.

    Examples:
      dnsentinel report --since 1d
      dnsentinel report --since 2022-03-09 --until 2022-03-10 --format csv > infected.csv
    """
    from elasticsearch import Elasticsearch

    from dnsentinel.settings import get_settings
    from dnsentinel.verdict_cache.es_schema import index_name

    try:
        since_ms, until_ms = parse_when(since), parse_when(until)
    except ValueError as exc:
        raise typer.BadParameter(f"--since/--until: {exc}") from exc
    es = Elasticsearch(**get_settings().elasticsearch.client_kwargs())  # type: ignore[arg-type]
    with elasticsearch_errors():
        rows = list(report_rows(es, index_name("activity"), since_ms, until_ms))
    columns = list(rows[0].as_dict()) if rows else ["client", "name"]
    emit([r.as_dict() for r in rows], out, columns, lambda: _print_table(rows))


def _print_table(rows: list[ReportRow]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"clients querying malicious or uncertain names ({len(rows)} pairs)")
    for col in ("client", "name", "label", "first seen (UTC)", "last seen (UTC)", "queries", "blocked"):
        table.add_column(col, justify="right" if col in ("queries", "blocked") else "left",
                         overflow="fold", min_width={"client": 15, "name": 24}.get(col))
    for r in sorted(rows, key=lambda r: (-r.count, r.client, r.name)):
        d = r.as_dict()
        table.add_row(r.client, r.name, r.label, table_time(d["first_seen"]), table_time(d["last_seen"]),
                      str(r.count), str(r.blocked))
    console = Console()
    console.width = max(console.width, 130)  # a report row is never cut; narrow terminals wrap
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("report")(report_cmd)
