"""Every Elasticsearch read and write of the dashboard (SPEC §4), as aggregations.

Nothing here returns raw activity rows: each method sends one aggregation or a
bounded, paginated search and turns the buckets into a small DataFrame. Activity
aggregations read the hourly roll-up (written by stream_processor/rollup.py) for the whole
hours it covers and the minute documents for the rest, in one request: the
roll-up documents have the same fields, ``_doc_count`` and a last-seen
``@timestamp``, so every aggregation gives the answer it gives over minutes. The
class takes an ``Elasticsearch`` client and an index prefix, so the pages (via
``data``), the tests and ``bench/dashboard_bench.py`` share it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dnsentinel.dashboard.timerange import GRANULARITIES, TimeRange
from dnsentinel.verdict_cache.es_schema import (
    AUDIT_COLUMNS, AUDIT_TARGET, BLOCKED, CLIENT_ADDRESS, COUNT, DECISION, EVENT_END, EVENT_START, FAMILY, FAMILY_P,
    HOUR_MS, LABEL, MODEL, Q_NAME, Q_REGISTERED, QUERY_COUNT, REASON, SCORE, STATUS, TIMESTAMP, audit_document,
    audit_entry, doc_id, index_name, rolled_until,
)
from dnsentinel.verdict_cache.vocabulary import BLOCKING_DECISIONS, DECISIONS, LABELS, VETTED_ACTIONS

# Activity document fields (SPEC §4, one doc per name, client and minute; names from es_schema).
# ``DECISION`` is what the DNS path decided (often ``unknown`` for a replayed or first-seen
# name); ``LABEL`` is the model's verdict added by the worker. The effective decision
# is the first unless it is unknown.
TS, NAME, REGISTRABLE, CLIENT = TIMESTAMP, Q_NAME, Q_REGISTERED, CLIENT_ADDRESS

# The overview's bands, as sets of effective decisions (words from the vocabulary).
BLOCKED_DECISIONS: tuple[str, ...] = BLOCKING_DECISIONS
UNCERTAIN_DECISIONS: tuple[str, ...] = ("uncertain",)
ALLOWED_DECISIONS: tuple[str, ...] = tuple(d for d in (*DECISIONS, "unscored") if d not in BLOCKING_DECISIONS)
RESOLVED_DECISIONS: tuple[str, ...] = tuple(d for d in DECISIONS if d != "unknown")
"""Decisions the DNS path knew; any other (``unknown``) defers to the model's label."""
VETTED_STATUSES = (*VETTED_ACTIONS, "vetted")
VETTING_SORTS = {"score": SCORE, "query count": QUERY_COUNT, "recency": EVENT_END}
MAX_TABLE_ROWS = 10_000
"""Deepest row a paginated terms table reaches (ES's default bucket limit is far above)."""


def category(decision: str) -> str:
    """blocked / uncertain / allowed: the three bands of the overview timeline."""
    if decision in BLOCKED_DECISIONS:
        return "blocked"
    if decision in UNCERTAIN_DECISIONS:
        return "uncertain"
    return "allowed"


def effective(decision: str | None, label: str | None) -> str:
    """The decision to show: the DNS path's when it knew one, else the model's label."""
    if decision in RESOLVED_DECISIONS:
        return decision
    return label if label in LABELS else "unknown"


def decision_filter(decisions: tuple[str, ...]) -> dict:
    """Activity docs whose *effective* decision (see :func:`effective`) is one of ``decisions``."""
    should: list[dict] = []
    resolved = [d for d in decisions if d in RESOLVED_DECISIONS]
    if resolved:
        should.append({"terms": {DECISION: resolved}})
    by_label: list[dict] = []
    labels = [d for d in decisions if d in LABELS]
    if labels:
        by_label.append({"terms": {LABEL: labels}})
    if "unknown" in decisions:  # neither the DNS path nor the model knew
        by_label.append({"bool": {"must_not": [{"terms": {LABEL: list(LABELS)}}]}})
    if by_label:
        should.append({"bool": {"must_not": [{"terms": {DECISION: list(RESOLVED_DECISIONS)}}],
                                "should": by_label, "minimum_should_match": 1}})
    return {"bool": {"should": should, "minimum_should_match": 1}}


