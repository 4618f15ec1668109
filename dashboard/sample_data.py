"""Synthetic activity for benchmarks, end-to-end tests and demos, written straight to ES.

Documents follow the stream processor's mappings (``es_schema``): per name,
client and minute in the day's activity index, one verdict per name, and the
uncertain names in the vetting queue. Names come in three groups (benign,
malicious DGA-like, uncertain) with a skewed popularity, so top-N charts and
infected-host tables have something to show.
"""

from __future__ import annotations

import random
import string
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dnsentinel.verdict_cache.es_schema import (
    BLOCKED, CLIENT_ADDRESS, CLIENT_IP, COUNT, DECISION, EVENT_END, EVENT_KIND, EVENT_KINDS, EVENT_START, LABEL, MODEL,
    NAME_KIND, Q_NAME, Q_REGISTERED, QTYPES, QUERY_COUNT, SCORE, STATUS, TIMESTAMP, ensure_templates, index_name,
    question,
)


@dataclass(frozen=True)
class Shape:
    docs: int = 10_000
    names: int = 2_000
    clients: int = 200
    minutes: int = 24 * 60
    malicious_share: float = 0.1
    uncertain_share: float = 0.05
    seed: int = 7


def names(shape: Shape) -> list[tuple[str, str, float]]:
    """(name, label, score) for every name of the data set."""
    rng = random.Random(shape.seed)
    out = []
    for i in range(shape.names):
        roll = rng.random()
        if roll < shape.malicious_share:
            label, score = "malicious", 0.95 + rng.random() * 0.05
            name = "".join(rng.choices(string.ascii_lowercase, k=rng.randint(10, 18))) + rng.choice((".com", ".net", ".biz"))
        elif roll < shape.malicious_share + shape.uncertain_share:
            label, score = "uncertain", 0.3 + rng.random() * 0.4
            name = f"cdn{i}-{''.join(rng.choices(string.ascii_lowercase + string.digits, k=6))}.example.org"
        else:
            label, score = "benign", rng.random() * 0.05
            name = f"www.site{i}.example.com"
        out.append((name, label, round(score, 4)))
    return out


def _registrable(name: str) -> str:
    return ".".join(name.split(".")[-2:]) if not name.endswith(".example.com") and not name.endswith(".example.org") \
        else ".".join(name.split(".")[-3:])


def activity(shape: Shape, prefix: str, now_ms: int | None = None) -> Iterator[dict[str, Any]]:
    """Bulk actions for ``shape.docs`` activity documents over the last ``shape.minutes`` minutes."""
    rng = random.Random(shape.seed + 1)
    table = names(shape)
    now_ms = now_ms or int(time.time() * 1000)
    last_minute = now_ms - now_ms % 60_000
    clients = [f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}" for i in range(1, shape.clients + 1)]
    infected = clients[: max(1, shape.clients // 20)]
    weights = [1 / (i + 1) for i in range(len(table))]  # Zipf-like popularity
    picks = rng.choices(range(len(table)), weights=weights, k=shape.docs)
    for idx in picks:
        name, label, _ = table[idx]
        client = rng.choice(infected) if label == "malicious" else rng.choice(clients)
        minute = last_minute - rng.randrange(shape.minutes) * 60_000
        count = rng.randint(1, 20)
        blocked = count if label == "malicious" else 0
        yield {"_index": index_name("activity", minute, prefix=prefix), "_source": {
            EVENT_KIND: EVENT_KINDS["activity"], TIMESTAMP: minute, Q_NAME: name, Q_REGISTERED: _registrable(name),
            CLIENT_ADDRESS: client, CLIENT_IP: client, NAME_KIND: "domain", COUNT: count, BLOCKED: blocked,
            QTYPES: ["A"], DECISION: rng.choice(("unknown", label)), LABEL: label}}


def verdicts_and_queue(shape: Shape, prefix: str, model: str = "charcnn-sample-1") -> Iterator[dict[str, Any]]:
    """One verdict document per name, and a vetting-queue entry per uncertain name."""
    now_ms = int(time.time() * 1000)
    first = now_ms - shape.minutes * 60_000
    for i, (name, label, score) in enumerate(names(shape)):
        queries = max(1, shape.docs // (i + 1))
        doc = {EVENT_KIND: EVENT_KINDS["verdicts"], **question(name, _registrable(name)), NAME_KIND: "domain",
               LABEL: label, SCORE: score, MODEL: model, EVENT_START: first, EVENT_END: now_ms, QUERY_COUNT: queries}
        yield {"_index": index_name("verdicts", prefix=prefix), "_id": name, "_source": doc}
        if label == "uncertain":
            yield {"_index": index_name("vetting", prefix=prefix), "_id": name, "_source": {
                EVENT_KIND: EVENT_KINDS["vetting"], Q_NAME: name, Q_REGISTERED: _registrable(name), SCORE: score,
                MODEL: model, EVENT_START: first, EVENT_END: now_ms, QUERY_COUNT: queries, STATUS: "pending"}}


def load(es: Any, prefix: str, shape: Shape, chunk_size: int = 5000, threads: int = 2) -> int:
    """Install the templates for ``prefix`` and index the whole data set; returns documents written."""
    from elasticsearch import helpers

    ensure_templates(es, prefix=prefix)
    written = 0
    for source in (verdicts_and_queue(shape, prefix), activity(shape, prefix)):
        for ok, item in helpers.parallel_bulk(es.options(request_timeout=120), source, chunk_size=chunk_size,
                                              thread_count=threads, raise_on_error=True):
            written += ok
    es.indices.refresh(index=f"{prefix}-*")
    return written


def drop(es: Any, prefix: str) -> None:
    """Delete the data set's indices and templates (tests and benchmarks clean up after themselves)."""
    from dnsentinel.verdict_cache.es_schema import drop_prefix

    drop_prefix(es, prefix=prefix)
