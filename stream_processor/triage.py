"""Triage: from raw Kafka records to the work a batch needs.

Every event of a batch is parsed (invalid ones go to the dead-letter topic), its name
normalized (memoized: popular names repeat) and sorted: unscorable names (not a public DNS
name) are counted but never scored; the batch's distinct scorable names, with their earliest
event time, are what the worker then looks up and, when still unknown, scores. Names whose
Redis decision is already a verdict or a vetted action are skipped (:func:`known_value`).

Nothing here does I/O, so these rules are unit-tested without Kafka, Redis or a model.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from dnsentinel.verdict_cache.events import InvalidEvent, QueryEvent, parse_event
from dnsentinel.verdict_cache.names import InvalidName, Name, normalize, unscored_reason
from dnsentinel.verdict_cache.vocabulary import VERDICT_LABELS, VETTED_ACTIONS

KNOWN_DECISIONS = frozenset(VETTED_ACTIONS) | frozenset(VERDICT_LABELS)
"""Redis decisions that settle a name: an analyst's action or a fresh verdict (SPEC §1.3)."""


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
    """A valid event with its normalized name (``name`` is None when it does not normalize)."""

    record: Record
    event: QueryEvent
    name: Name | None
    unscorable: str | None
    """Why the name is never scored (an ``InvalidName`` or unscored reason); None when scorable."""


@dataclass(slots=True)
class Triage:
    """A batch split into what goes to the dead-letter topic and what is processed."""

    invalid: list[tuple[Record, str, str]] = field(default_factory=list)
    """(record, reason, detail) of each event to dead-letter."""
    parsed: list[Parsed] = field(default_factory=list)
    unscorable: Counter[str] = field(default_factory=Counter)
    domains: dict[str, Name] = field(default_factory=dict)
    """Distinct scorable names of the batch, first-seen order (the in-batch dedup)."""
    first_ts: dict[str, int] = field(default_factory=dict)
    """Earliest event time (ms) per scorable name, for the first-event-to-verdict latency."""


class NameNormalizer:
    """``normalize`` and ``unscored_reason`` memoized: popular names repeat, and tldextract is not free."""

    def __init__(self, size: int = 100_000) -> None:
        self._size = size
        self._memo: dict[str, tuple[Name, str | None] | InvalidName] = {}

    def __call__(self, raw: str) -> Name:
        return self.scoped(raw)[0]

    def scoped(self, raw: str) -> tuple[Name, str | None]:
        """``raw`` normalized, and why it is never scored (None: scorable); raises :class:`InvalidName`."""
        hit = self._memo.get(raw)
        if hit is None:
            try:
                name = normalize(raw)
                hit = (name, unscored_reason(name))  # reverse, bare, mDNS/DNS-SD, .lan, no such TLD
            except InvalidName as exc:
                hit = exc
            if len(self._memo) >= self._size:
                self._memo.clear()  # cheap bound; the working set refills in milliseconds
            self._memo[raw] = hit
        if isinstance(hit, InvalidName):
            raise hit
        return hit


def triage(records: Iterable[Record], normalizer: NameNormalizer) -> Triage:
    """Validate, normalize and dedup one batch.

    Invalid events are returned for dead-lettering; valid ones whose name
    cannot be normalized, or whose kind is never scored (reverse, bare), are
    counted as unscorable by reason but still kept for activity.
    """
    out = Triage()
    scoped = normalizer.scoped
    for rec in records:
        try:
            ev = parse_event(rec.value)
        except InvalidEvent as exc:
            out.invalid.append((rec, exc.reason, exc.detail or str(exc)))
            continue
        try:
            name, why = scoped(ev.name)
        except InvalidName as exc:
            out.unscorable[exc.reason] += 1
            out.parsed.append(Parsed(rec, ev, None, exc.reason))
            continue
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


def known_value(decision: str | None) -> str | None:
    """What the LRU remembers for a Redis decision; None when the name still needs scoring."""
    return decision if decision in KNOWN_DECISIONS else None
