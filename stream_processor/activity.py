"""Activity: what the worker counts into Elasticsearch, aggregated between two flushes.

Every event adds to its (name, client, minute) document, the tumbling window of the activity
indices, kept in the worker rather than in a Faust table: the counts must land in
Elasticsearch exactly once, which needs the source offsets of the events (a changelogged
table would not keep them), and a window is only as large as the distinct keys seen between
two flushes. Per-name counts (the verdict and vetting documents) are derived from the activity
documents when drained, so each event costs one dictionary update.
"""

from __future__ import annotations

from typing import Any, Iterable, NamedTuple

from dnsentinel.verdict_cache.es_schema import (
    CLIENT_ADDRESS, CLIENT_IP, DECISION, EVENT_CREATED, EVENT_KIND, EVENT_KINDS, FAMILY, FAMILY_P, LABEL, MODEL,
    NAME_KIND, Q_NAME, Q_REGISTERED, REASON, SCORE, TIMESTAMP, question,
)
from dnsentinel.verdict_cache.events import is_ip
from dnsentinel.verdict_cache.keys import Verdict
from dnsentinel.verdict_cache.names import Name
from dnsentinel.verdict_cache.vocabulary import BLOCKING_ACTIONS, BLOCKING_DECISIONS, Label, VERDICT_LABELS, VerdictLabel
from dnsentinel.stream_processor.triage import Parsed

Fields = dict[str, Any]
"""A JSON document's fields (Elasticsearch sources and bulk actions are heterogeneous JSON)."""
ActivityKey = tuple[str, str, int]
"""(name, client, window start in epoch ms)."""

INVALID_KIND = "invalid"
"""The name kind (``dnsentinel.name.kind``) of a document whose name does not normalize (a :class:`Name` has the others)."""
UNSCORED: Label = "unscored"
"""The label of activity whose name is never scored (a label, never a verdict)."""
VETTING_LABEL: VerdictLabel = "uncertain"
"""The verdict whose names wait for analysts (the vetting index)."""

# Set views of the vocabulary for the per-event checks (the words live in vocabulary.py).
_BLOCKING_ACTIONS = frozenset(BLOCKING_ACTIONS)
_BLOCKING_DECISIONS = frozenset(BLOCKING_DECISIONS)
_VERDICT_LABELS = frozenset(VERDICT_LABELS)
_ACTIVITY_KIND, _VERDICT_KIND, _VETTING_KIND = EVENT_KINDS["activity"], EVENT_KINDS["verdicts"], EVENT_KINDS["vetting"]


class Counted:
    """Events folded into one Elasticsearch document since the last flush.

    Offsets are kept per source partition so that a replayed event (after a
    crash or a rebalance) is recognised and never counted twice (es_sink.py).
    """

    __slots__ = ("fields", "offsets", "blocked", "qtypes", "first", "last", "events", "parts", "low", "top",
                 "n_blocked")

    def __init__(self, fields: Fields | None = None) -> None:
        self.fields: Fields = fields if fields is not None else {}
        self.offsets: dict[int, list[int]] = {}
        self.blocked: dict[int, list[int]] | None = None
        self.qtypes: set[str] | None = None
        self.first = 0
        self.last = 0
        self.events = 0
        self.parts: list[Counted] = []
        """Documents merged in (by reference: their offsets are not copied)."""
        self.low = 0
        """Lowest and highest source offset counted, here or in a merged part (valid once ``events`` > 0):
        when the stored document's version is below ``low``, every event is new and the sink takes
        ``events``, ``n_blocked`` and ``top`` as they are, without walking the offsets."""
        self.top = -1
        self.n_blocked = 0

    def add(self, partition: int, offset: int, ts: int, blocked: bool = False, qtype: str | None = None) -> None:
        offs = self.offsets.get(partition)
        if offs is None:
            offs = self.offsets[partition] = []
        elif offset <= offs[-1] and offset in offs:
            # Delivered again within one window: after a rebalance the consumer restarts from the last
            # commit, and events whose counts still wait here come back. One event, counted once (the
            # Elasticsearch version only catches replays of events already written).
            return
        offs.append(offset)
        if blocked:
            if self.blocked is None:
                self.blocked = {}
            self.blocked.setdefault(partition, []).append(offset)
            self.n_blocked += 1
        if self.events == 0 or offset < self.low:
            self.low = offset
        if offset > self.top:
            self.top = offset
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
        if other.events == 0:
            return
        if self.events == 0 or other.first < self.first:
            self.first = other.first
        if self.events == 0 or other.low < self.low:
            self.low = other.low
        if other.last > self.last:
            self.last = other.last
        if other.top > self.top:
            self.top = other.top
        self.events += other.events
        self.n_blocked += other.n_blocked


