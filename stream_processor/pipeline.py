"""The pure part of the worker: from raw Kafka records to the work a batch needs.

Nothing here does I/O, so the rules (what is invalid, what is unscorable, what
is skipped, what is scored, how a score becomes a label, how activity is
aggregated) are unit-tested without Kafka, Redis, Elasticsearch or a model.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from dnsentinel.verdict_cache.events import InvalidEvent, QueryEvent, parse_event
from dnsentinel.verdict_cache.names import InvalidName, Name, normalize, unscored_reason
from dnsentinel.verdict_cache.vocabulary import VERDICT_LABELS
VETTED_DECISIONS = frozenset({"allow", "block", "honeypot"})
BLOCKING_ACTIONS = frozenset({"nxdomain", "nodata", "refused", "null", "sinkhole", "honeypot"})
BLOCKING_DECISIONS = frozenset({"block", "honeypot", "malicious"})


@dataclass(slots=True)
class Record:
    """One Kafka record as the worker sees it (no client types, so tests build them directly).

    Not frozen: a frozen dataclass's ``__init__`` goes through ``object.__setattr__`` per field,
    which showed in the profile at one record per event.
    """

    key: bytes | None
    value: bytes
    topic: str
    partition: int
    offset: int


@dataclass(slots=True)
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
        why = unscored_reason(name)  # reverse, bare, mDNS/DNS-SD, .lan, no such TLD: never scored
        if why is not None:
            out.unscorable[why] += 1
            out.parsed.append(Parsed(rec, ev, name, why))
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


class Counted:
    """Events folded into one Elasticsearch document since the last flush.

    Offsets are kept per source partition so that a replayed event (after a
    crash or a rebalance) is recognised and never counted twice (es_sink.py).
    """

    __slots__ = ("fields", "offsets", "blocked", "qtypes", "first", "last", "events", "parts")

    def __init__(self, fields: dict[str, Any] | None = None) -> None:
        self.fields: dict[str, Any] = fields if fields is not None else {}
        self.offsets: dict[int, list[int]] = {}
        self.blocked: dict[int, list[int]] | None = None
        self.qtypes: set[str] | None = None
        self.first = 0
        self.last = 0
        self.events = 0
        self.parts: list[Counted] = []
        """Documents merged in (by reference: their offsets are not copied)."""

    def add(self, partition: int, offset: int, ts: int, blocked: bool = False, qtype: str | None = None) -> None:
        offs = self.offsets.get(partition)
        if offs is None:
            offs = self.offsets[partition] = []
        offs.append(offset)
        if blocked:
            if self.blocked is None:
                self.blocked = {}
            self.blocked.setdefault(partition, []).append(offset)
        if qtype:
            if self.qtypes is None:
                self.qtypes = {qtype}
            else:
                self.qtypes.add(qtype)
        if self.events == 0 or ts < self.first:
            self.first = ts
        if ts > self.last:
            self.last = ts
        self.events += 1

    def offset_lists(self) -> list[list[int]]:
        """Every offset list of this document and of the documents merged into it."""
        out = list(self.offsets.values())
        for part in self.parts:
            out.extend(part.offset_lists())
        return out

    def merge(self, other: Counted) -> None:
        """Fold another document's events in (per-name counts from per-(name, client, minute) ones)."""
        self.parts.append(other)
        if self.events == 0 or other.first < self.first:
            self.first = other.first
        if other.last > self.last:
            self.last = other.last
        self.events += other.events


class Aggregator:
    """Per-(name, client, minute) counts, drained on every Elasticsearch flush.

    This is the tumbling window of the activity indices, kept in the worker
    rather than in a Faust table: the counts must land in Elasticsearch exactly
    once, which needs the source offsets (a changelogged table would not give
    them), and a window is only as large as the distinct keys seen between two
    flushes. Per-name counts (verdict and vetting documents) are derived from
    the activity entries when drained, so each event costs one dictionary
    update.
    """

    def __init__(self, window_s: int = 60) -> None:
        self.window_ms = window_s * 1000
        self.activity: dict[tuple[str, str, int], Counted] = {}
        self.names: dict[str, Name] = {}
        self.labels: dict[str, str] = {}
        self.scored: dict[str, Any] = {}
        self.events = 0
        self.parts: list[Counted] = []
        """Documents merged in (by reference: their offsets are not copied)."""

    def add(self, p: Parsed, label: str | None) -> None:
        self.add_many((p,), {p.name.name: label} if p.name is not None and label else {})

    def add_many(self, parsed: Iterable[Parsed], known: dict[str, str]) -> None:
        activity = self.activity
        window = self.window_ms
        names = self.names
        n_events = 0
        for p in parsed:
            ev, rec, nm = p.event, p.record, p.name
            name = nm.name if nm is not None else ev.name
            ts = ev.ts
            minute = ts - ts % window
            key = (name, ev.client, minute)
            act = activity.get(key)
            if act is None:
                act = activity[key] = Counted({
                    "name": name, "client": ev.client, "minute": minute,
                    "registrable": nm.registrable if nm is not None else None,
                    "kind": nm.kind if nm is not None else "invalid",
                })
                if p.unscorable is not None:
                    act.fields["label"] = "unscored"
                if p.unscorable is None and nm is not None:
                    names[name] = nm
            action = ev.action
            blocked = action in BLOCKING_ACTIONS if action else ev.decision in BLOCKING_DECISIONS
            act.add(rec.partition, rec.offset, ts, blocked, ev.qtype)
            if ev.decision:
                act.fields["decision"] = ev.decision
            n_events += 1
        for name, label in known.items():
            if label in VERDICT_LABELS:
                self.labels[name] = label
        self.events += n_events

    def note_verdict(self, v: Any, scored_at_ms: int) -> None:
        """Record a fresh verdict for the documents of its name (its events are in this window)."""
        self.labels[v.name] = v.label
        self.scored[v.name] = (v, scored_at_ms)

    def drain(self) -> tuple[dict, dict, dict, int]:
        """(activity, verdicts, vetting, events) since the last drain; the aggregator starts empty."""
        verdicts: dict[str, Counted] = {}
        vetting: dict[str, Counted] = {}
        labels, scored, names = self.labels, self.scored, self.names
        for (name, _client, _minute), act in self.activity.items():
            label = labels.get(name)
            if label:
                act.fields["label"] = label
            nm = names.get(name)
            if nm is None:
                continue
            v = verdicts.get(name)
            if v is None:
                v = verdicts[name] = Counted({"name": name, "registrable": nm.registrable, "kind": nm.kind})
                if label:
                    v.fields["label"] = label
                hit = scored.get(name)
                if hit is not None:
                    vd, at = hit
                    v.fields.update(score=float(vd.score), model=vd.model, family=vd.family,
                                    family_p=vd.family_p, scored_at=at, reason=vd.reason)
                if label == "uncertain":
                    q = vetting[name] = Counted({"name": name, "registrable": nm.registrable})
                    if hit is not None:
                        q.fields.update(score=float(hit[0].score), model=hit[0].model, family=hit[0].family)
            v.merge(act)
            if label == "uncertain":
                vetting[name].merge(act)
        out = (self.activity, verdicts, vetting, self.events)
        self.activity, self.names, self.labels, self.scored, self.events = {}, {}, {}, {}, 0
        return out


def known_value(decision: str) -> str | None:
    """What the LRU remembers for a Redis decision; None when the name still needs scoring."""
    if decision in VETTED_DECISIONS or decision in VERDICT_LABELS:
        return decision
    return None
