"""Writing to Elasticsearch without ever holding up verdicts.

The worker hands the sink *chunks*: the bulk actions built from everything
aggregated since the last flush, plus a callback that acks the Kafka events
those actions came from. A background task writes chunks in order with
``async_bulk``; only after a chunk is written (or, beyond the bound, dropped
and counted) are its events acked, so a crash replays whatever Elasticsearch
has not seen. Documents are written whole, versioned (``version_type=external``)
by the highest source offset they count, so a replayed event is never counted
twice and a stale writer is rejected (:func:`apply_counts`, :class:`DocStore`).

Bound: at most ``max_pending_actions`` actions and ``max_pending_events``
held events wait in memory. Beyond either, the oldest chunk is dropped: its
actions are counted in ``dnsentinel_worker_es_dropped_actions_total`` (and logged),
its events are acked. Redis and the verdicts topic are written before the
sink is involved, so Elasticsearch being slow or down never loses a verdict.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable

from dnsentinel.settings import WorkerSettings
from dnsentinel.verdict_cache.es_schema import (
    BLOCKED, CLIENT_ADDRESS, CLIENT_IP, COUNT, DECISION, EVENT_ACTION, EVENT_DURATION, EVENT_END, EVENT_KIND,
    EVENT_KINDS, EVENT_START, INVALID_REASON, LOG_FILE, NAME_KIND, OBSERVER, QTYPES, Q_TYPE, QUERY_COUNT, QUERY_SOURCE,
    RESPONSE_CODE, SOURCE_IP, SRC_OFFSET, STATUS, TIMESTAMP, TRANSPORT, Family, doc_id, index_name, question,
)
from dnsentinel.verdict_cache.events import is_ip
from dnsentinel.stream_processor.activity import INVALID_KIND, ActivityKey, Counted, Fields
from dnsentinel.stream_processor.metrics import Metrics
from dnsentinel.stream_processor.triage import Parsed

if TYPE_CHECKING:
    from elasticsearch import AsyncElasticsearch

log = logging.getLogger(__name__)
_EVENT_KIND = EVENT_KINDS["events"]

DocRef = tuple[Family, str, str, Counted]
"""(family, index, id, counted events) of one document a flush counts into."""
DocKey = tuple[str, str]
"""(index, id)."""
Stored = tuple[Fields | None, int]
"""A document's source (None: not in Elasticsearch) and the highest source offset it counts (-1: none)."""

FAMILY_COUNTS: dict[Family, tuple[str, str | None, bool, bool]] = {
    # family: (count field, blocked field, keeps first/last seen, keeps qtypes)
    "activity": (COUNT, BLOCKED, False, True),
    "verdicts": (QUERY_COUNT, None, True, False),
    "vetting": (QUERY_COUNT, None, True, False),
}


def activity_id(name: str, client: str, minute: int) -> str:
    return doc_id(f"{name}|{client}|{minute}")


def apply_counts(family: Family, source: Fields | None, version: int, c: Counted) -> tuple[Fields, int] | None:
    """The document after adding ``c``'s events whose offset is above ``version``; None if none are.

    ``version`` is the highest source offset already counted in the document
    (its Elasticsearch external version, -1 when new). All events of one name
    share a partition (the routing key), so offsets order them totally and a
    replayed event is recognised by its offset alone.
    """
    if c.events == 0 or c.top <= version:
        return None
    if c.low > version:  # the usual case (no replay): every event is new, no walk over the offsets
        n, b, hi = c.events, c.n_blocked, c.top
    else:
        n, b, hi = _new_events(c, version)
    fields = {k: v for k, v in c.fields.items() if v is not None}
    src = fields if source is None else {**source, **fields}
    count_field, blocked_field, seen, qtypes = FAMILY_COUNTS[family]
    src[count_field] = int(src.get(count_field) or 0) + n
    if blocked_field:
        src[blocked_field] = int(src.get(blocked_field) or 0) + b
    if seen:
        src[EVENT_START] = min(c.first, src.get(EVENT_START) or c.first)
        src[EVENT_END] = max(c.last, src.get(EVENT_END) or c.last)
    if qtypes and c.qtypes:
        src[QTYPES] = sorted(set(src.get(QTYPES) or ()) | c.qtypes)
    return src, hi


