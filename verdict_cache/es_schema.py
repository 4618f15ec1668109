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

Family = Literal["verdicts", "activity", "vetting", "audit", "events", "alerts", "domains", "hourly"]

DATED: frozenset[str] = frozenset({"activity", "events", "hourly"})
"""Families stored in one index per UTC day (deleted by retention)."""

FAMILIES: tuple[str, ...] = ("verdicts", "activity", "vetting", "audit", "events", "alerts", "domains", "hourly")


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
_LONG = {"type": "long"}
_IP = {"type": "ip"}

# Field names of the verdicts, activity, vetting, events and audit documents (SPEC §4 has the
# table): ECS (https://www.elastic.co/guide/en/ecs/current/) for every field ECS defines, with
# ECS's type; dnsentinel's own under ``dnsentinel.<concept>.``. Defined here once: the worker
# writes, and the dashboard, ``dnsentinel report`` and the tests read, through these names.
# Documents carry them as dotted keys (Elasticsearch expands dotted keys and nested objects alike).
TIMESTAMP = "@timestamp"
"""Activity: the window's start (the minute); events: query time; audit: when."""
EVENT_KIND = "event.kind"
"""ECS's kind of document, one per family (:data:`EVENT_KINDS`)."""
EVENT_ACTION = "event.action"
"""Events: what the plugin did (``pass``, ``nxdomain``, ...); audit: the action (``vet``, ``login``, ...)."""
EVENT_CREATED = "event.created"
"""Verdicts: when the model scored the name (wall clock)."""
EVENT_START = "event.start"
"""Verdicts, vetting: the name's first query seen (event time)."""
EVENT_END = "event.end"
"""Verdicts, vetting: the name's last query seen (event time)."""
EVENT_DURATION = "event.duration"
"""Events: time spent answering, nanoseconds (the event's ``latency_us`` × 1000)."""
Q_NAME = "dns.question.name"
Q_REGISTERED = "dns.question.registered_domain"
Q_SUBDOMAIN = "dns.question.subdomain"
Q_TLD = "dns.question.top_level_domain"
"""The effective TLD (public suffix) of the name: ``co.uk`` for ``a.b.co.uk``."""
Q_TYPE = "dns.question.type"
RESPONSE_CODE = "dns.response_code"
CLIENT_ADDRESS = "client.address"
"""The client as the event gives it (activity aggregates on it; ``""`` when unknown)."""
CLIENT_IP = "client.ip"
SOURCE_IP = "source.ip"
"""Events: the querying host again, where SIEM DNS rules look for it."""
OBSERVER = "observer.name"
"""Events: the CoreDNS instance or replay host that emitted it (``server``)."""
LOG_FILE = "log.file.path"
"""Events: the replayed file (``origin``)."""
TRANSPORT = "network.transport"
"""Events: ``udp`` / ``tcp`` (``proto``)."""
USER_NAME = "user.name"
"""Audit: who (a user, or ``cli:<os user>``)."""
USER_ROLES = "user.roles"
"""Audit: the role they acted in."""

NAME_KIND = "dnsentinel.name.kind"
"""``domain`` / ``reverse`` / ``bare`` (SPEC §1.1), ``invalid`` when the name does not normalize."""
QUERY_COUNT = "dnsentinel.name.query_count"
"""Verdicts, vetting: the name's queries counted so far (exactly once each)."""
LABEL = "dnsentinel.verdict.label"
"""Verdicts: the verdict; activity: the name's verdict label, or ``unscored``."""
SCORE = "dnsentinel.verdict.score"
MODEL = "dnsentinel.verdict.model"
"""The model version that scored the name."""
FAMILY = "dnsentinel.verdict.family"
FAMILY_P = "dnsentinel.verdict.family_p"
REASON = "dnsentinel.verdict.reason"
"""``model`` or ``prior`` (SPEC §1.5)."""
COUNT = "dnsentinel.activity.count"
"""Activity: queries of the name by the client in the minute."""
BLOCKED = "dnsentinel.activity.blocked"
QTYPES = "dnsentinel.activity.qtypes"
DECISION = "dnsentinel.query.decision"
"""Activity, events: the decision the DNS path saw (SPEC §1.4; ``unknown`` for a cache miss)."""
QUERY_SOURCE = "dnsentinel.query.source"
"""Events: ``live`` / ``replay`` / ``loadgen``."""
INVALID_REASON = "dnsentinel.query.invalid_reason"
"""Events: why the name does not normalize."""
STATUS = "dnsentinel.vetting.status"
"""``pending``, or the analysts' decision (never overwritten by the worker)."""
SRC_OFFSET = "dnsentinel.vetting.src_offset"
"""The highest source offset the document counts (its version: vetting is partially updated)."""
AUDIT_TARGET = "dnsentinel.audit.target"
"""A DNS name, ``model:<version>``, ``user:<name>``, an alert id."""
AUDIT_BEFORE = "dnsentinel.audit.before"
AUDIT_AFTER = "dnsentinel.audit.after"
AUDIT_NOTE = "dnsentinel.audit.note"

