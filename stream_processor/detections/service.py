"""The detections inside a worker: what each batch feeds them, and where their alerts go.

:meth:`DetectionService.observe` runs on every batch of queries (stage 1, per domain) and
returns the signals to publish on ``dns.signals`` keyed by client; :meth:`on_signals` is the
handler of the worker's second consumer, on that topic (stage 2, per client). Both close their
windows at most once a second and hand the alerts to :meth:`raise_alerts`, which

- publishes each on ``dns.alerts`` (key: the alert id) for a SIEM,
- upserts its ``alerts`` document in Elasticsearch (an episode's later findings update the
  counts and times, never the status an analyst set),
- counts it per kind in Prometheus,
- for a DGA host, turns the evidence names whose verdict was ``uncertain`` into ``malicious``
  for everyone (Redis, the verdicts topic, Elasticsearch; reason ``alert``), and
- for a tunnel, with ``detections.tunnel.block_domain``, puts a vetted block on the domain.

Window state lives in memory: a restarted worker starts its windows afresh (at most one
window of evidence is not counted), which the alert cool-down makes harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from dnsentinel.settings import DetectionSettings
from dnsentinel.stream_processor.detections import rules as rules_mod
from dnsentinel.stream_processor.detections.engine import ClientStage, DomainStage
from dnsentinel.stream_processor.metrics import Metrics
from dnsentinel.stream_processor.ports import CountsSink, Publisher, Token
from dnsentinel.stream_processor.triage import Parsed, Record
from dnsentinel.verdict_cache.alerts import Alert, Signal
from dnsentinel.verdict_cache import es_schema as S
from dnsentinel.verdict_cache.es_schema import doc_id, index_name
from dnsentinel.verdict_cache.events import is_ip
from dnsentinel.verdict_cache.events import InvalidEvent, VerdictEvent
from dnsentinel.verdict_cache.keys import Verdict
from dnsentinel.verdict_cache.vocabulary import VERDICT_LABELS

log = logging.getLogger(__name__)

class AlertCache(Protocol):
    """What raising an alert needs of the verdict cache (VerdictCache provides it)."""

    def get_verdicts(self, names: Iterable[str]) -> dict[str, Verdict]: ...

    def put_verdicts(self, verdicts: Iterable[Verdict], publish: bool = False) -> object: ...

    def set_vetted(self, name: str, action: str, by: str, note: str | None = None) -> object: ...

    def first_sightings(self, values: dict[str, str], ttl_s: int) -> set[str]: ...


SEEN_MAX = 500_000
"""Registrable domains a worker remembers as seen before asking Redis again (cleared beyond)."""
CLOSE_EVERY_S = 1.0
"""How often windows are checked for closing (a scan of the open ones)."""
ALERT_REASON = "alert"


@dataclass(eq=False, kw_only=True)
class DetectionService:
    """Stage 1 and stage 2 of one worker, with their outputs wired to the worker's publishers."""

    settings: DetectionSettings
    publish: Publisher
    cache: AlertCache
    metrics: Metrics
    es_prefix: str
    verdicts_topic: str
    sink: CountsSink | None = None
    popular: Callable[[str], bool] = lambda _d: False
    observer: str | None = None
    clock: Callable[[], float] = time.monotonic
    domains: DomainStage = field(init=False)
    clients: ClientStage = field(init=False)
    _seen: set[str] = field(default_factory=set, init=False)
    _sightings: dict[str, Parsed] = field(default_factory=dict, init=False)
    """First sightings waiting to be recorded (:meth:`tick`)."""
    _recording: asyncio.Future[None] | None = field(default=None, init=False)
    _closed_at: float = field(default=0.0, init=False)
    _clients_closed_at: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        rules = rules_mod.load(self.settings.rules_file)
        self.domains = DomainStage(self.settings, rules, self.popular, clock=self.clock)
        self.clients = ClientStage(self.settings, rules, clock=self.clock)

    # -- stage 1: every query of the batch -----------------------------------------------------

    def observe(self, parsed: Sequence[Parsed], known: dict[str, str], verdicts: Iterable[Verdict]) -> list[Signal]:
        """Feed one batch to the per-domain stage; the signals to publish keyed by client.

        The same pass notes the first query of each registrable domain this worker has not seen
        (newly observed domains, recorded off the batch's path by :meth:`tick`).
        """
        scores = {v.name: v.score for v in verdicts}
        observe = self.domains.observe
        seen, sightings = self._seen, self._sightings
        out = []
        for p in parsed:
            name = p.name
            if name is None:
                continue
            ev, n = p.event, name.name
            d = name.registrable
            if d is not None and d not in seen and p.unscorable is None:
                first = sightings.get(d)
                if first is None or ev.ts < first.event.ts:
                    sightings[d] = p
            label = known.get(n)
            sig = observe(ev.ts, ev.client, n, name.registrable or n, ev.qtype, ev.rcode == "NXDOMAIN",
                          p.unscorable is None, scores.get(n), label if label in VERDICT_LABELS else None,
                          ev.rcode == "NOERROR")
            if sig is not None:
                out.append(sig)
        if out:
            self.metrics.signals.inc(len(out))
        return out

    async def after_batch(self, signals: list[Signal], deliveries: list[Awaitable[object]]) -> None:
        """Publish the batch's signals (their deliveries join the batch's).

        First sightings (noted by :meth:`observe`) are recorded off the batch's path (see
        :meth:`tick`): they are not part of what a batch's ack waits for, so a Redis round trip
        per batch never delays the next one.
        """
        for sig in signals:
            deliveries.append(await self.publish(self.settings.signals_topic, sig.client.encode(), sig.encode()))

    async def _record_first_sightings(self, fresh: dict[str, Parsed]) -> None:
        """Newly observed domains: the deployment's first sighting (Redis ``SET NX``) goes to Elasticsearch.

        Queries are partitioned by registrable domain, so one worker sees a domain's queries; Redis
        makes "first" hold across workers, restarts and rebalances.
        """
        if len(self._seen) > SEEN_MAX:
            self._seen.clear()
        self._seen.update(fresh)
        self._sightings = {d: p for d, p in self._sightings.items() if d not in fresh}
        values = {d: f"{p.event.ts}|{p.event.client}|{p.name.name if p.name else d}" for d, p in fresh.items()}
        ttl = self.settings.newly_observed_days * 86400
        try:
            first = await asyncio.to_thread(self.cache.first_sightings, values, ttl)
        except Exception as exc:  # Redis down: the verdict path retries it; a sighting may be recorded late
            log.warning("newly observed domains not recorded (%s)", exc)
            self._seen.difference_update(fresh)
            return
        if not first:
            return
        self.metrics.newly_observed.inc(len(first))
        if self.sink is not None:
            idx = index_name("domains", prefix=self.es_prefix)
            self.sink.submit([], [{"_op_type": "index", "_index": idx, "_id": doc_id(d),
                                   "_source": _domain_doc(fresh[d], self.observer)} for d in first], 0, None)

    async def tick(self) -> None:
        """Once a second: close the per-domain windows that are due and raise their alerts; record
        the first sightings queued since (in a task of its own, one at a time)."""
        now = self.clock()
        if now - self._closed_at < CLOSE_EVERY_S:
            return
        self._closed_at = now
        if self._sightings and (self._recording is None or self._recording.done()):
            self._recording = asyncio.ensure_future(self._record_first_sightings(dict(self._sightings)))
        alerts = self.domains.close()
        self.metrics.late_events.labels(stage="domain").set(self.domains.windows.late)
        if alerts:
            await self.raise_alerts(alerts, {})

    # -- stage 2: the signals of the clients this worker owns ----------------------------------

    async def on_signals(self, records: list[Record], token: Token) -> list[Alert]:
        """The signals consumer's handler: count, close due windows, raise; returns what it raised."""
        for rec in records:
            try:
                self.clients.on_signal(Signal.parse(rec.value))
            except InvalidEvent as exc:
                self.metrics.invalid.labels(reason=f"signal:{exc.reason}").inc()
        now = self.clock()
        if now - self._clients_closed_at < CLOSE_EVERY_S:
            return []
        self._clients_closed_at = now
        found = self.clients.close()
        promote = {a.alert.id: a.promote for a in found}
        alerts = [a.alert for a in found]
        if alerts:
            await self.raise_alerts(alerts, promote)
        return alerts

    # -- outputs -------------------------------------------------------------------------------

    async def raise_alerts(self, alerts: list[Alert], promote: dict[str, list[str]]) -> None:
        deliveries: list[Awaitable[object]] = []
        for alert in alerts:
            if promote.get(alert.id):
                alert.promoted = await self._promote(promote[alert.id], deliveries)
            if alert.kind == "tunnel" and self.settings.tunnel.block_domain and alert.domain:
                await asyncio.to_thread(self.cache.set_vetted, alert.domain, "block", "detector:tunnel",
                                        f"alert {alert.id}")
            self.metrics.alerts.labels(kind=alert.kind).inc()
            self.metrics.alert_latency.observe(max(0.0, (alert.detected_at - alert.last_seen) / 1000))
            deliveries.append(await self.publish(self.settings.alerts_topic, alert.id.encode(), alert.encode()))
            log.warning("alert %s %s: %s", alert.kind, alert.id, alert.summary)
        if self.sink is not None:
            self.sink.submit([], [self._es_action(a) for a in alerts], 0, None)
        for d in deliveries:
            await d

    def _es_action(self, alert: Alert) -> dict[str, object]:
        """An upsert: a new episode is indexed whole; a later finding updates all but the analyst's fields."""
        doc = alert.to_es(self.observer)
        kept = {k: v for k, v in doc.items() if k not in S.ALERT_ANALYST_FIELDS}
        return {"_op_type": "update", "_index": index_name("alerts", prefix=self.es_prefix), "_id": alert.id,
                "doc": kept, "upsert": doc, "retry_on_conflict": 3}

    async def _promote(self, names: list[str], deliveries: list[Awaitable[object]]) -> list[str]:
        """Uncertain evidence names become malicious for everyone (Redis, verdicts topic); the names changed.

        The verdict keeps the model's score and version; its reason (on the verdicts topic and in
        the alert's ``promoted`` list) says an alert decided. Workers drop the names from their
        LRU through the changes channel, so their next events are counted as malicious.
        """
        current = await asyncio.to_thread(self.cache.get_verdicts, names)
        now = time.time()
        promoted = [Verdict(v.name, "malicious", v.score, v.model, int(now), v.family, v.family_p, ALERT_REASON)
                    for v in current.values() if v.label == "uncertain"]
        if not promoted:
            return []
        await asyncio.to_thread(self.cache.put_verdicts, promoted, True)
        for v in promoted:
            ev = VerdictEvent(v.name, v.label, v.score, v.model, int(now * 1000), v.family, v.family_p, ALERT_REASON)
            deliveries.append(await self.publish(self.verdicts_topic, ev.key(), ev.encode()))
        self.metrics.promoted.inc(len(promoted))
        return [v.name for v in promoted]


def _domain_doc(p: Parsed, observer: str | None) -> dict[str, object]:
    """The ``domains`` document of a newly observed domain (ECS, es_schema.DOMAIN_FIELDS)."""
    ev = p.event
    doc: dict[str, object] = {
        S.TIMESTAMP: ev.ts, S.EVENT_KIND: "event", S.EVENT_CATEGORY: ["network"], S.EVENT_CREATED: int(time.time() * 1000),
        S.Q_REGISTERED: p.name.registrable if p.name else None, S.Q_NAME: p.name.name if p.name else ev.name,
        S.Q_TYPE: ev.qtype, S.CLIENT_ADDRESS: ev.client,
    }
    if is_ip(ev.client):
        doc[S.CLIENT_IP] = ev.client
    if observer:
        doc[S.OBSERVER] = observer
    return doc
