"""``dnsentinel report``: which clients queried malicious or uncertain names, and when.

Answered by Elasticsearch, never by pulling rows: a composite aggregation over the per-minute
activity indices (SPEC §4), bucketed by (client, name), with first/last minute and summed
counts per bucket. Composite aggregations page with ``after_key``, so a report over millions of
activity documents stays a few requests of at most ``PAGE`` buckets each.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterator

from dnsentinel.verdict_cache.vocabulary import FLAGGED_LABELS

PAGE = 1_000
FLAGGED_DECISIONS = (*FLAGGED_LABELS, "block", "honeypot")


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
    """The filter: flagged by label or decision, within the time range (on the minute field)."""
    filters: list[dict[str, Any]] = [{
        "bool": {
            "should": [
                {"terms": {"label": list(FLAGGED_LABELS)}},
                {"terms": {"decision": list(FLAGGED_DECISIONS)}},
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
        filters.append({"range": {"minute": rng}})
    return {"bool": {"filter": filters}}


def build_aggs(after: dict[str, Any] | None = None) -> dict[str, Any]:
    composite: dict[str, Any] = {
        "size": PAGE,
        "sources": [{"client": {"terms": {"field": "client"}}}, {"name": {"terms": {"field": "name"}}}],
    }
    if after:
        composite["after"] = after
    return {
        "pairs": {
            "composite": composite,
            "aggs": {
                "first": {"min": {"field": "minute"}},
                "last": {"max": {"field": "minute"}},
                "count": {"sum": {"field": "count"}},
                "blocked": {"sum": {"field": "blocked"}},
                "label": {"terms": {"field": "label", "size": 1}},
                "decision": {"terms": {"field": "decision", "size": 1}},
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
    """``--since``/``--until``: ISO 8601 (UTC unless a zone is given), epoch seconds/ms, or ``2h``/``3d`` ago."""
    if text is None:
        return None
    from dnsentinel.producers.records import ts_from_value
    import time

    t = text.strip()
    units = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    if len(t) >= 2 and t[-1] in units and t[:-1].isdigit():
        return int((time.time() - int(t[:-1]) * units[t[-1]]) * 1000)
    return ts_from_value(t)