EVENT_KINDS: dict[str, str] = {"verdicts": "enrichment", "activity": "metric", "vetting": "state",
                               "events": "event", "audit": "event", "hourly": "metric"}
"""The ``event.kind`` (one of ECS's allowed values) of each family's documents."""

MAPPINGS: dict[str, dict[str, Any]] = {
    "verdicts": {
        EVENT_KIND: _KW, Q_NAME: _KW, Q_REGISTERED: _KW, Q_SUBDOMAIN: _KW, Q_TLD: _KW, NAME_KIND: _KW,
        LABEL: _KW, SCORE: _SCORE, MODEL: _KW, FAMILY: _KW, FAMILY_P: _SCORE, REASON: _KW,
        EVENT_START: _DATE, EVENT_END: _DATE, EVENT_CREATED: _DATE, QUERY_COUNT: _LONG,
    },
    "activity": {
        EVENT_KIND: _KW, TIMESTAMP: _DATE, Q_NAME: _KW, Q_REGISTERED: _KW, CLIENT_ADDRESS: _KW, CLIENT_IP: _IP,
        NAME_KIND: _KW, COUNT: _LONG, BLOCKED: _LONG, QTYPES: _KW, DECISION: _KW, LABEL: _KW,
    },
    "vetting": {
        EVENT_KIND: _KW, Q_NAME: _KW, Q_REGISTERED: _KW, SCORE: _SCORE, MODEL: _KW, FAMILY: _KW,
        EVENT_START: _DATE, EVENT_END: _DATE, QUERY_COUNT: _LONG, STATUS: _KW,
        SRC_OFFSET: {"type": "long", "index": False},
    },
    "audit": {
        EVENT_KIND: _KW, TIMESTAMP: _DATE, USER_NAME: _KW, USER_ROLES: _KW, CLIENT_ADDRESS: _KW, EVENT_ACTION: _KW,
        AUDIT_TARGET: _KW, AUDIT_BEFORE: _KW, AUDIT_AFTER: _KW, AUDIT_NOTE: {"type": "text"},
    },
    "events": {
        EVENT_KIND: _KW, TIMESTAMP: _DATE, Q_NAME: _KW, Q_REGISTERED: _KW, Q_SUBDOMAIN: _KW, Q_TLD: _KW,
        Q_TYPE: _KW, CLIENT_ADDRESS: _KW, CLIENT_IP: _IP, SOURCE_IP: _IP, QUERY_SOURCE: _KW, OBSERVER: _KW,
        LOG_FILE: _KW, EVENT_ACTION: _KW, DECISION: _KW, RESPONSE_CODE: _KW, EVENT_DURATION: _LONG,
        TRANSPORT: _KW, NAME_KIND: _KW, INVALID_REASON: _KW,
    },
}

AUDIT_COLUMNS: dict[str, str] = {
    "at": TIMESTAMP, "who": USER_NAME, "role": USER_ROLES, "address": CLIENT_ADDRESS, "action": EVENT_ACTION,
    "name": AUDIT_TARGET, "before": AUDIT_BEFORE, "after": AUDIT_AFTER, "note": AUDIT_NOTE,
}
"""An audit entry's columns (as the dashboard and ``dnsentinel audit`` name them) -> document fields."""


def audit_document(entry: dict[str, Any]) -> dict[str, Any]:
    """The ``audit`` document of an entry keyed by :data:`AUDIT_COLUMNS` (``at`` included)."""
    return {EVENT_KIND: EVENT_KINDS["audit"], **{AUDIT_COLUMNS[k]: v for k, v in entry.items()}}


def audit_entry(doc: dict[str, Any]) -> dict[str, Any]:
    """The columns of an ``audit`` document (``""`` for fields an older entry lacks)."""
    return {column: doc.get(field, "") for column, field in AUDIT_COLUMNS.items()}


