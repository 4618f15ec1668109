"""The pure part of the worker: from raw Kafka records to the work a batch needs.

Nothing here does I/O, so the rules (what is invalid, what is unscorable, what
is skipped, what is scored, how a score becomes a label, how activity is
aggregated) are unit-tested without Kafka, Redis, Elasticsearch or a model.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from dnsentinel.verdict_cache.events import InvalidEvent, QueryEvent, parse_event
from dnsentinel.verdict_cache.names import InvalidName, Name, normalize

LABELS = ("malicious", "uncertain", "benign")
VETTED_DECISIONS = frozenset({"allow", "block", "honeypot"})
BLOCKING_ACTIONS = frozenset({"nxdomain", "nodata", "refused", "null", "sinkhole", "honeypot"})
BLOCKING_DECISIONS = frozenset({"block", "honeypot", "malicious"})


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record as the worker sees it (no Faust types, so tests build them directly)."""

    key: bytes | None
    value: bytes
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Parsed:
    """A valid event with its normalized name (``name`` is None when unscorable)."""

    record: Record
    event: QueryEvent
    name: Name | None
    unscorable: str | None


@dataclass(slots=True)
class Triage:
    """A batch split into what goes to the dead-letter topic and what is processed."""

    invalid: list[tuple[Record, str, str]] = field(default_factory=list)
    parsed: list[Parsed] = field(default_factory=list)
    unscorable: Counter = field(default_factory=Counter)
    domains: dict[str, Name] = field(default_factory=dict)
    """Distinct scorable names of the batch, first-seen order (the in-batch dedup)."""
    first_ts: dict[str, int] = field(default_factory=dict)
    """Earliest event time (ms) per scorable name, for the first-event-to-verdict latency."""


class NameNormalizer:
    """``normalize`` memoized: popular names repeat, and tldextract is not free."""

    def __init__(self, size: int = 100_000) -> None:
        self._size = size
        self._memo: dict[str, Name | InvalidName] = {}

    def __call__(self, raw: str) -> Name:
        hit = self._memo.get(raw)
        if hit is None:
            try:
                hit = normalize(raw)
            except InvalidName as exc:
                hit = exc
            if len(self._memo) >= self._size:
                self._memo.clear()  # cheap bound; the working set refills in milliseconds
            self._memo[raw] = hit
        if isinstance(hit, InvalidName):
            raise hit
        return hit


def triage(records: Iterable[Record], normalizer: Callable[[str], Name]) -> Triage:
    """Validate, normalize and dedup one batch.

    Invalid events are returned for dead-lettering; valid ones whose name
    cannot be normalized, or whose kind is never scored (reverse, bare), are
    counted as unscorable by reason but still kept for activity.
    """
    out = Triage()
    for rec in records:
        try:
            ev = parse_event(rec.value)
        except InvalidEvent as exc:
            out.invalid.append((rec, exc.reason, getattr(exc, "detail", "") or str(exc)))
            continue
        try:
            name = normalizer(ev.name)
        except InvalidName as exc:
            out.unscorable[exc.reason] += 1
            out.parsed.append(Parsed(rec, ev, None, exc.reason))
            continue
        if name.kind != "domain":
            out.unscorable[name.kind] += 1
            out.parsed.append(Parsed(rec, ev, name, name.kind))
            continue
        out.parsed.append(Parsed(rec, ev, name, None))
        n = name.name
        if n not in out.domains:
            out.domains[n] = name
            out.first_ts[n] = ev.ts
        elif ev.ts < out.first_ts[n]:
            out.first_ts[n] = ev.ts
    return out


