"""The queries topic in, one batch at a time, with offsets committed only after the sink's ack.

Why not a Faust agent: Faust's consumer hands every message to the stream one
by one (``wait_first`` creates four asyncio tasks per message, then the
conductor, the channel queue, the ``Event`` object and the per-event ack), which
profiled at well over half of the worker's CPU and capped one worker at ~2,000
events per CPU-second. Here librdkafka (confluent-kafka, C) fetches and
decodes; a batch is fetched in a thread (:meth:`BatchConsumer._poll`), sized by what is
waiting; the event loop sees one list per batch.

Delivery is unchanged: a batch's token carries the highest offset per
partition; the sink acks chunks in order, and only then is ``offset + 1``
committed (asynchronously, by the fetching thread before its next poll; a failed commit only means a replay, which the
Elasticsearch offset versions and idempotent Redis writes absorb). Commits for
partitions this worker no longer owns are skipped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Awaitable, Callable

from dnsentinel.stream_processor.ports import Token
from dnsentinel.stream_processor.triage import Record

if TYPE_CHECKING:
    from confluent_kafka import Consumer, KafkaError, TopicPartition

log = logging.getLogger(__name__)

KafkaConfig = dict[str, object]
"""librdkafka settings (strings, numbers, booleans, callbacks)."""
Handler = Callable[[list[Record], Token], Awaitable[object]]
"""``await process(records, token)``: one batch (empty when the poll found nothing) and its ack token."""

STATS_INTERVAL_MS = 5000
"""How often librdkafka reports its statistics (the consumer lag per partition comes from them)."""
Lags = dict[int, tuple[int, int]]
"""Per partition: (messages behind the high watermark from the committed offset, from the consumed one)."""


def consumer_config(base: dict[str, str], group_id: str) -> KafkaConfig:
    """librdkafka consumer settings: manual commits, low fetch wait (latency), big prefetch (throughput)."""
    return {
        **base,
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 20,
        "fetch.min.bytes": 1,
        "queued.min.messages": 50_000,
        "enable.partition.eof": False,
        # librdkafka heartbeats from its own thread, so a busy event loop never misses one: a short
        # session only makes a killed worker's partitions move sooner.
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 3_000,
    }


def lags(stats_json: str, topic: str, owned: set[int]) -> Lags:
    """Consumer lag per owned partition from a librdkafka statistics report (STATISTICS.md).

    ``consumer_lag`` is the high watermark minus the committed offset (what
    ``kafka-consumer-groups --describe`` shows; -1 until the first commit); the second number is
    the high watermark minus the next offset handed to the worker (what it has not even seen).
    """
    parts = json.loads(stats_json).get("topics", {}).get(topic, {}).get("partitions", {})
    out: Lags = {}
    for key, p in parts.items():
        partition = int(key)
        if partition not in owned:  # -1 is librdkafka's internal "unassigned" partition
            continue
        hi, app = int(p.get("hi_offset", -1)), int(p.get("app_offset", -1))
        out[partition] = (int(p.get("consumer_lag", -1)), hi - app if hi >= 0 and app >= 0 else -1)
    return out


class BatchConsumer:
    """``run(process)`` feeds ``await process(records, token)`` until :meth:`stop`; :meth:`ack` marks
    offsets for the next commit (made by the fetching thread)."""

    def __init__(self, config: KafkaConfig, topic: str, batch_max: int, within_s: float, linger_s: float,
                 on_error: Callable[[str], object] | None = None, on_lag: Callable[[Lags], object] | None = None,
                 on_revoked: Callable[[list[int]], object] | None = None,
                 on_assigned: Callable[[list[int]], object] | None = None) -> None:
        from confluent_kafka import Consumer

        self.topic = topic
        self.batch_max = batch_max
        self.within_s = within_s
        self.linger_s = min(within_s, linger_s)
        self._assigned: set[int] = set()
        self._lock = threading.Lock()
        self._on_error = on_error
        self._on_lag = on_lag
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned
        if on_lag is not None:  # served from consume(), in the consume thread
            config = {**config, "statistics.interval.ms": STATS_INTERVAL_MS, "stats_cb": self._stats}
        self._consumer = Consumer({**config, "error_cb": self._error})
        self._consumer.subscribe([topic], on_assign=self._assign, on_revoke=self._revoke, on_lost=self._revoke)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dnsentinel-consume")
        self._fetching = threading.Lock()  # close() waits for a fetch in another thread (the verdict lane's)
        self._acked: dict[int, int] = {}
        """Highest acked offset per partition, not yet committed (see :meth:`ack`)."""
        self._stopping = False
        self.closed = False

    def _error(self, err: KafkaError) -> None:
        log.warning("kafka consumer: %s", err)
        if self._on_error is not None:
            self._on_error(str(err))

    def _assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        with self._lock:
            self._assigned.update(tp.partition for tp in partitions)
        log.info("assigned partitions %s", sorted(tp.partition for tp in partitions))
        if self._on_assigned is not None:
            self._on_assigned([tp.partition for tp in partitions])

    def _revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        with self._lock:
            self._assigned.difference_update(tp.partition for tp in partitions)
        log.info("revoked partitions %s", sorted(tp.partition for tp in partitions))
        if self._on_revoked is not None:
            self._on_revoked([tp.partition for tp in partitions])

    def _stats(self, stats_json: str) -> None:
        """librdkafka's statistics: hand on the lag of the partitions this consumer owns."""
        assert self._on_lag is not None
        try:
            self._on_lag(lags(stats_json, self.topic, self._assigned))
        except Exception as exc:  # a malformed report must not stop consumption
            log.warning("cannot read the kafka consumer statistics (%s)", exc)

    def _poll(self) -> list[Record]:
        """One batch (blocking, in the consume thread), sized by the backlog rather than by a timer.

        Whatever librdkafka has already fetched is taken at once (up to ``batch_max``); only when
        nothing is waiting does it block, up to ``within_s``, for the first record, then linger a
        few milliseconds for its neighbours. Under load batches grow by themselves; at low rates an
        event never waits for a batch to fill (a fixed ``within`` window added its full length to
        every verdict).
        """
        consume = self._consumer.consume
        msgs = consume(self.batch_max, 0)
        if not msgs:
            msgs = consume(1, self.within_s)
            if msgs and self.batch_max > 1 and self.linger_s > 0:
                msgs.extend(consume(self.batch_max - 1, self.linger_s))
        out = []
        for m in msgs:
            err = m.error()
            if err is not None:
                log.warning("kafka consume error: %s", err)
                continue
            out.append(Record(m.key(), m.value() or b"", m.topic(), m.partition(), m.offset()))
        return out

    async def run(self, process: Handler) -> None:
        """Fetch a batch (in the thread: librdkafka may block), process it, repeat.

        Not overlapped on purpose: a fetch running during processing would take the records of
        the next few milliseconds and leave later ones for the batch after, adding a whole batch
        time to their latency; librdkafka prefetches in its own threads anyway.
        """
        loop = asyncio.get_running_loop()
        while not self._stopping:
            records, token = await loop.run_in_executor(self._pool, self.fetch)
            if self._stopping:
                break  # not processed, not committed: the next owner replays them
            await process(records, token)

    @property
    def stopping(self) -> bool:
        return self._stopping

    def fetch(self) -> tuple[list[Record], Token]:
        """One batch and its ack token (blocking; any one thread at a time, never after :meth:`close`).

        The offsets acked since the last fetch are committed here first, in the fetching thread
        (see :meth:`ack`)."""
        with self._fetching:
            if self.closed:
                records: list[Record] = []
            else:
                self._commit_acked(asynchronous=True)
                records = self._poll()
        if not records:
            return records, None
        token: dict[int, int] = {}
        for r in records:
            if r.offset > token.get(r.partition, -1):
                token[r.partition] = r.offset
        return records, token

    def ack(self, tokens: list[Token]) -> None:
        """Note ``offset + 1`` per partition over ``tokens`` (batches whose effects are all stored) for
        the next commit, which the fetching thread makes before its next poll.

        Not committed from here (the event loop): confluent-kafka lets one call at a time into a
        client, and a commit made while the fetching thread sat in ``consume`` slept, holding
        the event loop, until that thread let go; the fetching thread consumes back to back, so on
        a loaded machine a commit waited seconds (the worker's /health answered in 1-5 s). A fetch
        starts at least every ``batch_within_s``, so commits wait at most that long, or one batch.
        """
        if self.closed:
            return
        with self._lock:
            acked = self._acked
            for token in tokens:
                if not token:
                    continue
                for p, off in token.items():
                    if off > acked.get(p, -1):
                        acked[p] = off

    def _commit_acked(self, asynchronous: bool) -> None:
        """Commit what :meth:`ack` noted, for the partitions this worker still owns (in the fetching thread)."""
        from confluent_kafka import TopicPartition

        with self._lock:
            acked, self._acked = self._acked, {}
            owned = [TopicPartition(self.topic, p, off + 1) for p, off in acked.items() if p in self._assigned]
        if not owned:
            return
        try:
            self._consumer.commit(offsets=owned, asynchronous=asynchronous)
        except Exception as exc:  # the group is rebalancing: the new owner replays, versions dedupe
            log.warning("offset commit failed (%s); those events will be replayed", exc)

    def stop(self) -> None:
        self._stopping = True

    def close(self) -> None:
        """Commit synchronously what is pending, leave the group."""
        if self.closed:
            return
        self._pool.shutdown(wait=True)
        with self._fetching:
            self._commit_acked(asynchronous=False)
            self.closed = True
        try:
            self._consumer.close()
        except Exception as exc:
            log.warning("closing the kafka consumer: %s", exc)
