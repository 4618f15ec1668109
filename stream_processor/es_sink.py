"""Writing to Elasticsearch without ever holding up verdicts.

The worker hands the sink *chunks*: the bulk actions built from everything
aggregated since the last flush, plus a callback that acks the Kafka events
those actions came from. A background task writes chunks in order with
``async_bulk``; only after a chunk is written (or, beyond the bound, dropped
and counted) are its events acked, so a crash replays whatever Elasticsearch
has not seen. Counters are applied by an upsert script that remembers the
highest offset counted per source partition, so a replay never counts twice.

Bound: at most ``max_pending_actions`` actions and ``max_pending_events``
held events wait in memory. Beyond either, the oldest chunk is dropped: its
actions are counted in ``dnsentinel_es_dropped_actions_total`` (and logged),
its events are acked. Redis and the verdicts topic are written before the
sink is involved, so Elasticsearch being slow or down never loses a verdict.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from dnsentinel.stream_processor.es_schema import index_name
from dnsentinel.stream_processor.pipeline import Counted

log = logging.getLogger(__name__)

# Counts only the offsets above the per-partition watermark of the document,
# then raises the watermark; a chunk seen before becomes a no-op.
COUNT_SCRIPT = """
if (ctx._source.wm == null) { ctx._source.wm = new HashMap(); }
long n = 0; long b = 0;
for (entry in params.offs.entrySet()) {
  String p = entry.getKey();
  long w = ctx._source.wm.containsKey(p) ? ((Number) ctx._source.wm.get(p)).longValue() : -1L;
  long hi = w;
  for (def o : entry.getValue()) { long x = ((Number) o).longValue(); if (x > w) { n++; if (x > hi) { hi = x; } } }
  def bl = params.blk.get(p);
  if (bl != null) { for (def o : bl) { if (((Number) o).longValue() > w) { b++; } } }
  ctx._source.wm.put(p, hi);
}
if (n == 0) { ctx.op = 'noop'; return; }
for (entry in params.set.entrySet()) { if (entry.getValue() != null) { ctx._source[entry.getKey()] = entry.getValue(); } }
def c = ctx._source[params.cf];
ctx._source[params.cf] = (c == null ? 0L : ((Number) c).longValue()) + n;
if (params.bf != null) { def bc = ctx._source[params.bf]; ctx._source[params.bf] = (bc == null ? 0L : ((Number) bc).longValue()) + b; }
if (params.first != null) {
  def f = ctx._source.first_seen; if (f == null || ((Number) f).longValue() > params.first) { ctx._source.first_seen = params.first; }
  def l = ctx._source.last_seen; if (l == null || ((Number) l).longValue() < params.last) { ctx._source.last_seen = params.last; }
}
if (params.qt != null) {
  if (ctx._source.qtypes == null) { ctx._source.qtypes = new ArrayList(); }
  for (q in params.qt) { if (!ctx._source.qtypes.contains(q)) { ctx._source.qtypes.add(q); } }
}
"""

VETTING_SCRIPT = """
for (entry in params.set.entrySet()) { if (entry.getValue() != null) { ctx._source[entry.getKey()] = entry.getValue(); } }
if (ctx._source.status == null) { ctx._source.status = 'pending'; }
if (ctx._source.query_count == null) { ctx._source.query_count = 0L; }
"""


def count_action(index: str, doc_id: str, c: Counted, *, count_field: str, blocked_field: str | None,
                 seen: bool, qtypes: bool) -> dict[str, Any]:
    """A scripted upsert adding ``c``'s events to the document, exactly once per offset."""
    params: dict[str, Any] = {
        "offs": {str(p): o for p, o in c.offsets.items()},
        "blk": {str(p): o for p, o in c.blocked.items()},
        "set": c.fields,
        "cf": count_field,
        "bf": blocked_field,
        "first": c.first if seen else None,
        "last": c.last if seen else None,
        "qt": sorted(c.qtypes) if qtypes else None,
    }
    return {
        "_op_type": "update", "_index": index, "_id": doc_id,
        "script": {"source": COUNT_SCRIPT, "lang": "painless", "params": params},
        "scripted_upsert": True, "upsert": {},
    }


def activity_id(name: str, client: str, minute: int) -> str:
    return f"{name}|{client}|{minute}"


def aggregate_actions(prefix: str, activity: dict, verdicts: dict, vetting: dict) -> list[dict[str, Any]]:
    """Bulk actions for one drained :class:`~dnsentinel.stream_processor.pipeline.Aggregator`."""
    actions = []
    for (name, client, minute), c in activity.items():
        actions.append(count_action(index_name("activity", minute, prefix=prefix), activity_id(name, client, minute), c,
                                    count_field="count", blocked_field="blocked", seen=False, qtypes=True))
    v_index = index_name("verdicts", prefix=prefix)
    for name, c in verdicts.items():
        actions.append(count_action(v_index, name, c, count_field="query_count", blocked_field=None, seen=True, qtypes=False))
    q_index = index_name("vetting", prefix=prefix)
    for name, c in vetting.items():
        actions.append(count_action(q_index, name, c, count_field="query_count", blocked_field=None, seen=True, qtypes=False))
    return actions