def question(name: str, registrable: str | None) -> dict[str, str]:
    """ECS's ``dns.question`` parts of a normalized name: registered domain, subdomain, effective TLD.

    The registrable domain is one label above the public suffix (SPEC §1.2), so the suffix is
    what follows its first label; parts a name does not have (no registrable domain, no
    subdomain) are left out.
    """
    out = {Q_NAME: name}
    if registrable:
        out[Q_REGISTERED] = registrable
        if "." in registrable:
            out[Q_TLD] = registrable.split(".", 1)[1]
        if name.endswith("." + registrable):
            out[Q_SUBDOMAIN] = name[: -len(registrable) - 1]
    return out


# Alerts follow ECS (https://www.elastic.co/guide/en/ecs/current/) for every field ECS defines,
# and keep dnsentinel's own under ``dnsentinel.alert``. Field names are dotted paths here and in
# the documents (Elasticsearch expands both the same way); :func:`properties` nests them.
MESSAGE, EVENT_CATEGORY, EVENT_TYPE = "message", "event.category", "event.type"
EVENT_SEVERITY, EVENT_DATASET, RULE_NAME = "event.severity", "event.dataset", "rule.name"
ALERT_ID, ALERT_KIND, ALERT_SEVERITY = "dnsentinel.alert.id", "dnsentinel.alert.kind", "dnsentinel.alert.severity"
ALERT_STATUS, ALERT_COUNT, ALERT_EVIDENCE = "dnsentinel.alert.status", "dnsentinel.alert.count", "dnsentinel.alert.evidence"
ALERT_CLIENTS, ALERT_PROMOTED, ALERT_DETAILS = "dnsentinel.alert.clients", "dnsentinel.alert.promoted", "dnsentinel.alert.details"
ALERT_UPDATED_BY, ALERT_UPDATED_AT, ALERT_NOTE = "dnsentinel.alert.updated_by", "dnsentinel.alert.updated_at", "dnsentinel.alert.note"
ALERT_ANALYST_FIELDS = (ALERT_STATUS, ALERT_UPDATED_BY, ALERT_UPDATED_AT, ALERT_NOTE)
"""What an analyst sets on an alert; a detection's later findings never overwrite them."""

ALERT_FIELDS: dict[str, dict[str, Any]] = {
    TIMESTAMP: _DATE, MESSAGE: {"type": "text"},
    EVENT_KIND: _KW, EVENT_CATEGORY: _KW, EVENT_TYPE: _KW, EVENT_ACTION: _KW,
    EVENT_SEVERITY: {"type": "long"}, EVENT_START: _DATE, EVENT_END: _DATE,
    EVENT_CREATED: _DATE, "event.ingested": _DATE, EVENT_DATASET: _KW,
    RULE_NAME: _KW, "rule.description": _KW,
    CLIENT_ADDRESS: _KW, CLIENT_IP: {"type": "ip"}, Q_REGISTERED: _KW, OBSERVER: _KW,
    ALERT_ID: _KW, ALERT_KIND: _KW, ALERT_SEVERITY: _KW, ALERT_STATUS: _KW, ALERT_COUNT: {"type": "long"},
    ALERT_EVIDENCE: _KW, ALERT_CLIENTS: _KW, ALERT_PROMOTED: _KW, ALERT_DETAILS: {"type": "flattened"},
    ALERT_UPDATED_BY: _KW, ALERT_UPDATED_AT: _DATE, ALERT_NOTE: {"type": "text"},
}
MAPPINGS["alerts"] = ALERT_FIELDS

DOMAIN_FIELDS: dict[str, dict[str, Any]] = {
    TIMESTAMP: _DATE, EVENT_KIND: _KW, EVENT_CATEGORY: _KW, EVENT_CREATED: _DATE,
    Q_REGISTERED: _KW, Q_NAME: _KW, Q_TYPE: _KW, CLIENT_ADDRESS: _KW, CLIENT_IP: {"type": "ip"}, OBSERVER: _KW,
}
"""Newly observed domains: one document per registrable domain (id), stamped with the event time of
its first query this deployment saw (``@timestamp``), the name and the client that queried it."""
MAPPINGS["domains"] = DOMAIN_FIELDS

_KW_EAGER = {"type": "keyword", "eager_global_ordinals": True}
"""A keyword the dashboard's ``terms`` aggregations group by: ordinals built at refresh, not by the first
reader. Cheap on the roll-up (its days change only when rolled, every few minutes)."""
HOURLY_FIELDS: dict[str, dict[str, Any]] = {
    EVENT_KIND: _KW, TIMESTAMP: _DATE, EVENT_START: _DATE, Q_NAME: _KW_EAGER, Q_REGISTERED: _KW, CLIENT_ADDRESS: _KW_EAGER,
    COUNT: _LONG, BLOCKED: _LONG, DECISION: _KW, LABEL: _KW,
}
"""Activity rolled up per hour (stream_processor/rollup.py): one document per name, client, hour, decision
and label, with the activity fields the dashboard aggregates on. ``@timestamp`` is the *last* minute of the
hour the key was seen and ``event.start`` the first, so that ``max(@timestamp)`` is the last-seen time over
minute and hourly documents alike; ``_doc_count`` (an Elasticsearch metadata field, not mapped) holds the
number of minute documents folded in, so bucket document counts equal those over the minute documents."""
MAPPINGS["hourly"] = HOURLY_FIELDS


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


