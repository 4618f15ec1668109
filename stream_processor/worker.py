"""One batch of query events, start to finish: the worker's pipeline without Faust.

The batch consumer (consumer.py) hands whole batches of :class:`Record` to
:meth:`BatchProcessor.handle`; everything else lives here with its collaborators
injected (ports.py: verdict cache, model holder, Kafka publisher, Elasticsearch
sink), so unit tests drive it with fakes and integration tests with the real services.

A batch goes through two lanes. The **verdict lane** (:meth:`BatchProcessor.decide_now`) does only
what a new name's verdict needs, in a thread of its own (:meth:`BatchProcessor.run`: fetch,
decide, fetch the next batch), so nothing the event loop does delays a verdict by more than a GIL
switch interval (1 ms, app.GcPolicy):
1. triage: parse, normalize, dedup (triage.py);
2. the batch's distinct scorable names are looked up in the LRU, then in Redis
   (one pipelined ``decide_many``): fresh verdicts and vetted decisions are
   never re-scored;
3. unseen names pass the per-domain flood limit (limits.py), then ONE model call scores them;
4. the verdicts go to Redis (what the DNS path reads).
The **completion lane** (:meth:`BatchProcessor.complete`, on the event loop, batches in order) does the rest:
dead letters (counted by reason), the verdicts topic, activity aggregated for the next
Elasticsearch flush (activity.py), the behaviour detections (detections/: per-domain windows in
place, signals for the per-client ones published keyed by client), raw event documents. It does
not wait for a batch's Kafka deliveries before starting the next batch: the token becomes pending
once they are delivered and the batch before it is settled (at most ``LANE_DEPTH`` batches await
deliveries). Awaiting them in line made the lane, at ~20-40 ms per delivery round trip on a loaded
broker, the pace-setter that the verdict thread waited for (``stage="lane_full"``).
Before the lanes, a batch's new names waited for the previous batch's Kafka deliveries, its
aggregation and detections (and for whatever else held the loop): p50 ~50 ms, p99 0.4-1.8 s at
5,000 events/s (docs/BENCHMARKS.md). With both lanes on the loop, a fetched batch still waited for
the loop to finish its current completion step or flush before its triage could start (the
"transit" stage, ~37 ms per batch on a loaded machine); hence the thread.

The Kafka offsets of a batch are committed only after its verdicts are in Redis and on the
verdicts topic and its counts are in Elasticsearch (or dropped and counted), which makes a crash
lose nothing: the completion lane hands ack tokens to the flush in batch order, and a batch whose
completion failed is never acked (the worker stops; the next owner replays it).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Sequence, TypeVar

from dnsentinel.settings import WorkerSettings
from dnsentinel.verdict_cache.events import VerdictEvent, dead_letter
from dnsentinel.verdict_cache.keys import Verdict
from dnsentinel.verdict_cache.names import Name
from dnsentinel.stream_processor.activity import Aggregator, Fields
from dnsentinel.stream_processor.es_sink import aggregate_docs, raw_event_actions
from dnsentinel.stream_processor.limits import LRU, FloodLimiter
from dnsentinel.stream_processor.metrics import Metrics
from dnsentinel.stream_processor.ports import (Ack, BatchScorer, BatchSource, CountsSink, DetectionHook, Publisher,
                                               Token, VerdictStore)
from dnsentinel.stream_processor.triage import NameNormalizer, Record, Triage, known_value, triage

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

LANE_DEPTH = 8
"""Batches decided but not yet completed; beyond this the verdict lane waits (bounded memory)."""


class LaneStopped(Exception):
    """The worker stopped while the verdict lane was waiting (for Redis); its batch is never acked."""


@dataclass(slots=True)
class Topics:
    queries: str
    verdicts: str
    dlq: str


@dataclass(slots=True, eq=False)
class Decided:
    """A batch after the verdict lane: what the completion lane still has to do with it."""

    tri: Triage
    token: Token
    known: dict[str, str]
    verdicts: list[Verdict]
    scored_at: float
    size: int


class _End:
    """What the verdict thread posts last when its source stopped cleanly."""


_END = _End()
LaneItem = Decided | BaseException | _End | None
"""What the verdict thread posts to the loop: a decided batch, an empty poll (None), its failure, or _END."""


def _poster(loop: asyncio.AbstractEventLoop, lane: asyncio.Queue[LaneItem]) -> Callable[[LaneItem], None]:
    """Put items on ``lane`` from another thread (dropped once the loop is closed: nobody is reading)."""

    def post(item: LaneItem) -> None:
        try:
            loop.call_soon_threadsafe(lane.put_nowait, item)
        except RuntimeError:
            pass

    return post


@dataclass(eq=False, kw_only=True)
class BatchProcessor:
    """The pipeline of one worker (see the module docstring)."""

    cache: VerdictStore
    scorer: BatchScorer
    publish: Publisher
    sink: CountsSink | None
    metrics: Metrics
    topics: Topics
    es_prefix: str
    settings: WorkerSettings = field(default_factory=WorkerSettings)
    """The knobs it reads: batch_max, lru_size, max_new_names_per_domain_per_min, activity_window_s,
    index_raw_events, es_flush_interval_s."""
    ack: Ack | None = None
    detections: DetectionHook | None = None
    """Behaviour detections fed with every batch (None: off)."""
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        w = self.settings
        self.lru = LRU(w.lru_size)
        self.flood = FloodLimiter(w.max_new_names_per_domain_per_min)
        self.normalizer = NameNormalizer()
        self.agg = Aggregator(w.activity_window_s)
        self._verdict_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dnsentinel-verdict")
        self._stop = threading.Event()
        self._pending_tokens: list[Token] = []
        self._pending_events = 0
        self._pending_actions: list[Fields] = []
        self._last_flush = time.monotonic()
        self._lane: asyncio.Queue[Decided] | None = None
        self._lane_task: asyncio.Future[None] | None = None
        self._settling: deque[asyncio.Future[None]] = deque()
        """Completed batches awaiting their Kafka deliveries, oldest first."""

    async def handle(self, records: list[Record], token: Token) -> None:
        """The consume loop's callback: decide a batch (none when the poll was empty) and queue the
        rest of its work for the completion lane; tick the detections; flush when due.

        Raises what made the completion lane fail (the consume loop then stops the worker)."""
        self._lane_failed()
        if records:
            await self._enqueue(await self.decide(records, token))
        await self._between_batches()

    async def run(self, source: BatchSource) -> None:
        """Consume ``source`` until it stops: the verdict lane fetches and decides in its own thread,
        this coroutine completes the decided batches in order, ticks the detections, flushes when due.

        Raises what failed, a decision or a completion (the worker then stops; nothing unfinished is acked).
        """
        lane: asyncio.Queue[LaneItem] = asyncio.Queue()
        room = threading.Semaphore(LANE_DEPTH)
        self._stop.clear()
        post = _poster(asyncio.get_running_loop(), lane)
        threading.Thread(target=self._verdict_thread, args=(source, room, post), name="dnsentinel-verdict-lane",
                         daemon=True).start()
        try:
            while not isinstance(item := await lane.get(), _End):
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, Decided):
                    self._hand_over(await self._complete_work(item), item)
                    room.release()
                await self._bound_settling()
                await self._between_batches()
            await self.settled()
        finally:
            self._stop.set()

    def _verdict_thread(self, source: BatchSource, room: threading.Semaphore,
                        post: Callable[[LaneItem], None]) -> None:
        """The verdict lane's loop: fetch, decide (verdicts in Redis), post the batch to the loop, repeat.

        Waits only while the completion lane is ``LANE_DEPTH`` batches behind; an empty poll is
        posted too (the loop ticks the detections and flushes on it)."""
        try:
            while self._room(room, source):
                records, token = source.fetch()
                if not records or source.stopping:  # a batch fetched while stopping is left to the next owner
                    room.release()
                    post(None)
                    continue
                post(self.decide_now(records, token))
        except BaseException as exc:
            post(exc)
        else:
            post(_END)

    def _room(self, room: threading.Semaphore, source: BatchSource) -> bool:
        """Take a place in the completion lane, waiting while it is full (timed as the ``lane_full``
        stage); False once the worker stops."""
        if not room.acquire(blocking=False):
            t0 = time.perf_counter()
            while not room.acquire(timeout=0.1):
                if source.stopping or self._stop.is_set():
                    return False
            self.metrics.stage.labels(stage="lane_full").observe(time.perf_counter() - t0)
        if source.stopping or self._stop.is_set():
            room.release()
            return False
        return True

    async def _between_batches(self) -> None:
        if self.detections is not None:
            await self.detections.tick()
        if self.flush_due():
            self.flush()

    async def process(self, records: Sequence[Record], token: Token = None) -> list[Verdict]:
        """Run one batch through both lanes; ``token`` is handed to ``ack`` once the batch's ES counts are written."""
        batch = await self.decide(records, token)
        await self.complete(batch)
        return batch.verdicts

    async def decide(self, records: Sequence[Record], token: Token = None) -> Decided:
        """The verdict lane (:meth:`decide_now`) for one batch, in the lane's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._verdict_pool, self.decide_now, records, token)

    def decide_now(self, records: Sequence[Record], token: Token = None) -> Decided:
        """The verdict lane, blocking (in its own thread): triage, lookups, flood limit, one model call,
        verdicts into Redis."""
        m = self.metrics
        t0 = time.perf_counter()
        m.batches.inc()
        m.batch_size.observe(len(records))
        m.events_in.inc(len(records))
        tri = triage(records, self.normalizer)
        stage = m.stage
        t1 = time.perf_counter()
        stage.labels(stage="triage").observe(t1 - t0)
        if tri.first_ts:
            stage.labels(stage="transit").observe(max(0.0, self.clock() - min(tri.first_ts.values()) / 1000))
        known, missing = self._known(tri.domains)
        unseen = self._admit(missing, known, tri.domains)
        t2 = time.perf_counter()
        stage.labels(stage="lookup").observe(t2 - t1)
        verdicts: list[Verdict] = []
        step = self.settings.batch_max
        for i in range(0, len(unseen), step):
            verdicts.extend(self._score(unseen[i:i + step], tri.first_ts))
        if verdicts:
            stage.labels(stage="score").observe(time.perf_counter() - t2)
        return Decided(tri, token, known, verdicts, self.clock(), len(records))

    async def complete(self, batch: Decided) -> None:
        """The completion lane for one batch; returns once its ack token is pending."""
        self._hand_over(await self._complete_work(batch), batch)
        await self.settled()

    async def _complete_work(self, batch: Decided) -> list[Awaitable[object]]:
        """Dead letters, verdict messages, activity, detections; the batch's Kafka deliveries."""
        t0 = time.perf_counter()
        tri, known, verdicts = batch.tri, batch.known, batch.verdicts
        deliveries = await self._dead_letter(tri)
        now_ms = int(batch.scored_at * 1000)
        for v in verdicts:
            known[v.name] = v.label
            ev = VerdictEvent(v.name, v.label, v.score, v.model, now_ms, v.family, v.family_p)
            deliveries.append(await self.publish(self.topics.verdicts, ev.key(), ev.encode()))

        # The lane yields between its steps: a batch fetched meanwhile goes through the verdict
        # lane first instead of waiting for this one's aggregation and detections.
        await asyncio.sleep(0)
        t1 = time.perf_counter()
        self.agg.add_many(tri.parsed, known)
        stage = self.metrics.stage
        t2 = time.perf_counter()
        stage.labels(stage="aggregate").observe(t2 - t1)
        if self.detections is not None:
            await asyncio.sleep(0)
            t2 = time.perf_counter()
            signals = self.detections.observe(tri.parsed, known, verdicts)
            await self.detections.after_batch(signals, deliveries)
            stage.labels(stage="detections").observe(time.perf_counter() - t2)
        for v in verdicts:
            self.agg.note_verdict(v, now_ms)
        if self.settings.index_raw_events:
            self._pending_actions.extend(raw_event_actions(tri.parsed, self.es_prefix))
        self.metrics.lru_size.set(len(self.lru))
        stage.labels(stage="complete").observe(time.perf_counter() - t0)
        return deliveries

    def _hand_over(self, deliveries: list[Awaitable[object]], batch: Decided) -> None:
        """The batch's ack token becomes pending once its Kafka messages are delivered and the batch
        before it is settled (batch order), without holding up the next batch's completion."""
        before = self._settling[-1] if self._settling else None
        self._settling.append(asyncio.ensure_future(self._settle(deliveries, batch, before)))

    async def _settle(self, deliveries: list[Awaitable[object]], batch: Decided,
                      before: asyncio.Future[None] | None) -> None:
        if deliveries:
            await asyncio.gather(*deliveries)  # DLQ and verdict messages are on Kafka before any ack
        if before is not None:
            await before  # raises the earlier batch's failure: nothing after it becomes pending
        self._pending_tokens.append(batch.token)
        self._pending_events += batch.size

    async def _bound_settling(self) -> None:
        """Reap settled batches (a failed delivery raises: the worker stops, unacked); wait while
        ``LANE_DEPTH`` batches still await their deliveries."""
        settling = self._settling
        while settling and (settling[0].done() or len(settling) > LANE_DEPTH):
            await settling.popleft()

    async def settled(self) -> None:
        """Wait until every completed batch's token is pending."""
        while self._settling:
            await self._settling.popleft()

    async def _enqueue(self, batch: Decided) -> None:
        """Hand a decided batch to the completion lane (started on first use); waits while it is full."""
        if self._lane is None:
            self._lane = asyncio.Queue(LANE_DEPTH)
            self._lane_task = asyncio.ensure_future(self._complete_in_order(self._lane))
        if not self._lane.full():
            self._lane.put_nowait(batch)
            return
        put = asyncio.ensure_future(self._lane.put(batch))
        await self._until(put)

    async def _complete_in_order(self, lane: asyncio.Queue[Decided]) -> None:
        while True:
            batch = await lane.get()
            try:
                await self.complete(batch)
            finally:
                lane.task_done()

    async def _until(self, fut: asyncio.Future[object]) -> None:
        """Await ``fut`` unless the completion lane fails first (then raise its error)."""
        lane = self._lane_task
        assert lane is not None
        await asyncio.wait({fut, lane}, return_when=asyncio.FIRST_COMPLETED)
        if not fut.done():
            fut.cancel()
        self._lane_failed()

    def _lane_failed(self) -> None:
        lane = self._lane_task
        if lane is not None and lane.done():
            exc = None if lane.cancelled() else lane.exception()
            raise RuntimeError("the completion lane stopped") from exc

    async def drain(self) -> None:
        """Wait until every decided batch is completed (a clean stop, before the last flush)."""
        if self._lane is not None:
            await self._until(asyncio.ensure_future(self._lane.join()))
        await self.settled()

    async def _dead_letter(self, tri: Triage) -> list[Awaitable[object]]:
        """Publish the invalid events to the DLQ, count them and the unscorable names; the deliveries."""
        m = self.metrics
        deliveries = []
        for rec, reason, detail in tri.invalid:
            m.invalid.labels(reason=reason).inc()
            value = dead_letter(rec.value, reason, detail, rec.topic, rec.partition, rec.offset)
            deliveries.append(await self.publish(self.topics.dlq, rec.key, value))
        for reason, n in tri.unscorable.items():
            m.unscorable.labels(reason=reason).inc(n)
        return deliveries

    def _known(self, names: dict[str, Name]) -> tuple[dict[str, str], list[str]]:
        """(what the LRU or Redis knows per name, the names that were not in the LRU)."""
        m = self.metrics
        known: dict[str, str] = {}
        missing: list[str] = []
        for n in names:
            v = self.lru.get(n)
            if v is None:
                missing.append(n)
            else:
                known[n] = v
        if known:
            m.cache_hits.labels(where="lru").inc(len(known))
        if missing:
            decisions = self._redis_now(self.cache.decide_many, missing)
            hits = 0
            for n in missing:
                k = known_value(decisions.get(n))
                if k is not None:
                    known[n] = k
                    self.lru.put(n, k)
                    hits += 1
            if hits:
                m.cache_hits.labels(where="redis").inc(hits)
        return known, missing

    def _admit(self, missing: list[str], known: dict[str, str], names: dict[str, Name]) -> list[str]:
        """The unknown names to score now: those within their domain's flood limit (the rest are counted)."""
        unseen = []
        for n in missing:
            if n in known:
                continue
            if self.flood.admit(names[n].registrable):
                unseen.append(n)
            else:
                self.metrics.flood_limited.inc()
        return unseen

    def _score(self, names: list[str], first_ts: dict[str, int]) -> list[Verdict]:
        """One model call, then the verdicts into Redis (the DNS path reads them from there)."""
        scored = self.scorer.score_now(names)
        now = self.clock()
        verdicts = [
            Verdict(n, label, round(score, 4), scored.version, int(now), fam, None if fp is None else round(fp, 4),
                    reason)
            for n, score, label, reason, (fam, fp) in zip(names, scored.scores, scored.labels, scored.reasons,
                                                          scored.families)
        ]
        t0 = time.perf_counter()
        self._redis_now(self.cache.put_verdicts, verdicts)
        done = self.clock()
        m = self.metrics
        m.stage.labels(stage="redis_write").observe(time.perf_counter() - t0)
        m.scored.inc(len(verdicts))
        latency = m.verdict_latency
        for v in verdicts:
            self.lru.put(v.name, v.label)
            m.verdicts.labels(label=v.label).inc()
            latency.observe(max(0.0, done - first_ts[v.name] / 1000))
        return verdicts

    def _redis_now(self, fn: Callable[[T], R], arg: T) -> R:
        """A blocking verdict-cache call (in the lane's thread); retried while Redis is down (nothing is
        acked meanwhile) until the worker stops (:class:`LaneStopped`)."""
        backoff = 0.2
        while True:
            t0 = time.perf_counter()
            try:
                result = fn(arg)
            except Exception as exc:
                self.metrics.redis_errors.labels(kind=type(exc).__name__).inc()
                log.warning("redis %s failed (%s: %s); retrying in %.1fs", getattr(fn, "__name__", fn),
                            type(exc).__name__, exc, backoff)
                if self._stop.wait(backoff):
                    raise LaneStopped(f"worker stopping while redis is unreachable ({exc})") from exc
                backoff = min(backoff * 2, 5.0)
                continue
            self.metrics.redis_latency.observe(time.perf_counter() - t0)
            return result

    def flush_due(self) -> bool:
        return time.monotonic() - self._last_flush >= self.settings.es_flush_interval_s

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
        t0 = time.perf_counter()
        activity, verdicts, vetting, _ = self.agg.drain()
        tokens, self._pending_tokens = self._pending_tokens, []
        events, self._pending_events = self._pending_events, 0
        actions, self._pending_actions = self._pending_actions, []
        ack = self.ack
        on_done = (lambda: ack(tokens)) if ack is not None else None
        if self.sink is None:
            if on_done:
                on_done()
            return
        self.sink.submit(aggregate_docs(self.es_prefix, activity, verdicts, vetting), actions, events, on_done)
        self.metrics.stage.labels(stage="flush").observe(time.perf_counter() - t0)

    def on_change(self, message: str) -> None:
        """A ``<p>:v1:changes`` message: vetted changes may cover subdomains, so they clear the LRU."""
        kind, _, name = message.partition(" ")
        if kind == "vetted":
            self.lru.clear()
        elif kind == "verdict":
            self.lru.drop(name)

    def close(self) -> None:
        self._stop.set()
        if self._lane_task is not None:
            self._lane_task.cancel()
        self._verdict_pool.shutdown(wait=False, cancel_futures=True)