class LRU:
    """Names already known to Redis (label or vetted decision), so repeats skip the round trip."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._d: OrderedDict[str, str] = OrderedDict()

    def get(self, name: str) -> str | None:
        v = self._d.get(name)
        if v is not None:
            self._d.move_to_end(name)
        return v

    def put(self, name: str, value: str) -> None:
        if self.size <= 0:
            return
        self._d[name] = value
        self._d.move_to_end(name)
        while len(self._d) > self.size:
            self._d.popitem(last=False)

    def drop(self, name: str) -> None:
        self._d.pop(name, None)

    def clear(self) -> None:
        self._d.clear()

    def __len__(self) -> int:
        return len(self._d)


class FloodLimiter:
    """At most ``limit`` new names per registrable domain per minute are scored.

    A random-subdomain flood (``<random>.victim.com``) would otherwise make the
    model score every query; the excess is counted and left unscored until a
    later minute, which keeps the worker's capacity for everyone else.
    """

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._minute = -1
        self._counts: Counter = Counter()

    def admit(self, registrable: str | None) -> bool:
        minute = int(self._clock() // 60)
        if minute != self._minute:
            self._minute = minute
            self._counts.clear()
        if registrable is None:
            return True
        if self._counts[registrable] >= self.limit:
            return False
        self._counts[registrable] += 1
        return True


def thresholds_of(model: Any) -> tuple[float, float]:
    """(allow, block) from ``model.thresholds`` whether it is an object or a dict."""
    t = model.thresholds
    if isinstance(t, dict):
        return float(t["allow"]), float(t["block"])
    return float(t.allow), float(t.block)


def decide(score: float, allow: float, block: float) -> str:
    """malicious at or above ``block``, benign at or below ``allow``, uncertain between."""
    if score >= block:
        return "malicious"
    if score <= allow:
        return "benign"
    return "uncertain"


def is_blocked(ev: QueryEvent) -> bool:
    action = getattr(ev, "action", None)
    if action:
        return action in BLOCKING_ACTIONS
    return getattr(ev, "decision", None) in BLOCKING_DECISIONS


@dataclass(slots=True)
class Counted:
    """Events folded into one Elasticsearch document since the last flush.

    Offsets are kept per source partition so that the upsert script counts an
    event only once even when a replay after a crash or rebalance sends it again.
    """

    fields: dict[str, Any] = field(default_factory=dict)
    offsets: dict[int, list[int]] = field(default_factory=dict)
    blocked: dict[int, list[int]] = field(default_factory=dict)
    qtypes: set[str] = field(default_factory=set)
    first: int = 0
    last: int = 0
    events: int = 0

    def add(self, partition: int, offset: int, ts: int, blocked: bool = False, qtype: str | None = None) -> None:
        self.offsets.setdefault(partition, []).append(offset)
        if blocked:
            self.blocked.setdefault(partition, []).append(offset)
        if qtype:
            self.qtypes.add(qtype)
        if self.events == 0 or ts < self.first:
            self.first = ts
        if ts > self.last:
            self.last = ts
        self.events += 1


class Aggregator:
    """Per-name and per-(name, client, minute) counts, drained on every Elasticsearch flush.

    This is the tumbling window of the activity indices, kept in the worker
    rather than in a Faust table: the counts must land in Elasticsearch exactly
    once, which needs the source offsets (a changelogged table would not give
    them), and a window is only as large as the distinct keys seen between two
    flushes.
    """

    def __init__(self, window_s: int = 60) -> None:
        self.window_ms = window_s * 1000
        self.activity: dict[tuple[str, str, int], Counted] = {}
        self.verdicts: dict[str, Counted] = {}
        self.vetting: dict[str, Counted] = {}
        self.events = 0

    def add(self, p: Parsed, label: str | None) -> None:
        ev, rec = p.event, p.record
        blocked = is_blocked(ev)
        name = p.name.name if p.name is not None else ev.name
        minute = ev.ts - ev.ts % self.window_ms
        key = (name, ev.client, minute)
        act = self.activity.get(key)
        if act is None:
            act = self.activity[key] = Counted(fields={
                "name": name, "client": ev.client, "minute": minute,
                "registrable": p.name.registrable if p.name is not None else None,
                "kind": p.name.kind if p.name is not None else "invalid",
            })
        act.add(rec.partition, rec.offset, ev.ts, blocked, ev.qtype)
        decision = getattr(ev, "decision", None)
        if decision:
            act.fields["decision"] = decision
        if label:
            act.fields["label"] = label
        self.events += 1
        if p.unscorable is not None or p.name is None:
            return
        v = self.verdicts.get(name)
        if v is None:
            v = self.verdicts[name] = Counted(fields={"name": name, "registrable": p.name.registrable, "kind": p.name.kind})
        v.add(rec.partition, rec.offset, ev.ts)
        if label in LABELS:
            v.fields["label"] = label
        if label == "uncertain":
            q = self.vetting.get(name)
            if q is None:
                q = self.vetting[name] = Counted(fields={"name": name, "registrable": p.name.registrable})
            q.add(rec.partition, rec.offset, ev.ts)

    def note_verdict(self, v: Any, scored_at_ms: int) -> None:
        """Record a fresh verdict on the documents of its name (called after its events were added)."""
        c = self.verdicts.get(v.name)
        if c is not None:
            c.fields.update(label=v.label, score=float(v.score), model=v.model, family=v.family,
                            family_p=v.family_p, scored_at=scored_at_ms)
        q = self.vetting.get(v.name)
        if q is not None:
            q.fields.update(score=float(v.score), model=v.model, family=v.family)

    def drain(self) -> tuple[dict, dict, dict, int]:
        out = (self.activity, self.verdicts, self.vetting, self.events)
        self.activity, self.verdicts, self.vetting, self.events = {}, {}, {}, 0
        return out


def known_value(decision: str) -> str | None:
    """What the LRU remembers for a Redis decision; None when the name still needs scoring."""
    if decision in VETTED_DECISIONS or decision in LABELS:
        return decision
    return None