class Drained(NamedTuple):
    """What an :class:`Aggregator` held since its last drain."""

    activity: dict[ActivityKey, Counted]
    verdicts: dict[str, Counted]
    vetting: dict[str, Counted]
    events: int


class Aggregator:
    """Per-(name, client, minute) counts, drained on every Elasticsearch flush (see the module docstring)."""

    def __init__(self, window_s: int = 60) -> None:
        self.window_ms = window_s * 1000
        self.activity: dict[ActivityKey, Counted] = {}
        self.names: dict[str, Name] = {}
        self.labels: dict[str, str] = {}
        self.scored: dict[str, tuple[Verdict, int]] = {}
        self.events = 0

    def add_many(self, parsed: Iterable[Parsed], known: dict[str, str]) -> None:
        """Count a batch's events; ``known`` holds the label (or vetted action) of its names."""
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
                    EVENT_KIND: _ACTIVITY_KIND, TIMESTAMP: minute, Q_NAME: name, CLIENT_ADDRESS: ev.client,
                    Q_REGISTERED: nm.registrable if nm is not None else None,
                    NAME_KIND: nm.kind if nm is not None else INVALID_KIND,
                })
                if is_ip(ev.client):  # once per document (valid events: an address or "")
                    act.fields[CLIENT_IP] = ev.client
                if p.unscorable is not None:
                    act.fields[LABEL] = UNSCORED
                elif nm is not None:
                    names[name] = nm
            action = ev.action
            blocked = action in _BLOCKING_ACTIONS if action else ev.decision in _BLOCKING_DECISIONS
            act.add(rec.partition, rec.offset, ts, blocked, ev.qtype)
            if ev.decision:
                act.fields[DECISION] = ev.decision
            n_events += 1
        for name, label in known.items():
            if label in _VERDICT_LABELS:
                self.labels[name] = label
        self.events += n_events

    def note_verdict(self, v: Verdict, scored_at_ms: int) -> None:
        """Record a fresh verdict for the documents of its name (its events are in this window)."""
        self.labels[v.name] = v.label
        self.scored[v.name] = (v, scored_at_ms)

    def drain(self) -> Drained:
        """Everything since the last drain (activity, per-name verdict and vetting counts); starts empty."""
        verdicts: dict[str, Counted] = {}
        vetting: dict[str, Counted] = {}
        labels, names = self.labels, self.names
        for (name, _client, _minute), act in self.activity.items():
            label = labels.get(name)
            if label:
                act.fields[LABEL] = label
            nm = names.get(name)
            if nm is None:
                continue
            v = verdicts.get(name)
            if v is None:
                v = verdicts[name] = self._per_name(name, nm, label, vetting)
            v.merge(act)
            if label == VETTING_LABEL:
                vetting[name].merge(act)
        out = Drained(self.activity, verdicts, vetting, self.events)
        self.activity, self.names, self.labels, self.scored, self.events = {}, {}, {}, {}, 0
        return out

    def _per_name(self, name: str, nm: Name, label: str | None, vetting: dict[str, Counted]) -> Counted:
        """The verdict document of a name (and its vetting document when it waits for analysts)."""
        v = Counted({EVENT_KIND: _VERDICT_KIND, **question(name, nm.registrable), NAME_KIND: nm.kind})
        if label:
            v.fields[LABEL] = label
        hit = self.scored.get(name)
        if hit is not None:
            vd, at = hit
            v.fields.update({SCORE: float(vd.score), MODEL: vd.model, FAMILY: vd.family, FAMILY_P: vd.family_p,
                             EVENT_CREATED: at, REASON: vd.reason})
        if label == VETTING_LABEL:
            q = vetting[name] = Counted({EVENT_KIND: _VETTING_KIND, Q_NAME: name, Q_REGISTERED: nm.registrable})
            if hit is not None:
                q.fields.update({SCORE: float(hit[0].score), MODEL: hit[0].model, FAMILY: hit[0].family})
        return v
