"""The audit trail: one Elasticsearch document per change of state (SPEC §4 ``<p>-audit``).

Who (and in which role), when, from which address, what (``action``), its target
(``name``: a DNS name, ``model:<version>``, ``user:<name>``), before, after and a note.
Entries are dicts keyed by those columns; their documents use ECS names
(``es_schema.AUDIT_COLUMNS``: ``user.name``, ``event.action``, ...). Entries are written
through ``Store.write_audit`` (which stamps ``at``), read here by the Audit page and
``dnsentinel audit``. Entries from before issue 17 have no action, role or address; they read
as blanks.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from dnsentinel.dashboard.access import Actor
from dnsentinel.dashboard.store import contains
from dnsentinel.verdict_cache.es_schema import (
    AUDIT_COLUMNS, AUDIT_TARGET, EVENT_ACTION, MAPPINGS, TIMESTAMP, USER_NAME, audit_entry, index_name, properties,
)

ACTIONS: tuple[str, ...] = (
    "vet", "vet_undo", "alert_status", "train", "promote", "rollback",
    "user_add", "user_remove", "user_passwd", "user_role",
    "login", "logout", "login_failed", "lockout", "denied",
)
COLUMNS: tuple[str, ...] = tuple(AUDIT_COLUMNS)
MAX_ROWS = 10_000
_ready: set[tuple[int, str]] = set()


def entry(action: str, target: str, who: str, address: str, role: str = "",
          before: str = "none", after: str = "none", note: str = "") -> dict[str, str]:
    """One audit entry (``at`` is added when it is written)."""
    if action not in ACTIONS:
        raise ValueError(f"audit action {action!r}: expected one of {', '.join(ACTIONS)}")
    return {"who": who, "role": role, "address": address, "action": action, "name": target,
            "before": str(before), "after": str(after), "note": note}


def by(actor: Actor, action: str, target: str, **fields: str) -> dict[str, str]:
    """:func:`entry` for something ``actor`` did."""
    return entry(action, target, actor.name, actor.address, actor.role, **fields)


def ensure_index(es: Any, prefix: str) -> None:
    """Give the audit index this version's fields before the first write (once per process).

    The mapping is strict, so an index made by an older version would refuse an entry with
    ``action`` or ``address`` until the worker next starts; adding fields is always allowed.
    """
    name = index_name("audit", prefix=prefix)
    if (id(es), name) in _ready:
        return
    fields = properties(MAPPINGS["audit"])
    mapping = {"dynamic": "strict", "properties": fields}
    if es.indices.exists(index=name):
        es.indices.put_mapping(index=name, properties=fields)
    else:
        es.options(ignore_status=400).indices.create(index=name, mappings=mapping)  # 400: made meanwhile
    _ready.add((id(es), name))


def query(since_ms: int | None = None, until_ms: int | None = None, who: str = "",
          actions: tuple[str, ...] = (), target: str = "") -> dict:
    """The filter of the Audit page and ``dnsentinel audit`` (typed text matched literally)."""
    filters: list[dict] = []
    if since_ms is not None or until_ms is not None:
        bounds = {k: v for k, v in (("gte", since_ms), ("lte", until_ms)) if v is not None}
        filters.append({"range": {TIMESTAMP: {**bounds, "format": "epoch_millis"}}})
    if who.strip():
        filters.append({"term": {USER_NAME: who.strip()}})
    if actions:
        filters.append({"terms": {EVENT_ACTION: list(actions)}})
    if target.strip():
        filters.append(contains(AUDIT_TARGET, target))
    return {"bool": {"filter": filters}}


def search(es: Any, prefix: str, size: int = 1000, **filters: Any) -> list[dict[str, Any]]:
    """Matching entries, newest first, each with every column (``at`` as ISO 8601 UTC)."""
    resp = es.search(index=index_name("audit", prefix=prefix), query=query(**filters),
                     sort=[{TIMESTAMP: {"order": "desc", "unmapped_type": "date"}}], size=min(size, MAX_ROWS),
                     ignore_unavailable=True, allow_no_indices=True)
    return [row(h["_source"]) for h in resp["hits"]["hits"]]


def row(doc: dict[str, Any]) -> dict[str, Any]:
    """The columns of an audit document, ``at`` as ISO 8601 UTC."""
    out = audit_entry(doc)
    at = out["at"]
    if isinstance(at, (int, float)) or (isinstance(at, str) and at.isdigit()):
        out["at"] = dt.datetime.fromtimestamp(int(at) / 1000, tz=dt.UTC).isoformat(timespec="seconds")
    return out
