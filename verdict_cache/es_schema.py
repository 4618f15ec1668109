"""Elasticsearch index names and templates of verdict_cache/SPEC.md §4.

A contract like the Redis keys: the worker writes these indices, the dashboard and
``dnsentinel report`` read them, and all take :func:`index_name` from here so that every
reader and writer agrees on where documents live; the worker calls
:func:`ensure_templates` at start-up so that indices created on the fly (the
date-stamped ones) always get explicit mappings rather than dynamic guesses.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any, Literal

Family = Literal["verdicts", "activity", "vetting", "audit", "events", "alerts", "domains"]

DATED: frozenset[str] = frozenset({"activity", "events"})
"""Families stored in one index per UTC day (deleted by retention)."""

FAMILIES: tuple[str, ...] = ("verdicts", "activity", "vetting", "audit", "events", "alerts", "domains")


def _prefix(prefix: str | None) -> str:
    if prefix is not None:
        return prefix
    from dnsentinel.settings import get_settings

    return get_settings().elasticsearch.index_prefix


def index_name(family: str, day: dt.date | dt.datetime | int | None = None, *, prefix: str | None = None) -> str:
    """Name of the index holding ``family`` (for dated families: the index of ``day``).

    ``day`` is a date, a datetime (its UTC day) or epoch milliseconds. For a
    dated family without ``day`` the wildcard pattern covering every day is
    returned, which is what searches want.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown index family {family!r}; expected one of {', '.join(FAMILIES)}")
    p = _prefix(prefix)
    if family not in DATED:
        return f"{p}-{family}"
    if day is None:
        return f"{p}-{family}-*"
    return f"{p}-{family}-{_day(day).strftime('%Y.%m.%d')}"


def _day(day: dt.date | dt.datetime | int) -> dt.date:
    if isinstance(day, dt.datetime):
        return (day.astimezone(dt.timezone.utc) if day.tzinfo else day).date()
    if isinstance(day, dt.date):
        return day
    return dt.datetime.fromtimestamp(day / 1000, tz=dt.timezone.utc).date()


def parse_index_day(index: str, family: str, *, prefix: str | None = None) -> dt.date | None:
    """The day of a dated index name, or None when the name is not one of ours."""
    head = f"{_prefix(prefix)}-{family}-"
    if not index.startswith(head):
        return None
    try:
        return dt.datetime.strptime(index[len(head):], "%Y.%m.%d").date()
    except ValueError:
        return None


_KW = {"type": "keyword"}
_DATE = {"type": "date", "format": "epoch_millis||strict_date_optional_time"}
_SCORE = {"type": "float"}

MAPPINGS: dict[str, dict[str, Any]] = {
    "verdicts": {
        "name": _KW, "label": _KW, "score": _SCORE, "model": _KW, "family": _KW,
        "family_p": _SCORE, "first_seen": _DATE, "last_seen": _DATE, "scored_at": _DATE,
        "query_count": {"type": "long"}, "registrable": _KW, "kind": _KW, "reason": _KW,
    },
    "activity": {
        "name": _KW, "client": _KW, "minute": _DATE, "count": {"type": "long"},
        "blocked": {"type": "long"}, "decision": _KW, "qtypes": _KW, "registrable": _KW,
        "kind": _KW, "label": _KW,
    },
    "vetting": {
        "name": _KW, "score": _SCORE, "model": _KW, "family": _KW, "first_seen": _DATE,
        "last_seen": _DATE, "query_count": {"type": "long"}, "status": _KW, "registrable": _KW,
        "src_offset": {"type": "long", "index": False},
    },
    "audit": {
        "who": _KW, "role": _KW, "at": _DATE, "address": _KW, "action": _KW, "name": _KW,
        "before": _KW, "after": _KW, "note": {"type": "text"},
    },
    "events": {
        "ts": _DATE, "name": _KW, "qtype": _KW, "client": _KW, "source": _KW, "server": _KW,
        "origin": _KW, "action": _KW, "decision": _KW, "rcode": _KW, "latency_us": {"type": "long"},
        "proto": _KW, "kind": _KW, "registrable": _KW, "invalid_reason": _KW,
    },
}


# Alerts follow ECS (https://www.elastic.co/guide/en/ecs/current/) for every field ECS defines,
# and keep dnsentinel's own under ``dnsentinel.alert``. Field names are dotted paths here and in
# the documents (Elasticsearch expands both the same way); :func:`properties` nests them.
ALERT_FIELDS: dict[str, dict[str, Any]] = {
    "@timestamp": _DATE, "message": {"type": "text"},
    "event.kind": _KW, "event.category": _KW, "event.type": _KW, "event.action": _KW,
    "event.severity": {"type": "long"}, "event.start": _DATE, "event.end": _DATE,
    "event.created": _DATE, "event.ingested": _DATE, "event.dataset": _KW,
    "rule.name": _KW, "rule.description": _KW,
    "client.address": _KW, "client.ip": {"type": "ip"}, "dns.question.registered_domain": _KW,
    "observer.name": _KW,
    "dnsentinel.alert.id": _KW, "dnsentinel.alert.kind": _KW, "dnsentinel.alert.severity": _KW,
    "dnsentinel.alert.status": _KW, "dnsentinel.alert.count": {"type": "long"},
    "dnsentinel.alert.evidence": _KW, "dnsentinel.alert.clients": _KW, "dnsentinel.alert.promoted": _KW,
    "dnsentinel.alert.details": {"type": "flattened"},
    "dnsentinel.alert.updated_by": _KW, "dnsentinel.alert.updated_at": _DATE, "dnsentinel.alert.note": {"type": "text"},
}
MAPPINGS["alerts"] = ALERT_FIELDS