def _new_events(c: Counted, version: int) -> tuple[int, int, int]:
    """(events, blocked events, highest offset) of ``c`` above ``version``: a replay overlapped it."""
    n = b = 0
    hi = version
    for offs in c.offset_lists():
        top = max(offs)
        if top <= version:
            continue
        n += sum(1 for o in offs if o > version)
        if top > hi:
            hi = top
    for offs in (c.blocked or {}).values():
        b += sum(1 for o in offs if o > version)
    return n, b, hi


def aggregate_docs(prefix: str, activity: dict[ActivityKey, Counted], verdicts: dict[str, Counted],
                   vetting: dict[str, Counted]) -> list[DocRef]:
    """The documents of one drained :class:`~dnsentinel.stream_processor.activity.Aggregator`."""
    out: list[DocRef] = []
    days: dict[int, str] = {}  # index name per minute: formatting a date per document was a visible cost
    for (name, client, minute), c in activity.items():
        idx = days.get(minute)
        if idx is None:
            idx = days[minute] = index_name("activity", minute, prefix=prefix)
        out.append(("activity", idx, activity_id(name, client, minute), c))
    v_index = index_name("verdicts", prefix=prefix)
    out.extend(("verdicts", v_index, doc_id(name), c) for name, c in verdicts.items())
    q_index = index_name("vetting", prefix=prefix)
    out.extend(("vetting", q_index, doc_id(name), c) for name, c in vetting.items())
    return out


def event_document(p: Parsed) -> Fields:
    """The raw event document of one event: its SPEC §2.2 fields under their ECS names (SPEC §4.1)."""
    ev, nm = p.event, p.name
    doc: Fields = {
        EVENT_KIND: _EVENT_KIND, TIMESTAMP: ev.ts, **question(ev.name, nm.registrable if nm is not None else None),
        Q_TYPE: ev.qtype, CLIENT_ADDRESS: ev.client, QUERY_SOURCE: ev.source, OBSERVER: ev.server,
        LOG_FILE: ev.origin, EVENT_ACTION: ev.action, DECISION: ev.decision, RESPONSE_CODE: ev.rcode,
        EVENT_DURATION: ev.latency_us * 1000 if ev.latency_us is not None else None, TRANSPORT: ev.proto,
        NAME_KIND: nm.kind if nm is not None else INVALID_KIND,
    }
    if nm is None:
        doc[INVALID_REASON] = p.unscorable
    if is_ip(ev.client):
        doc[CLIENT_IP] = doc[SOURCE_IP] = ev.client
    return {k: v for k, v in doc.items() if v is not None}


def raw_event_actions(parsed: Iterable[Parsed], prefix: str) -> list[Fields]:
    """Bulk actions indexing each event as it came (``worker.index_raw_events``), id ``topic|partition|offset``."""
    out: list[Fields] = []
    for p in parsed:
        ev, rec = p.event, p.record
        doc = event_document(p)
        out.append({"_op_type": "index", "_index": index_name("events", ev.ts, prefix=prefix),
                    "_id": f"{rec.topic}|{rec.partition}|{rec.offset}", "_source": doc})
    return out


class DocStore:
    """The worker's copy of the documents it counts into, loaded from Elasticsearch on first touch.

    Writes are whole documents with ``version_type=external`` and the highest
    counted offset as version, so a stale writer (a crashed or revoked worker
    replaying old events) is rejected by Elasticsearch instead of double
    counting. Bounded: least recently used documents are forgotten and
    re-read when touched again.
    """

    def __init__(self, size: int = 500_000) -> None:
        self.size = size
        self.docs: OrderedDict[DocKey, Stored] = OrderedDict()

    def missing(self, keys: Iterable[DocKey]) -> list[DocKey]:
        return [k for k in dict.fromkeys(keys) if k not in self.docs]

    def get(self, key: DocKey) -> Stored:
        return self.docs.get(key, (None, -1))

    def put(self, key: DocKey, source: Fields | None, version: int) -> None:
        self.docs[key] = (source, version)
        self.docs.move_to_end(key)
        while len(self.docs) > self.size:
            self.docs.popitem(last=False)

    def forget(self, key: DocKey) -> None:
        self.docs.pop(key, None)


