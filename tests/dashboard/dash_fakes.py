"""In-memory stand-ins for the dashboard's data access (unit tests only)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd

from dnsentinel.dashboard.store import Page
from dnsentinel.verdict_cache.es_schema import audit_document


def _t(minute: int) -> pd.Timestamp:
    return pd.Timestamp("2026-11-22 10:00", tz="UTC") + pd.Timedelta(minutes=minute)


class FakeStore:
    """Answers every Store method with small fixed frames and records writes."""

    def __init__(self) -> None:
        self.audit: list[dict] = []
        self.marked: list[tuple[list[str], str]] = []
        self.queue = ["odd-name.example", "qwzxv.example", "maybe.example"]
        self.es, self.prefix = AuditES(self.audit), "fake"
        self.index = {"audit": "fake-audit"}

    def timeline(self, rng, granularity, *filters):
        return pd.DataFrame([{"time": _t(i), "category": c, "queries": n}
                             for i in range(3) for c, n in (("blocked", 5), ("allowed", 50), ("uncertain", 2))])

    def overview(self, rng, granularity, size=20):
        return {"timeline": self.timeline(rng, granularity), "malicious": self.top_names(rng, ("malicious",)),
                "benign": self.top_names(rng, ("benign",)), "clients": self.top_clients(rng),
                "infected": self.top_clients(rng, ("malicious",))}

    def top_names(self, rng, decisions, size=20):
        if "malicious" in decisions:
            return pd.DataFrame({"name": ["xjwqkzpt.com", "evil.example"], "queries": [40, 12], "blocked": [40, 12],
                                 "decision": ["malicious", "block"], "last seen": [_t(1), _t(2)]})
        return pd.DataFrame({"name": ["google.com", "maybe.example"], "queries": [900, 7], "blocked": [0, 0],
                             "decision": ["benign", "uncertain"], "last seen": [_t(1), _t(2)]})

    def names_table(self, rng, decisions, search="", sort="queries", descending=True, page=0, page_size=50):
        rows = self.top_names(rng, decisions)
        rows = rows[rows["name"].str.contains(search)] if search else rows
        return Page(rows, len(rows))

    def top_clients(self, rng, decisions=None, size=20):
        return pd.DataFrame({"client": ["10.0.0.7"], "queries": [52], "names": [2], "last seen": [_t(2)]})

    def domain_activity(self, name, subdomains, rng, granularity):
        return {"queries": 52, "blocked": 40, "first": _t(0), "last": _t(2),
                "series": pd.DataFrame({"time": [_t(0), _t(1)], "queries": [20, 32]}),
                "clients": self.top_clients(rng), "client_count": 1,
                "names": pd.DataFrame({"name": [name, f"a.{name}"], "queries": [50, 2], "decision": ["malicious", "uncertain"]})}

    def verdict(self, name):
        return {"name": name, "label": "malicious", "score": 0.9981, "model": "charcnn-test-1", "family": "necurs", "family_p": 0.7}

    def audit_for(self, name, size=50):
        rows = [e for e in self.audit if e["name"] == name]
        return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["at", "who", "name", "before", "after", "note"])

    def client_names(self, client, rng, size=500):
        return Page(pd.DataFrame({"name": ["xjwqkzpt.com", "maybe.example", "google.com"],
                                  "decision": ["malicious", "uncertain", "benign"], "queries": [40, 2, 900],
                                  "blocked": [40, 0, 0], "first seen": [_t(0)] * 3, "last seen": [_t(2)] * 3}), 3)

    def vetting_queue(self, sort="score", descending=True, page=0, page_size=50, exclude=()):
        rows = pd.DataFrame({"name": self.queue, "score": [0.5, 0.6, 0.4][: len(self.queue)],
                             "query count": [3, 2, 1][: len(self.queue)]})
        return Page(rows, len(self.queue))

    def mark_vetting(self, names, status):
        self.marked.append((list(names), status))
        if status == "pending":
            self.queue += [n for n in names if n not in self.queue]
        else:
            self.queue = [n for n in self.queue if n not in names]

    def write_audit(self, entries):
        self.audit += [dict(e, at=0) for e in entries]


@dataclass
class Record:
    action: str
    by: str
    at: int
    note: str | None = None


class FakeCache:
    """The VerdictCache vetting surface, in a dict."""

    def __init__(self) -> None:
        self.vetted: dict[str, Record] = {}
        self.log: list[dict] = []

    def set_vetted(self, name, action, by, note=None):
        if name.startswith("bad"):
            raise ValueError("refused by the fake")
        before = self.vetted.get(name)
        self.vetted[name] = Record(action, by, 1, note)
        self.log.append({"name": name, "before": before.action if before else "", "after": action, "by": by, "at": 1})
        return before

    def remove_vetted(self, name, by):
        return self.vetted.pop(name, None)

    def vetted_log(self, count=100):
        return self.log[-count:]

    def get_verdicts(self, names):
        return {}

    def decide_many(self, names):
        return {n: self.vetted[n].action if n in self.vetted else "malicious" for n in names}


class AuditES:
    """Answers the audit search with the documents of every recorded entry, newest first (filters are
    ES's job); the alerts index (``*-alerts``) with the alert documents in ``alerts`` (id -> source)."""

    def __init__(self, entries: list[dict]) -> None:
        self.entries = entries
        self.alerts: dict[str, dict] = {}
        self.requests: list[dict] = []

    def search(self, **kw):
        self.requests.append(kw)
        if str(kw.get("index", "")).endswith("-alerts"):
            return {"hits": {"hits": [{"_id": i, "_source": a} for i, a in self.alerts.items()]}}
        return {"hits": {"hits": [{"_source": audit_document(e)} for e in reversed(self.entries)]}}

    def get(self, index, id):
        return {"_id": id, "_source": self.alerts[id]}

    def update(self, index, id, doc, **_kw):
        self.alerts[id].update(doc)


class MemoryRedis:
    """The few Redis commands the dashboard's accounts use, in dicts, with expiry (decoded strings)."""

    def __init__(self) -> None:
        self.data: dict[str, object] = {}
        self.expires: dict[str, float] = {}

    def _live(self, key):
        if key in self.expires and self.expires[key] <= time.monotonic():
            self.data.pop(key, None)
            self.expires.pop(key, None)
        return self.data.get(key)

    def _expire_in(self, key, seconds):
        if seconds is not None:
            self.expires[key] = time.monotonic() + seconds

    def ping(self):
        return True

    def get(self, key):
        return self._live(key)

    def set(self, key, value, ex=None, nx=False):
        if nx and self._live(key) is not None:
            return None
        self.data[key] = str(value)
        self.expires.pop(key, None)
        self._expire_in(key, ex)
        return True

    def incr(self, key):
        self.data[key] = str(int(self._live(key) or 0) + 1)  # keeps its expiry, as Redis does
        return int(self.data[key])

    def delete(self, *keys):
        found = [k for k in keys if self._live(k) is not None]
        for k in keys:
            self.data.pop(k, None)
            self.expires.pop(k, None)
        return len(found)

    def ttl(self, key):
        if self._live(key) is None:
            return -2
        return int(self.expires[key] - time.monotonic()) + 1 if key in self.expires else -1

    def expire(self, key, seconds):
        self._expire_in(key, seconds)

    def hget(self, key, field):
        return (self._live(key) or {}).get(field)

    def hgetall(self, key):
        return dict(self._live(key) or {})

    def hlen(self, key):
        return len(self._live(key) or {})

    def hset(self, key, field, value):
        self.data.setdefault(key, {})[field] = value

    def hsetnx(self, key, field, value):
        if field in (self._live(key) or {}):
            return False
        self.hset(key, field, value)
        return True

    def hdel(self, key, field):
        return int((self._live(key) or {}).pop(field, None) is not None)

    def sadd(self, key, member):
        self.data.setdefault(key, set()).add(member)

    def srem(self, key, member):
        (self._live(key) or set()).discard(member)

    def smembers(self, key):
        return set(self._live(key) or set())

    def pipeline(self):
        return _Pipeline(self)


class _Pipeline:
    """Queues calls and runs them on execute (no atomicity needed in one thread)."""

    def __init__(self, redis: MemoryRedis) -> None:
        self.redis, self.calls = redis, []

    def __getattr__(self, name):
        return lambda *a, **k: self.calls.append((name, a, k))

    def execute(self):
        return [getattr(self.redis, name)(*a, **k) for name, a, k in self.calls]