# Sub-aggregations giving each bucket its dominant decision and label.
_DECISION_AGGS = {"d": {"terms": {"field": DECISION, "size": 1}}, "l": {"terms": {"field": LABEL, "size": 1}}}


def _decision_of(bucket: dict) -> str:
    top = lambda key: (bucket.get(key, {}).get("buckets") or [{"key": None}])[0]["key"]  # noqa: E731
    return effective(top("d"), top("l"))


def decision_rank(decision: str) -> int:
    """Sort key that puts malicious names first, then uncertain, then the rest."""
    return 0 if decision in BLOCKED_DECISIONS else 1 if decision in UNCERTAIN_DECISIONS else 2


def index_names(prefix: str) -> dict[str, str]:
    """The index (or, for dated families, the pattern) of each family, from the stream processor's schema."""
    return {kind: index_name(kind, prefix=prefix) for kind in ("verdicts", "activity", "vetting", "audit", "hourly")}


@dataclass(frozen=True)
class Page:
    """One page of a paginated table, with the total it was cut from."""

    rows: pd.DataFrame
    total: int


def _empty(*columns: str) -> pd.DataFrame:
    return pd.DataFrame({c: [] for c in columns})


WILDCARD_SPECIAL = ("\\", "*", "?")
"""Characters an Elasticsearch ``wildcard`` query reads as syntax (backslash first: it escapes)."""


def escape_wildcard(text: str) -> str:
    """``text`` as literal characters inside a ``wildcard`` pattern (a typed ``*`` matches a ``*``)."""
    for char in WILDCARD_SPECIAL:
        text = text.replace(char, "\\" + char)
    return text


def contains(field: str, text: str) -> dict:
    """Documents whose ``field`` contains ``text`` (case-insensitive), whatever ``text`` holds."""
    return {"wildcard": {field: {"value": f"*{escape_wildcard(text.strip().lower())}*", "case_insensitive": True}}}


def client_filter(client: str) -> dict:
    """Activity of one client (the Client page's filter)."""
    return {"term": {CLIENT: client}}


def _name_filter(name: str, subdomains: bool) -> dict:
    if not subdomains:
        return {"term": {NAME: name}}
    return {"bool": {"should": [{"term": {NAME: name}}, {"term": {REGISTRABLE: name}},
                                {"wildcard": {NAME: {"value": f"*.{name}"}}}], "minimum_should_match": 1}}


_FIRST_AGGS = {"first": {"min": {"field": TS}}, "first_r": {"min": {"field": EVENT_START}}}
"""First seen: ``@timestamp`` of minute documents, ``event.start`` of hourly roll-up ones (their
``@timestamp`` is the hour's last minute)."""


def _first(bucket: dict) -> pd.Timestamp | None:
    values = [bucket.get(k, {}).get("value") for k in _FIRST_AGGS]
    values = [v for v in values if v is not None]
    return _ms_to_ts(min(values)) if values else None