@dataclass(slots=True)
class Chunk:
    docs: list[DocRef]
    actions: list[Fields]
    events: int
    on_done: Callable[[], object] | None

    @property
    def size(self) -> int:
        return len(self.docs) + len(self.actions)


class EsSink:
    """Ordered, bounded, retrying bulk writer (see the module docstring for the bound)."""

    def __init__(self, es: AsyncElasticsearch, metrics: Metrics | None = None, *, chunk_size: int = 2000,
                 max_retries: int = 3, max_pending_actions: int = 200_000, max_pending_events: int = 2_000_000,
                 backoff_s: float = 0.5, max_backoff_s: float = 10.0, store_size: int = 500_000) -> None:
        self.es = es
        self.metrics = metrics
        self.chunk_size = chunk_size
        self.max_retries = max_retries
        self.max_pending_actions = max_pending_actions
        self.max_pending_events = max_pending_events
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.store = DocStore(store_size)
        self._generation = 0  # bumped by invalidate() (another thread): the store is cleared before the next write
        self._store_generation = 0
        self._chunks: deque[Chunk] = deque()
        self.pending_actions = 0
        self.pending_events = 0
        self.dropped_actions = 0
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False
        self._give_up = False

    @classmethod
    def from_settings(cls, es: AsyncElasticsearch, metrics: Metrics, w: WorkerSettings) -> EsSink:
        return cls(es, metrics, chunk_size=w.es_bulk_chunk, max_retries=w.es_max_retries,
                   max_pending_actions=w.es_max_pending_actions, max_pending_events=w.es_max_pending_events)

    def submit(self, docs: list[DocRef], actions: list[Fields] | None = None, events: int = 0,
               on_done: Callable[[], object] | None = None) -> None:
        """Queue a chunk; never blocks (beyond the bound the oldest chunk is dropped, counted)."""
        chunk = Chunk(docs, actions or [], events, on_done)
        self._chunks.append(chunk)
        self.pending_actions += chunk.size
        self.pending_events += events
        self._idle.clear()
        while len(self._chunks) > 1 and (self.pending_actions > self.max_pending_actions
                                         or self.pending_events > self.max_pending_events):
            old = self._chunks.popleft()
            self._drop(old)
            log.warning("elasticsearch backlog over its bound: dropped %d actions (%d events), %d dropped so far",
                        old.size, old.events, self.dropped_actions)
        self._gauge()
        self._wakeup.set()

    def _drop(self, chunk: Chunk) -> None:
        """Give up on a chunk: counted in ``es_dropped_actions``, its events acked (their verdicts are in Redis)."""
        self._release(chunk)
        self.dropped_actions += chunk.size
        if self.metrics:
            self.metrics.es_dropped.inc(chunk.size)

    def _release(self, chunk: Chunk) -> None:
        self.pending_actions -= chunk.size
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
                await self._write(chunk)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection refused, timeouts: keep the chunk, retry later
                if self.metrics:
                    self.metrics.es_errors.labels(kind=type(exc).__name__).inc()
                if getattr(exc, "status_code", None) == 400 and self._chunks and self._chunks[0] is chunk:
                    # The request itself is refused (e.g. an invalid action): it would be refused
                    # forever and hold up every chunk behind it. Drop it, counted and logged.
                    log.error("elasticsearch refused a bulk request of %d actions (%s); dropped",
                              chunk.size, str(exc)[:300])
                    self._drop(self._chunks.popleft())
                    continue
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

    async def _load(self, keys: list[DocKey]) -> None:
        """Read documents touched for the first time (their counts and counted-offset version)."""
        for i in range(0, len(keys), 5000):
            part = keys[i:i + 5000]
            resp = await self.es.mget(docs=[{"_index": idx, "_id": doc_id} for idx, doc_id in part])
            for (idx, doc_id), d in zip(part, resp["docs"]):
                if d.get("found"):
                    src = d["_source"]
                    version = int(src.get(SRC_OFFSET, -1)) if idx.endswith("-vetting") else int(d["_version"])
                    self.store.put((idx, doc_id), src, version)
                else:
                    self.store.put((idx, doc_id), None, -1)

    def _actions(self, chunk: Chunk) -> tuple[list[Fields], dict[DocKey, tuple[Fields, int]]]:
        """The bulk actions of a chunk and the documents they write (to remember once written)."""
        actions: list[Fields] = []
        new: dict[DocKey, tuple[Fields, int]] = {}
        for family, idx, doc_id, c in chunk.docs:
            key = (idx, doc_id)
            src, version = new.get(key) or self.store.get(key)
            result = apply_counts(family, src, version, c)
            if result is None:
                continue
            doc, hi = result
            new[key] = result
            if family == "vetting":
                # Partial update: the analysts' ``status`` (set by the dashboard) is never overwritten.
                doc[SRC_OFFSET] = hi
                fields = {k: v for k, v in doc.items() if k != STATUS}
                actions.append({"_op_type": "update", "_index": idx, "_id": doc_id, "doc": fields,
                                "upsert": {**doc, STATUS: doc.get(STATUS) or "pending"}})
            else:
                actions.append({"_op_type": "index", "_index": idx, "_id": doc_id, "_source": doc,
                                "version": hi, "version_type": "external"})
        actions.extend(chunk.actions)
        return actions, new

    async def _write(self, chunk: Chunk) -> None:
        from elasticsearch.helpers import async_bulk

        generation = self._generation
        if generation != self._store_generation:  # partitions moved: cached counts may be another worker's past
            self.store.docs.clear()
            self._store_generation = generation
        missing = self.store.missing((idx, doc_id) for _, idx, doc_id, _ in chunk.docs)
        if missing:
            await self._load(missing)
        # Building thousands of documents is CPU work: a thread keeps the loop (heartbeats, fetches) turning.
        actions, new = await asyncio.get_running_loop().run_in_executor(None, self._actions, chunk)
        if not actions:
            return
        t0 = time.perf_counter()
        _, errors = await async_bulk(
            self.es, actions, chunk_size=self.chunk_size, max_retries=self.max_retries,
            initial_backoff=1, max_backoff=self.max_backoff_s, raise_on_error=False,
            raise_on_exception=True, refresh=False,
            # Only what the error handling below reads: decoding full item metadata was a top cost.
            filter_path="errors,items.*.status,items.*._index,items.*._id,items.*.error.type,items.*.error.reason",
        )
        if self.metrics:
            self.metrics.es_latency.observe(time.perf_counter() - t0)
        if self._generation != generation:
            new = {}  # a rebalance happened while writing: re-read these documents when next touched
        self._settle(new, errors if isinstance(errors, list) else [], len(actions))

    def invalidate(self) -> None:
        """Partitions were assigned or revoked (called from the consumer's thread): forget every cached
        document before the next write. A partition that moved away and back was counted by another
        worker meanwhile; writing from the old cached count would overwrite those events with a higher
        version (the offsets only grow) and lose them. Re-reading costs one GET per document, once."""
        self._generation += 1

    def _settle(self, new: dict[DocKey, tuple[Fields, int]], errors: list[dict[str, Fields]], n_actions: int) -> None:
        """Remember the documents written; forget (re-read next time) and count the ones rejected."""
        failed: set[DocKey] = set()
        conflicts = 0
        for err in errors:
            item = next(iter(err.values()))
            failed.add((item.get("_index"), item.get("_id")))
            if item.get("status") == 409:
                conflicts += 1  # a newer writer got there first: its document already counts these events
        for key, (doc, version) in new.items():
            if key in failed:
                self.store.forget(key)
            else:
                self.store.put(key, doc, version)
        rejected = len(failed) - conflicts
        if conflicts and self.metrics:
            self.metrics.es_errors.labels(kind="version_conflict").inc(conflicts)
        if rejected > 0:
            # Mapping errors or exhausted 429 retries would fail again on replay: count, log, move on.
            if self.metrics:
                self.metrics.es_errors.labels(kind="item").inc(rejected)
            first = next(e for e in errors if next(iter(e.values())).get("status") != 409)
            log.error("elasticsearch rejected %d of %d actions; first: %s", rejected, n_actions, first)

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