DOMAIN_FIELDS: dict[str, dict[str, Any]] = {
    "@timestamp": _DATE, "event.kind": _KW, "event.category": _KW, "event.created": _DATE,
    "dns.question.registered_domain": _KW, "dns.question.name": _KW, "dns.question.type": _KW,
    "client.address": _KW, "client.ip": {"type": "ip"}, "observer.name": _KW,
}
"""Newly observed domains: one document per registrable domain (id), stamped with the event time of
its first query this deployment saw (``@timestamp``), the name and the client that queried it."""
MAPPINGS["domains"] = DOMAIN_FIELDS


MAX_ID_BYTES = 512
"""Elasticsearch refuses a longer ``_id``, and one such action fails the whole bulk request."""


def doc_id(natural: str) -> str:
    """The ``_id`` of a document whose natural key is ``natural`` (a name, ``name|client|minute``).

    Names are up to 1,024 bytes in their escaped form (SPEC §1.1), so a natural key can exceed
    :data:`MAX_ID_BYTES`; those get ``sha256:<hex>`` instead (the document still holds the name).
    """
    raw = natural.encode("utf-8", "surrogatepass")
    if len(raw) <= MAX_ID_BYTES:
        return natural
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def properties(fields: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Nest dotted field paths into Elasticsearch ``properties`` (``a.b`` -> ``a: {properties: {b}}``)."""
    out: dict[str, Any] = {}
    for path, spec in fields.items():
        node = out
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {"properties": {}})["properties"]
        node[leaf] = spec
    return out


def template_body(family: str, *, prefix: str | None = None) -> dict[str, Any]:
    """The composable index template for one family (strict mappings: a typo fails loudly)."""
    p = _prefix(prefix)
    pattern = f"{p}-{family}-*" if family in DATED else f"{p}-{family}"
    return {
        "index_patterns": [pattern],
        "priority": 200,
        "template": {
            "settings": {"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "1s"},
            "mappings": {"dynamic": "strict", "properties": properties(MAPPINGS[family])},
        },
        "_meta": {"owner": "dnsentinel", "contract": 1},
    }


def template_name(family: str, *, prefix: str | None = None) -> str:
    return f"{_prefix(prefix)}-{family}"


def drop_prefix(es: Any, *, prefix: str) -> None:
    """Delete every index and template under ``prefix`` (tests and benchmarks clean up with it)."""
    es.options(ignore_status=404).indices.delete(index=f"{_prefix(prefix)}-*", expand_wildcards="all")
    for family in FAMILIES:
        es.options(ignore_status=404).indices.delete_index_template(name=template_name(family, prefix=prefix))


async def ensure_templates_async(es: Any, *, prefix: str | None = None) -> None:
    """Install (or update) every template and create the undated indices (async client)."""
    for family in FAMILIES:
        await es.indices.put_index_template(name=template_name(family, prefix=prefix), **template_body(family, prefix=prefix))
    for family in FAMILIES:
        if family in DATED:
            continue
        name = index_name(family, prefix=prefix)
        if await es.indices.exists(index=name):  # an index made by an older version: add new fields
            await es.indices.put_mapping(index=name, properties=properties(MAPPINGS[family]))
        else:
            try:
                await es.indices.create(index=name)
            except Exception as exc:  # created concurrently by another worker
                if "resource_already_exists" not in str(exc):
                    raise


def ensure_templates(es: Any, *, prefix: str | None = None) -> None:
    """Install (or update) every template and create the undated indices (sync client)."""
    for family in FAMILIES:
        es.indices.put_index_template(name=template_name(family, prefix=prefix), **template_body(family, prefix=prefix))
    for family in FAMILIES:
        if family in DATED:
            continue
        name = index_name(family, prefix=prefix)
        if es.indices.exists(index=name):  # an index made by an older version: add new fields
            es.indices.put_mapping(index=name, properties=properties(MAPPINGS[family]))
        else:
            try:
                es.indices.create(index=name)
            except Exception as exc:
                if "resource_already_exists" not in str(exc):
                    raise


def expired_indices(names: list[str], retention_days: int, today: dt.date, *, prefix: str | None = None) -> list[str]:
    """Dated indices among ``names`` whose day is older than ``retention_days`` before ``today``."""
    cutoff = today - dt.timedelta(days=retention_days)
    old = []
    for name in names:
        for family in DATED:
            day = parse_index_day(name, family, prefix=prefix)
            if day is not None and day < cutoff:
                old.append(name)
    return sorted(old)


def apply_retention(es: Any, retention_days: int, *, prefix: str | None = None, today: dt.date | None = None) -> list[str]:
    """Delete dated indices older than ``retention_days`` (sync client); returns the deleted names."""
    today = today or dt.datetime.now(dt.timezone.utc).date()
    names: list[str] = []
    for family in DATED:
        found = es.indices.get(index=index_name(family, prefix=prefix), allow_no_indices=True, expand_wildcards="open")
        names.extend(found.keys())
    old = expired_indices(names, retention_days, today, prefix=prefix)
    for name in old:
        es.indices.delete(index=name, ignore_unavailable=True)
    return old