def rollup_span(rng: TimeRange, rolled_until_ms: int | None, granularity: str | None) -> tuple[int, int] | None:
    """The whole hours of ``rng`` the hourly roll-up answers for (epoch ms, closed-open), or None.

    Only hours before the roll-up's watermark, and not for minute buckets (a roll-up
    document stands for a whole hour)."""
    if rolled_until_ms is None or granularity == "minute":
        return None
    start, end = rng.bounds_ms()["min"], rng.bounds_ms()["max"] + 1
    first = -(-start // HOUR_MS) * HOUR_MS
    last = min(end - end % HOUR_MS, rolled_until_ms)
    return (first, last) if last > first else None


def _sum(bucket: dict, key: str = "queries") -> int:
    return int(bucket.get(key, {}).get("value") or 0)


def _ms_to_ts(value: Any) -> pd.Timestamp | None:
    """Epoch milliseconds (aggregations, our writes) or ISO text (documents written by others)."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return pd.Timestamp(int(value), unit="ms", tz="UTC")
    try:
        return pd.Timestamp(int(value), unit="ms", tz="UTC") if str(value).isdigit() else pd.Timestamp(value).tz_convert("UTC")
    except (ValueError, TypeError):
        return None


def _timeline_agg(rng: TimeRange, granularity: str) -> dict:
    return {"date_histogram": {"field": TS, "fixed_interval": GRANULARITIES[granularity],
                               "min_doc_count": 0, "extended_bounds": rng.bounds_ms()},
            "aggs": {"d": {"terms": {"field": DECISION, "size": 10, "missing": "unknown"},
                           "aggs": {"l": {"terms": {"field": LABEL, "size": 4, "missing": "unknown"},
                                          "aggs": {"queries": {"sum": {"field": COUNT}}}}}}}}


def _timeline_rows(res: dict) -> pd.DataFrame:
    rows: list[dict] = []
    for b in res.get("t", {}).get("buckets", []):
        split = {"blocked": 0, "allowed": 0, "uncertain": 0}
        for d in b["d"]["buckets"]:
            for lab in d["l"]["buckets"]:
                split[category(effective(d["key"], lab["key"]))] += _sum(lab)
        rows += [{"time": _ms_to_ts(b["key"]), "category": c, "queries": n} for c, n in split.items()]
    return pd.DataFrame(rows) if rows else _empty("time", "category", "queries")


def _names_agg(size: int, order: dict | None = None) -> dict:
    """Top names by queries. Their decisions come from a second, small request
    (:meth:`Store._with_decisions`): two terms sub-aggregations on every one of a
    range's names would cost more than the ranking itself."""
    return {"terms": {"field": NAME, "size": size, "order": order or {"queries": "desc"}},
            "aggs": {"queries": {"sum": {"field": COUNT}}, "blocked": {"sum": {"field": BLOCKED}},
                     "last": {"max": {"field": TS}}}}


def _name_rows(res: dict, start: int = 0) -> pd.DataFrame:
    rows = [{"name": b["key"], "queries": _sum(b), "blocked": _sum(b, "blocked"), "decision": "unknown",
             "last seen": _ms_to_ts(b["last"].get("value"))}
            for b in res.get("n", {}).get("buckets", [])[start:]]
    return pd.DataFrame(rows) if rows else _empty("name", "queries", "blocked", "decision", "last seen")


def _clients_agg(size: int) -> dict:
    return {"terms": {"field": CLIENT, "size": size, "order": {"queries": "desc"}},
            "aggs": {"queries": {"sum": {"field": COUNT}},
                     "names": {"cardinality": {"field": NAME, "precision_threshold": 200}},
                     "last": {"max": {"field": TS}}}}


def _client_rows(res: dict) -> pd.DataFrame:
    rows = [{"client": b["key"], "queries": _sum(b), "names": int(b["names"]["value"] or 0),
             "last seen": _ms_to_ts(b["last"].get("value"))} for b in res.get("c", {}).get("buckets", [])]
    return pd.DataFrame(rows) if rows else _empty("client", "queries", "names", "last seen")


class Store:
    """Aggregations and writes over the dashboard's indices."""

    def __init__(self, es: Any, prefix: str, *, rollups: bool = True, watermark_ttl_s: float = 30.0) -> None:
        self.es = es
        self.prefix = prefix
        self.index = index_names(prefix)
        self.rollups = rollups
        """False: every aggregation reads the minute documents (tests compare the two)."""
        self.watermark_ttl_s = watermark_ttl_s
        self._watermark: tuple[float, int | None] = (float("-inf"), None)

    # -- plumbing -------------------------------------------------------
    def _agg(self, index: str, query: dict, aggs: dict) -> dict:
        resp = self.es.search(index=index, query=query, aggs=aggs, size=0, track_total_hits=False,
                              ignore_unavailable=True, allow_no_indices=True)
        return resp.get("aggregations") or {}

    def rolled_until(self) -> int | None:
        """The roll-up's watermark, re-read at most every ``watermark_ttl_s`` (an older one is only
        more conservative: the hours after it are read from the minute documents)."""
        if not self.rollups:
            return None
        at, value = self._watermark
        if time.monotonic() - at >= self.watermark_ttl_s:
            value = rolled_until(self.es, self.prefix)
            self._watermark = (time.monotonic(), value)
        return value

    def _activity_agg(self, rng: TimeRange, filters: list[dict], aggs: dict, granularity: str | None = None) -> dict:
        """``aggs`` over the activity of ``rng`` matching ``filters``: roll-up documents for the whole
        rolled hours, minute documents for the rest (``granularity``: the request's histogram, if any)."""
        span = rollup_span(rng, self.rolled_until(), granularity)
        clauses = [rng.es_range(TS), *filters]
        if span is None:
            return self._agg(self.index["activity"], {"bool": {"filter": clauses}}, aggs)
        hours = {"range": {TS: {"gte": span[0], "lt": span[1], "format": "epoch_millis"}}}
        minutes = {"bool": {"filter": [{"prefix": {"_index": self.index["activity"].rstrip("*")}}], "must_not": [hours]}}
        rolled = {"bool": {"filter": [{"prefix": {"_index": self.index["hourly"].rstrip("*")}}, hours]}}
        clauses.append({"bool": {"should": [minutes, rolled], "minimum_should_match": 1}})
        return self._agg(f"{self.index['activity']},{self.index['hourly']}", {"bool": {"filter": clauses}}, aggs)

    # -- overview -------------------------------------------------------
    def overview(self, rng: TimeRange, granularity: str, size: int = 20) -> dict[str, pd.DataFrame]:
        """The whole overview in one request (one pass over the range's documents).

        Keys: ``timeline``, ``malicious`` and ``benign`` (top names), ``clients``, ``infected``.
        """
        aggs = {
            "t": _timeline_agg(rng, granularity),
            "mal": {"filter": decision_filter(BLOCKED_DECISIONS), "aggs": {"n": _names_agg(size)}},
            "ben": {"filter": decision_filter(ALLOWED_DECISIONS), "aggs": {"n": _names_agg(size)}},
            "c": _clients_agg(size),
            "inf": {"filter": decision_filter(BLOCKED_DECISIONS), "aggs": {"c": _clients_agg(size)}},
        }
        res = self._activity_agg(rng, [], aggs, granularity)
        malicious, benign = self._with_decisions(rng, _name_rows(res.get("mal", {})), _name_rows(res.get("ben", {})))
        return {"timeline": _timeline_rows(res), "malicious": malicious, "benign": benign,
                "clients": _client_rows(res), "infected": _client_rows(res.get("inf", {}))}

    def _with_decisions(self, rng: TimeRange, *frames: pd.DataFrame) -> list[pd.DataFrame]:
        """Fill the ``decision`` column of a few listed names (one request for all frames)."""
        wanted = sorted({n for f in frames for n in f["name"]})
        if not wanted:
            return list(frames)
        aggs = {"n": {"terms": {"field": NAME, "size": len(wanted)}, "aggs": _DECISION_AGGS}}
        res = self._activity_agg(rng, [{"terms": {NAME: wanted}}], aggs)
        decided = {b["key"]: _decision_of(b) for b in res.get("n", {}).get("buckets", [])}
        return [f.assign(decision=[decided.get(n, "unknown") for n in f["name"]]) for f in frames]

    def timeline(self, rng: TimeRange, granularity: str, *filters: dict) -> pd.DataFrame:
        """Queries per interval split into blocked / allowed / uncertain (long format)."""
        return _timeline_rows(self._activity_agg(rng, list(filters), {"t": _timeline_agg(rng, granularity)}, granularity))

    def top_names(self, rng: TimeRange, decisions: tuple[str, ...], size: int = 20) -> pd.DataFrame:
        """The most queried names among ``decisions``, with their dominant decision."""
        rows = _name_rows(self._activity_agg(rng, [decision_filter(decisions)], {"n": _names_agg(size)}))
        return self._with_decisions(rng, rows)[0]

    def names_table(self, rng: TimeRange, decisions: tuple[str, ...], search: str = "", sort: str = "queries",
                    descending: bool = True, page: int = 0, page_size: int = 50) -> Page:
        """A sortable, searchable page of names: a terms aggregation, its last page cut here.

        (``bucket_sort`` would cut it in ES, but lives in the aggregations module, which
        minimal distributions such as the local stack's integ-test build lack.)"""
        filters: list[dict] = [decision_filter(decisions)]
        if search.strip():
            filters.append(contains(NAME, search))
        start = min(page * page_size, MAX_TABLE_ROWS - page_size)
        order = {"_key": "desc" if descending else "asc"} if sort == "name" else {"queries": "desc" if descending else "asc"}
        aggs = {"n": _names_agg(start + page_size, order), "total": {"cardinality": {"field": NAME}}}
        res = self._activity_agg(rng, filters, aggs)
        return Page(self._with_decisions(rng, _name_rows(res, start))[0], int(res.get("total", {}).get("value") or 0))

    def top_clients(self, rng: TimeRange, decisions: tuple[str, ...] | None = None, size: int = 20) -> pd.DataFrame:
        """Busiest clients; with ``decisions=BLOCKED_DECISIONS``, the likely infected hosts."""
        filters = [decision_filter(decisions)] if decisions else []
        return _client_rows(self._activity_agg(rng, filters, {"c": _clients_agg(size)}))

    # -- domain investigation --------------------------------------------
    def domain_activity(self, name: str, subdomains: bool, rng: TimeRange, granularity: str) -> dict:
        """Totals, per-interval series, clients and (with subdomains) names, in one request."""
        aggs = {
            "queries": {"sum": {"field": COUNT}},
            "blocked": {"sum": {"field": BLOCKED}},
            **_FIRST_AGGS,
            "last": {"max": {"field": TS}},
            "t": {"date_histogram": {"field": TS, "fixed_interval": GRANULARITIES[granularity],
                                     "min_doc_count": 0, "extended_bounds": rng.bounds_ms()},
                  "aggs": {"queries": {"sum": {"field": COUNT}}}},
            "c": {"terms": {"field": CLIENT, "size": 200, "order": {"queries": "desc"}},
                  "aggs": {"queries": {"sum": {"field": COUNT}}, **_FIRST_AGGS, "last": {"max": {"field": TS}}}},
            "clients": {"cardinality": {"field": CLIENT}},
            "n": {"terms": {"field": NAME, "size": 100, "order": {"queries": "desc"}},
                  "aggs": {"queries": {"sum": {"field": COUNT}},
                           **_DECISION_AGGS}},
        }
        res = self._activity_agg(rng, [_name_filter(name, subdomains)], aggs, granularity)
        series = [{"time": _ms_to_ts(b["key"]), "queries": _sum(b)} for b in res.get("t", {}).get("buckets", [])]
        clients = [{"client": b["key"], "queries": _sum(b), "first seen": _first(b),
                    "last seen": _ms_to_ts(b["last"].get("value"))} for b in res.get("c", {}).get("buckets", [])]
        names = [{"name": b["key"], "queries": _sum(b), "decision": _decision_of(b)}
                 for b in res.get("n", {}).get("buckets", [])]
        return {
            "queries": _sum(res), "blocked": _sum(res, "blocked"),
            "first": _first(res), "last": _ms_to_ts(res.get("last", {}).get("value")),
            "series": pd.DataFrame(series) if series else _empty("time", "queries"),
            "clients": pd.DataFrame(clients) if clients else _empty("client", "queries", "first seen", "last seen"),
            "client_count": int(res.get("clients", {}).get("value") or 0),
            "names": pd.DataFrame(names) if names else _empty("name", "queries", "decision"),
        }

    def verdict(self, name: str) -> dict | None:
        """The verdict of one name (document id = normalized name), or None: ``name``, ``label``,
        ``score``, ``model``, ``family``, ``family_p``, ``reason`` (those the document has)."""
        resp = self.es.options(ignore_status=404).get(index=self.index["verdicts"], id=doc_id(name))
        if not resp.get("found"):
            return None
        src = resp["_source"]
        fields = {"name": Q_NAME, "label": LABEL, "score": SCORE, "model": MODEL, "family": FAMILY,
                  "family_p": FAMILY_P, "reason": REASON}
        return {key: src[field] for key, field in fields.items() if src.get(field) is not None}

    def audit_for(self, name: str, size: int = 50) -> pd.DataFrame:
        resp = self.es.search(index=self.index["audit"], query={"terms": {AUDIT_TARGET: [name, f"*.{name}"]}},
                              sort=[{TIMESTAMP: "desc"}], size=size, ignore_unavailable=True, allow_no_indices=True)
        rows = [audit_entry(h["_source"]) for h in resp["hits"]["hits"]]
        return pd.DataFrame(rows) if rows else _empty(*AUDIT_COLUMNS)

    # -- client investigation ---------------------------------------------
    def client_names(self, client: str, rng: TimeRange, size: int = 500) -> Page:
        """Names one client queried, malicious first, then uncertain, then by volume."""
        aggs = {"n": {"terms": {"field": NAME, "size": size, "order": {"queries": "desc"}},
                      "aggs": {"queries": {"sum": {"field": COUNT}}, "blocked": {"sum": {"field": BLOCKED}},
                               **_FIRST_AGGS, "last": {"max": {"field": TS}}, **_DECISION_AGGS}},
                "total": {"cardinality": {"field": NAME}}}
        res = self._activity_agg(rng, [client_filter(client)], aggs)
        rows = [{"name": b["key"], "decision": _decision_of(b),
                 "queries": _sum(b), "blocked": _sum(b, "blocked"),
                 "first seen": _first(b), "last seen": _ms_to_ts(b["last"].get("value"))}
                for b in res.get("n", {}).get("buckets", [])]
        rows.sort(key=lambda r: (decision_rank(r["decision"]), -r["queries"]))
        df = pd.DataFrame(rows) if rows else _empty("name", "decision", "queries", "blocked", "first seen", "last seen")
        return Page(df, int(res.get("total", {}).get("value") or 0))

    # -- vetting ------------------------------------------------------------
    def vetting_queue(self, sort: str = "score", descending: bool = True, page: int = 0,
                      page_size: int = 50, exclude: tuple[str, ...] = ()) -> Page:
        """Uncertain names not yet vetted, one page, sorted in ES."""
        must_not: list[dict] = [{"terms": {STATUS: list(VETTED_STATUSES)}}]
        if exclude:
            must_not.append({"ids": {"values": list(exclude)}})
        field = VETTING_SORTS[sort]
        resp = self.es.search(index=self.index["vetting"], query={"bool": {"must_not": must_not}},
                              sort=[{field: {"order": "desc" if descending else "asc", "unmapped_type": "long"}}],
                              from_=min(page * page_size, MAX_TABLE_ROWS - page_size), size=page_size,
                              track_total_hits=True, ignore_unavailable=True, allow_no_indices=True)
        rows = []
        for h in resp["hits"]["hits"]:
            src = h["_source"]
            rows.append({"name": src.get(Q_NAME, h["_id"]), "score": src.get(SCORE),
                         "query count": src.get(QUERY_COUNT), "last seen": _ms_to_ts(src.get(EVENT_END)),
                         "first seen": _ms_to_ts(src.get(EVENT_START)), "model": src.get(MODEL)})
        total = resp["hits"]["total"]["value"] if isinstance(resp["hits"].get("total"), dict) else len(rows)
        df = pd.DataFrame(rows) if rows else _empty("name", "score", "query count", "last seen", "first seen", "model")
        return Page(df, int(total))

    def mark_vetting(self, names: list[str], status: str) -> None:
        """Take names off (or, on undo, back onto) the queue; missing docs are fine."""
        if not names:
            return
        ops: list[dict] = []
        for name in names:
            ops += [{"update": {"_index": self.index["vetting"], "_id": doc_id(name)}}, {"doc": {STATUS: status}}]
        self.es.bulk(operations=ops, refresh="wait_for")

    def write_audit(self, entries: list[dict]) -> None:
        """Append audit entries (``audit.entry``: who, name, before, after, note ...); ``at`` is stamped here."""
        if not entries:
            return
        now = int(time.time() * 1000)
        ops: list[dict] = []
        for e in entries:
            ops += [{"create": {"_index": self.index["audit"]}}, audit_document({"at": now, **e})]
        resp = self.es.bulk(operations=ops, refresh="wait_for")
        if resp.get("errors"):
            reasons = {i["create"].get("error", {}).get("reason") for i in resp["items"] if i["create"].get("error")}
            raise RuntimeError(f"audit index {self.index['audit']} refused entries: {'; '.join(map(str, reasons))}")
