"""One batch of query events, start to finish: the worker's pipeline without Faust.

The Faust agent (app.py) only turns its events into :class:`Record` objects
and calls :meth:`BatchProcessor.process`; everything else lives here with its
collaborators injected (verdict cache, model holder, Kafka publisher,
Elasticsearch sink), so unit tests drive it with fakes and integration tests
with the real services.

Order inside a batch, and why:
1. invalid events are dead-lettered (counted by reason), unscorable names counted;
2. the batch's distinct scorable names are looked up in the LRU, then in Redis
   (one pipelined ``decide_many``): fresh verdicts and vetted decisions are
   never re-scored;
3. unseen names pass the per-domain flood limit, then ONE model call scores them;
4. verdicts go to Redis first (what the DNS path reads), then the verdicts topic,
   then the Elasticsearch queue; activity is aggregated for the next flush.
The Kafka offsets of a batch are committed only after its verdicts are in
Redis and on the verdicts topic and its counts are in Elasticsearch (or
dropped and counted), which makes a crash lose nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Sequence

from dnsentinel.stream_processor.es_schema import index_name
from dnsentinel.stream_processor.es_sink import EsSink, aggregate_docs
from dnsentinel.stream_processor.metrics import Metrics
from dnsentinel.stream_processor.pipeline import (
    LRU,
    Aggregator,
    FloodLimiter,
    NameNormalizer,
    Record,
    known_value,
    triage,
)
from dnsentinel.stream_processor.scorer import ModelHolder
from dnsentinel.verdict_cache.events import VerdictEvent, dead_letter
from dnsentinel.verdict_cache.keys import Verdict

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes | None, bytes], Awaitable[Awaitable[Any]]]
"""``await publish(topic, key, value)`` enqueues a message and returns its delivery future."""


@dataclass(slots=True)
class Topics:
    queries: str
    verdicts: str
    dlq: str


class BatchProcessor:
    """The pipeline of one worker (see the module docstring)."""

    def __init__(self, *, cache: Any, holder: ModelHolder, publish: Publish, sink: EsSink | None,
                 metrics: Metrics, topics: Topics, es_prefix: str, batch_max: int = 2048,
                 lru_size: int = 200_000, max_new_per_domain_per_min: int = 300,
                 activity_window_s: int = 60, index_raw_events: bool = False,
                 flush_interval_s: float = 1.0, ack: Callable[[list[Any]], Any] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.cache = cache
        self.holder = holder
        self.publish = publish
        self.sink = sink
        self.metrics = metrics
        self.topics = topics
        self.es_prefix = es_prefix
        self.batch_max = batch_max
        self.lru = LRU(lru_size)
        self.flood = FloodLimiter(max_new_per_domain_per_min)
        self.normalizer = NameNormalizer()
        self.agg = Aggregator(activity_window_s)
        self.index_raw_events = index_raw_events
        self.flush_interval_s = flush_interval_s
        self.ack = ack
        self.clock = clock
        self._redis = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dnsentinel-redis")
        self._pending_tokens: list[Any] = []
        self._pending_events = 0
        self._pending_actions: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()

    async def _redis_call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A blocking verdict-cache call off the loop; retried while Redis is down (nothing is acked meanwhile)."""
        loop = asyncio.get_running_loop()
        backoff = 0.2
        while True:
            t0 = time.perf_counter()
            try:
                result = await loop.run_in_executor(self._redis, fn, *args)
            except Exception as exc:
                self.metrics.redis_errors.labels(kind=type(exc).__name__).inc()
                log.warning("redis %s failed (%s: %s); retrying in %.1fs", getattr(fn, "__name__", fn),
                            type(exc).__name__, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self.metrics.redis_latency.observe(time.perf_counter() - t0)
            return result

    async def process(self, records: Sequence[Record], token: Any = None) -> list[Verdict]:
        """Run one batch; ``token`` is handed to ``ack`` once the batch's ES counts are written."""
        m = self.metrics
        m.batches.inc()
        m.batch_size.observe(len(records))
        m.events_in.inc(len(records))
        tri = triage(records, self.normalizer)
        deliveries: list[Awaitable[Any]] = []

        for rec, reason, detail in tri.invalid:
            m.invalid.labels(reason=reason).inc()
            value = dead_letter(rec.value, reason, detail, rec.topic, rec.partition, rec.offset)
            deliveries.append(await self.publish(self.topics.dlq, rec.key, value))
        for reason, n in tri.unscorable.items():
            m.unscorable.labels(reason=reason).inc(n)

        known: dict[str, str] = {}
        missing: list[str] = []
        for n in tri.domains:
            v = self.lru.get(n)
            if v is None:
                missing.append(n)
            else:
                known[n] = v
        if known:
            m.cache_hits.labels(where="lru").inc(len(known))
        if missing:
            decisions = await self._redis_call(self.cache.decide_many, missing)
            hits = 0
            for n in missing:
                k = known_value(decisions.get(n, "unknown"))
                if k is not None:
                    known[n] = k
                    self.lru.put(n, k)
                    hits += 1
            if hits:
                m.cache_hits.labels(where="redis").inc(hits)

        unseen = []
        for n in missing:
            if n in known:
                continue
            if self.flood.admit(tri.domains[n].registrable):
                unseen.append(n)
            else:
                m.flood_limited.inc()

        verdicts: list[Verdict] = []
        for i in range(0, len(unseen), self.batch_max):
            verdicts.extend(await self._score(unseen[i:i + self.batch_max], tri.first_ts, deliveries))
        for v in verdicts:
            known[v.name] = v.label

        self.agg.add_many(tri.parsed, known)
        now_ms = int(self.clock() * 1000)
        for v in verdicts:
            self.agg.note_verdict(v, now_ms)
        if self.index_raw_events:
            self._pending_actions.extend(self._raw_actions(tri))
        m.lru_size.set(len(self.lru))

        if deliveries:
            await asyncio.gather(*deliveries)  # DLQ and verdict messages are on Kafka before any ack
        self._pending_tokens.append(token)
        self._pending_events += len(records)
        return verdicts

    async def _score(self, names: list[str], first_ts: dict[str, int],
                     deliveries: list[Awaitable[Any]]) -> list[Verdict]:
        scored = await self.holder.score(names)
        now = self.clock()
        verdicts = [
            Verdict(n, label, round(score, 4), scored.version, int(now), fam, None if fp is None else round(fp, 4),
                    reason)
            for n, score, label, reason, (fam, fp) in zip(names, scored.scores, scored.labels, scored.reasons,
                                                          scored.families)
        ]
        await self._redis_call(self.cache.put_verdicts, verdicts)
        done = self.clock()
        m = self.metrics
        m.scored.inc(len(verdicts))
        for v in verdicts:
            self.lru.put(v.name, v.label)
            m.verdicts.labels(label=v.label).inc()
            m.verdict_latency.observe(max(0.0, done - first_ts[v.name] / 1000))
            ev = VerdictEvent(v.name, v.label, v.score, v.model, int(now * 1000), v.family, v.family_p)
            deliveries.append(await self.publish(self.topics.verdicts, ev.key(), ev.encode()))
        return verdicts

    def _raw_actions(self, tri: Any) -> list[dict[str, Any]]:
        out = []
        for p in tri.parsed:
            ev, rec = p.event, p.record
            doc = {k: getattr(ev, k) for k in ("ts", "name", "qtype", "client", "source", "server", "origin",
                                               "action", "decision", "rcode", "latency_us", "proto")}
            doc["kind"] = p.name.kind if p.name is not None else "invalid"
            doc["registrable"] = p.name.registrable if p.name is not None else None
            doc["invalid_reason"] = p.unscorable if p.name is None else None
            out.append({"_op_type": "index", "_index": index_name("events", ev.ts, prefix=self.es_prefix),
                        "_id": f"{rec.topic}|{rec.partition}|{rec.offset}", "_source": doc})
        return out

    def flush_due(self) -> bool:
        return time.monotonic() - self._last_flush >= self.flush_interval_s

    def flush(self) -> None:
        """Hand everything aggregated since the last flush to the sink (acks follow its write).

        The flush timer also runs while a batch awaits its verdict deliveries, when its counts are
        already aggregated but its ack token is not yet pending: with nothing else pending, the
        aggregator is left as it is (draining it then dropped those counts), and the batch's counts
        go out with its token at the next flush.
        """
        self._last_flush = time.monotonic()
        if not self._pending_tokens and not self._pending_actions:
            return
        activity, verdicts, vetting, _ = self.agg.drain()
        tokens, self._pending_tokens = self._pending_tokens, []
        events, self._pending_events = self._pending_events, 0
        actions, self._pending_actions = self._pending_actions, []
        on_done = (lambda: self.ack(tokens)) if self.ack is not None else None
        if self.sink is None:
            if on_done:
                on_done()
            return
        self.sink.submit(aggregate_docs(self.es_prefix, activity, verdicts, vetting), actions, events, on_done)

    def on_change(self, message: str) -> None:
        """A ``<p>:v1:changes`` message: vetted changes may cover subdomains, so they clear the LRU."""
        kind, _, name = message.partition(" ")
        if kind == "vetted":
            self.lru.clear()
        elif kind == "verdict":
            self.lru.drop(name)

    def close(self) -> None:
        self._redis.shutdown(wait=False, cancel_futures=True)