def verdict_actions(prefix: str, verdicts: Iterable[Any], names: dict[str, Any]) -> list[dict[str, Any]]:
    """Upserts for freshly scored names (label fields; counts come from :func:`count_action`)."""
    v_index = index_name("verdicts", prefix=prefix)
    q_index = index_name("vetting", prefix=prefix)
    actions = []
    for v in verdicts:
        n = names.get(v.name)
        doc = {
            "name": v.name, "label": v.label, "score": float(v.score), "model": v.model,
            "family": v.family, "family_p": v.family_p, "scored_at": int(time.time() * 1000),
            "registrable": getattr(n, "registrable", None), "kind": "domain",
        }
        actions.append({"_op_type": "update", "_index": v_index, "_id": v.name, "doc": doc, "doc_as_upsert": True})
        if v.label == "uncertain":
            fields = {"name": v.name, "score": float(v.score), "model": v.model, "family": v.family,
                      "registrable": doc["registrable"]}
            actions.append({
                "_op_type": "update", "_index": q_index, "_id": v.name,
                "script": {"source": VETTING_SCRIPT, "lang": "painless", "params": {"set": fields}},
                "scripted_upsert": True, "upsert": {},
            })
    return actions


@dataclass(slots=True)
class Chunk:
    actions: list[dict[str, Any]]
    events: int
    on_done: Callable[[], Any] | None


class EsSink:
    """Ordered, bounded, retrying bulk writer (see the module docstring for the bound)."""

    def __init__(self, es: Any, metrics: Any = None, *, chunk_size: int = 2000, max_retries: int = 3,
                 max_pending_actions: int = 200_000, max_pending_events: int = 2_000_000,
                 backoff_s: float = 0.5, max_backoff_s: float = 10.0) -> None:
        self.es = es
        self.metrics = metrics
        self.chunk_size = chunk_size
        self.max_retries = max_retries
        self.max_pending_actions = max_pending_actions
        self.max_pending_events = max_pending_events
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._chunks: deque[Chunk] = deque()
        self.pending_actions = 0
        self.pending_events = 0
        self.dropped_actions = 0
        self.item_errors = 0
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False

    def submit(self, actions: list[dict[str, Any]], events: int = 0, on_done: Callable[[], Any] | None = None) -> None:
        """Queue a chunk; never blocks (beyond the bound the oldest chunk is dropped, counted)."""
        self._chunks.append(Chunk(actions, events, on_done))
        self.pending_actions += len(actions)
        self.pending_events += events
        self._idle.clear()
        while len(self._chunks) > 1 and (self.pending_actions > self.max_pending_actions
                                         or self.pending_events > self.max_pending_events):
            old = self._chunks.popleft()
            self._release(old)
            self.dropped_actions += len(old.actions)
            if self.metrics:
                self.metrics.es_dropped.inc(len(old.actions))
            log.warning("elasticsearch backlog over its bound: dropped %d actions (%d events), %d dropped so far",
                        len(old.actions), old.events, self.dropped_actions)
        self._gauge()
        self._wakeup.set()

    def _release(self, chunk: Chunk) -> None:
        self.pending_actions -= len(chunk.actions)
        self.pending_events -= chunk.events
        if chunk.on_done is not None:
            chunk.on_done()

    def _gauge(self) -> None:
        if self.metrics:
            self.metrics.es_backlog.set(self.pending_actions)

    async def run(self) -> None:
        """Write chunks until :meth:`stop`; a failing cluster is retried with capped backoff."""
        backoff = self.backoff_s
        while True:
            if not self._chunks:
                self._idle.set()
                if self._stopping:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            chunk = self._chunks[0]
            try:
                await self._write(chunk.actions)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection refused, timeouts: keep the chunk, retry later
                if self.metrics:
                    self.metrics.es_errors.labels(kind=type(exc).__name__).inc()
                log.warning("elasticsearch write failed (%s: %s); %d actions waiting, retry in %.1fs",
                            type(exc).__name__, exc, self.pending_actions, backoff)
                if self._stopping and self._give_up:
                    return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
                continue
            backoff = self.backoff_s
            if self._chunks and self._chunks[0] is chunk:  # not dropped meanwhile
                self._chunks.popleft()
                self._release(chunk)
            self._gauge()

    _give_up = False

    async def _write(self, actions: list[dict[str, Any]]) -> None:
        from elasticsearch.helpers import async_bulk

        if not actions:
            return
        t0 = time.perf_counter()
        _, errors = await async_bulk(
            self.es, actions, chunk_size=self.chunk_size, max_retries=self.max_retries,
            initial_backoff=1, max_backoff=self.max_backoff_s, raise_on_error=False,
            raise_on_exception=True, refresh=False,
        )
        if self.metrics:
            self.metrics.es_latency.observe(time.perf_counter() - t0)
        if errors:
            # Rejected items (mapping errors, exhausted 429 retries) will not succeed on replay
            # either: count and log them rather than block the queue behind them.
            self.item_errors += len(errors)
            if self.metrics:
                self.metrics.es_errors.labels(kind="item").inc(len(errors))
            log.error("elasticsearch rejected %d of %d actions; first: %s", len(errors), len(actions), errors[0])

    async def drain(self, timeout: float) -> bool:
        """Wait until everything queued is written; False if ``timeout`` passed first."""
        self._wakeup.set()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def stop(self, timeout: float = 10.0) -> None:
        self._stopping = True
        self._wakeup.set()
        if not await self.drain(timeout):
            self._give_up = True
            log.error("stopping with %d elasticsearch actions unwritten; their events stay unacked and are replayed",
                      self.pending_actions)
