"""Hourly roll-ups of the activity indices, kept by the workers (``hourly`` family, SPEC §4).

The dashboard's wide ranges (a 7- or 30-day overview) would otherwise aggregate every
per-(name, client, minute) activity document in them. This job folds each *closed* hour into
one document per (name, client, hour, decision, label) with the same fields, so the
dashboard's aggregations run unchanged over both families (dashboard/store.py).

Exactness without any coordination with the writers:

* An hour's roll-up is rebuilt whole from the hour's minute documents (a composite
  aggregation) into documents with deterministic ids, and keys no longer present (a name
  whose label changed) are deleted: rolling an hour twice writes the same documents.
* Which hours to roll is decided by comparing, per hour, the minute documents' (documents,
  queries) with the roll-up's (``_doc_count`` sums, queries). Activity counts only grow (every
  rewrite of a minute document adds at least one query, exactly once, es_sink.py), so any
  late, replayed or relabelled data changes its hour's totals and the hour is rolled again
  on the next run; an hour whose totals agree is left alone. No arrival timestamp is
  needed, and a run that dies half-way is repaired by the next one.
* Hours are rolled oldest first and only once closed for ``settle_s``; readers use the
  roll-up only below the start of the newest rolled hour (:func:`rolled_until`), so an hour
  being written is never read from the roll-up.

Until the next run after late data arrives, the dashboard shows the hour as rolled before
(``elasticsearch.rollup_interval_s``, 5 minutes by default).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterator

from dnsentinel.verdict_cache.es_schema import (
    BLOCKED, CLIENT_ADDRESS, COUNT, DECISION, EVENT_KIND, EVENT_KINDS, EVENT_START, HOUR_MS, LABEL, Q_NAME,
    Q_REGISTERED, TIMESTAMP, doc_id, index_name, rolled_until, template_body, template_name,
)


PAGE = 10_000
"""Composite buckets per request (ES's default ``search.max_buckets`` is far above)."""
KEY_FIELDS: tuple[tuple[str, str], ...] = (("n", Q_NAME), ("c", CLIENT_ADDRESS), ("d", DECISION), ("l", LABEL),
                                           ("r", Q_REGISTERED))
"""Composite sources of a roll-up key; the registered domain follows from the name (no extra buckets)."""


@dataclass
class RollupReport:
    """What one run did."""

    hours: int = 0
    """Hours rolled (new, late data, or repaired)."""
    written: int = 0
    deleted: int = 0
    minute_docs: int = 0
    """Minute documents folded in."""
    seconds: float = 0.0


def floor_hour(ms: int) -> int:
    return ms - ms % HOUR_MS


def rollup_id(name: str, client: str, hour: int, decision: str | None, label: str | None) -> str:
    return doc_id(f"{name}|{client}|{hour}|{decision or ''}|{label or ''}")


def _search(es: Any, index: str, **body: Any) -> dict:
    return es.search(index=index, size=0, track_total_hits=False, ignore_unavailable=True, allow_no_indices=True,
                     request_cache=False, **body)


def hour_totals(es: Any, index: str, before_ms: int) -> dict[int, tuple[int, int]]:
    """(documents, queries) per hour of ``index`` before ``before_ms`` (roll-up documents count their ``_doc_count``)."""
    aggs = {"h": {"date_histogram": {"field": TIMESTAMP, "fixed_interval": "1h", "min_doc_count": 1},
                  "aggs": {"q": {"sum": {"field": COUNT}}}}}
    res = _search(es, index, query={"range": {TIMESTAMP: {"lt": before_ms, "format": "epoch_millis"}}}, aggs=aggs)
    buckets = (res.get("aggregations") or {}).get("h", {}).get("buckets", [])
    return {int(b["key"]): (int(b["doc_count"]), int(b["q"]["value"] or 0)) for b in buckets}


def dirty_hours(es: Any, prefix: str, before_ms: int) -> list[tuple[int, bool]]:
    """Hours before ``before_ms`` whose roll-up does not match their minute documents, oldest first,
    each with whether it has roll-up documents now (stale keys to look for)."""
    raw = hour_totals(es, index_name("activity", prefix=prefix), before_ms)
    rolled = hour_totals(es, index_name("hourly", prefix=prefix), before_ms)
    return sorted((h, h in rolled) for h in raw.keys() | rolled.keys() if raw.get(h) != rolled.get(h))


def _composite(es: Any, index: str, start: int, end: int, aggs: dict) -> Iterator[dict]:
    """Every composite bucket of ``[start, end)`` of ``index`` by hour then key, page after page."""
    sources = [{"h": {"date_histogram": {"field": TIMESTAMP, "fixed_interval": "1h"}}}]
    sources += [{k: {"terms": {"field": f, "missing_bucket": k not in ("n", "c")}}} for k, f in KEY_FIELDS]
    after = None
    query = {"range": {TIMESTAMP: {"gte": start, "lt": end, "format": "epoch_millis"}}}
    while True:
        comp: dict[str, Any] = {"size": PAGE, "sources": sources}
        if after is not None:
            comp["after"] = after
        res = _search(es, index, query=query, aggs={"k": {"composite": comp, "aggs": aggs}})
        part = (res.get("aggregations") or {}).get("k", {})
        yield from part.get("buckets", [])
        after = part.get("after_key")
        if after is None or len(part.get("buckets", [])) < PAGE:
            return


_SUMS = {"q": {"sum": {"field": COUNT}}, "b": {"sum": {"field": BLOCKED}},
         "first": {"min": {"field": TIMESTAMP}}, "last": {"max": {"field": TIMESTAMP}}}


def _id(key: dict) -> str:
    return rollup_id(key["n"], key["c"], int(key["h"]), key.get("d"), key.get("l"))


def batch_documents(es: Any, prefix: str, start: int, end: int) -> dict[str, dict]:
    """The roll-up documents (id -> source) of the hours ``[start, end)`` of one day, from its minute
    documents, in hour order."""
    out: dict[str, dict] = {}
    for b in _composite(es, index_name("activity", start, prefix=prefix), start, end, _SUMS):
        k = b["key"]
        doc = {EVENT_KIND: EVENT_KINDS["hourly"], TIMESTAMP: int(b["last"]["value"]),
               EVENT_START: int(b["first"]["value"]), Q_NAME: k["n"], CLIENT_ADDRESS: k["c"],
               COUNT: int(b["q"]["value"] or 0), BLOCKED: int(b["b"]["value"] or 0), "_doc_count": int(b["doc_count"])}
        for key, field in KEY_FIELDS[2:]:
            if k.get(key) is not None:
                doc[field] = k[key]
        out[_id(k)] = doc
    return out


def existing_ids(es: Any, prefix: str, start: int, end: int) -> set[str]:
    """Ids of the roll-up documents of ``[start, end)`` now (keys come back from a composite: ids are derived)."""
    return {_id(b["key"]) for b in _composite(es, index_name("hourly", start, prefix=prefix), start, end, {})}


def roll_hours(es: Any, prefix: str, start: int, end: int, had_rollup: bool) -> tuple[int, int, int]:
    """Rebuild the roll-up of the hours ``[start, end)`` (one day at most); returns (written, deleted,
    minute documents). Written in hour order, so :func:`rolled_until` never passes a half-written hour."""
    from elasticsearch import helpers

    docs = batch_documents(es, prefix, start, end)
    stale = existing_ids(es, prefix, start, end) - docs.keys() if had_rollup else set()
    index = index_name("hourly", start, prefix=prefix)
    # Stale keys go first: a reader in between sees an hour short of its relabelled keys, never counted twice.
    actions: list[dict] = [{"_op_type": "delete", "_index": index, "_id": i} for i in sorted(stale)]
    actions += [{"_op_type": "index", "_index": index, "_id": i, "_source": d} for i, d in docs.items()]
    _, errors = helpers.bulk(es, actions, chunk_size=5000, raise_on_error=False, raise_on_exception=True,
                             refresh=False, stats_only=False)
    failed = [e for e in errors if next(iter(e.values())).get("status") != 404]  # an already deleted key is fine
    if failed:
        raise RuntimeError(f"elasticsearch refused {len(failed)} roll-up writes for hours from {start}: {failed[0]}")
    return len(docs), len(stale), sum(d["_doc_count"] for d in docs.values())


def batches(hours: list[tuple[int, bool]]) -> list[tuple[int, int, bool]]:
    """Consecutive dirty hours of one UTC day as one (start, end, any rolled before) batch, oldest first."""
    out: list[tuple[int, int, bool]] = []
    for hour, had in hours:
        if out and out[-1][1] == hour and hour % 86_400_000 != 0:
            start, _, any_had = out[-1]
            out[-1] = (start, hour + HOUR_MS, any_had or had)
        else:
            out.append((hour, hour + HOUR_MS, had))
    return out


def roll_up(es: Any, prefix: str, *, settle_s: float = 300.0, now_ms: int | None = None,
            max_hours: int | None = None) -> RollupReport:
    """Roll every closed hour whose roll-up is missing or out of date (idempotent; see the module docstring).

    ``settle_s``: an hour is rolled once it has been closed this long (late data is still
    caught, by the next run). ``max_hours`` bounds one run (the rest is done by the next).
    """
    t0 = time.perf_counter()
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    es.indices.put_index_template(name=template_name("hourly", prefix=prefix), **template_body("hourly", prefix=prefix))
    before = floor_hour(now_ms - int(settle_s * 1000))
    report = RollupReport()
    for start, end, had_rollup in batches(dirty_hours(es, prefix, before)[:max_hours]):
        written, deleted, minutes = roll_hours(es, prefix, start, end, had_rollup)
        report.hours += (end - start) // HOUR_MS
        report.written += written
        report.deleted += deleted
        report.minute_docs += minutes
    if report.hours:
        es.indices.refresh(index=index_name("hourly", prefix=prefix), ignore_unavailable=True, allow_no_indices=True)
    report.seconds = time.perf_counter() - t0
    return report