def _copies() -> tuple[int, int]:
    """(shards, replicas) of the settings: one shard, no replica locally; replicas on a cluster."""
    from dnsentinel.settings import get_settings

    es = get_settings().elasticsearch
    return es.shards, es.replicas


def template_body(family: str, *, prefix: str | None = None) -> dict[str, Any]:
    """The composable index template for one family (strict mappings: a typo fails loudly).

    Shards and replicas come from the settings (``elasticsearch.shards`` / ``.replicas``), so the
    same code writes unreplicated indices on the local node and replicated ones on a cluster.
    """
    p = _prefix(prefix)
    pattern = f"{p}-{family}-*" if family in DATED else f"{p}-{family}"
    shards, replicas = _copies()
    return {
        "index_patterns": [pattern],
        "priority": 200,
        "template": {
            "settings": {"number_of_shards": shards, "number_of_replicas": replicas, "refresh_interval": "1s"},
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


def expired_indices(names: list[str], retention_days: int, today: dt.date, *, prefix: str | None = None,
                    created: dict[str, dt.date] | None = None) -> list[str]:
    """Dated indices among ``names`` past the retention, counted from when their data arrived.

    An index is expired when its day *and* its creation day (``created``, the day its first
    document arrived) are both more than ``retention_days`` before ``today``: live data ages by
    its day, and a replay of last year's log for an incident stays for the retention period
    after it was replayed instead of being deleted at once for its old timestamps.
    """
    cutoff = today - dt.timedelta(days=retention_days)
    created = created or {}
    old = []
    for name in names:
        for family in DATED:
            day = parse_index_day(name, family, prefix=prefix)
            if day is not None and day < cutoff and created.get(name, day) < cutoff:
                old.append(name)
    return sorted(old)


def index_creation_days(es: Any, names: list[str]) -> dict[str, dt.date]:
    """The UTC day each index was created (its first document arrived), from its settings."""
    if not names:
        return {}
    found = es.indices.get_settings(index=",".join(names), name="index.creation_date", ignore_unavailable=True)
    out = {}
    for name, body in found.items():
        ms = body.get("settings", {}).get("index", {}).get("creation_date")
        if ms is not None:
            out[name] = dt.datetime.fromtimestamp(int(ms) / 1000, tz=dt.timezone.utc).date()
    return out


def retention_due(es: Any, retention_days: int, *, prefix: str | None = None,
                  today: dt.date | None = None) -> list[str]:
    """The dated indices past the retention now (see :func:`expired_indices`; sync client)."""
    today = today or dt.datetime.now(dt.timezone.utc).date()
    names: list[str] = []
    for family in DATED:
        found = es.indices.get(index=index_name(family, prefix=prefix), allow_no_indices=True, expand_wildcards="open")
        names.extend(found.keys())
    return expired_indices(names, retention_days, today, prefix=prefix, created=index_creation_days(es, names))


def apply_retention(es: Any, retention_days: int, *, prefix: str | None = None, today: dt.date | None = None) -> list[str]:
    """Delete the dated indices past the retention; returns the deleted names."""
    old = retention_due(es, retention_days, prefix=prefix, today=today)
    for name in old:
        es.indices.delete(index=name, ignore_unavailable=True)
    return old


HOUR_MS = 3_600_000
"""The span of one roll-up (``hourly``) document."""


def rolled_until(es: Any, prefix: str | None = None) -> int | None:
    """Start of the newest hour with roll-up documents: every hour before it is rolled, that one may be
    half-written (stream_processor/rollup.py rolls hours oldest first). None when nothing is rolled yet.

    The dashboard reads roll-ups before this hour and minute documents from it on (SPEC §4.2).
    """
    res = es.search(index=index_name("hourly", prefix=prefix), size=0, track_total_hits=False,
                    ignore_unavailable=True, allow_no_indices=True, aggs={"w": {"max": {"field": TIMESTAMP}}})
    value = (res.get("aggregations") or {}).get("w", {}).get("value")
    return int(value) - int(value) % HOUR_MS if value is not None else None
