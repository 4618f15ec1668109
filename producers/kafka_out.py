"""A confluent-kafka producer tuned for bulk replay, that loses nothing at exit.

Throughput comes from big lz4 batches (``linger.ms``, ``batch.size``) and from asking librdkafka
for delivery reports on failures only. Correctness comes from three things: ``BufferError``
(local queue full) is answered by polling and retrying with a growing pause rather than
dropping; ``flush`` at close waits for every in-flight message; failed deliveries are counted
by error so the summary can report them. ``partitioner=murmur2_random`` makes a key land on the
same partition as when the Go plugin produces it (SPEC §2.1).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from dnsentinel.errors import ServiceUnavailable
from dnsentinel.settings import Settings, get_settings

THROUGHPUT_CONFIG: dict[str, Any] = {
    "partitioner": "murmur2_random",
    "linger.ms": 20,
    "batch.num.messages": 10_000,
    "batch.size": 1_000_000,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 500_000,
    "queue.buffering.max.kbytes": 512 * 1024,
    "acks": "all",
    "enable.idempotence": True,
    "delivery.report.only.error": True,
    "message.timeout.ms": 120_000,
}


class EventProducer:
    """Produce (key, value) pairs to one topic; count failures; flush everything on close."""

    POLL_EVERY = 2_000

    def __init__(self, topic: str | None = None, settings: Settings | None = None,
                 overrides: dict[str, Any] | None = None) -> None:
        from confluent_kafka import Producer

        settings = self._settings = settings or get_settings()
        self.topic = topic or settings.kafka.queries_topic
        conf: dict[str, Any] = {**settings.kafka.confluent_config(), **THROUGHPUT_CONFIG, **(overrides or {})}
        conf["on_delivery"] = self._on_delivery
        conf["error_cb"] = self._on_error
        self._producer = Producer(conf)
        self.sent = 0
        self.failed: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.queue_full_waits = 0
        self._since_poll = 0

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.failed[err.name() if hasattr(err, "name") else str(err)] += 1

    def _on_error(self, err: Any) -> None:
        self.errors[err.name() if hasattr(err, "name") else str(err)] += 1

    def check_reachable(self, timeout_s: float = 10.0) -> None:
        """Fail fast with one clear line when the brokers or the topic cannot be reached.

        The brokers are checked first (kafka_check.py): a wrong SASL password or an untrusted
        certificate is named as such instead of ending in a metadata timeout.
        """
        from confluent_kafka import KafkaException

        from dnsentinel.kafka_check import check_kafka

        check_kafka(self._settings.kafka, timeout_s)
        try:
            md = self._producer.list_topics(self.topic, timeout=timeout_s)
        except KafkaException as exc:
            raise ServiceUnavailable(f"Kafka unreachable ({exc.args[0] if exc.args else exc}); is the stack up?") from exc
        topic = md.topics.get(self.topic)
        if topic is None or topic.error is not None:
            raise ServiceUnavailable(f"Kafka topic {self.topic!r} is not available: {topic.error if topic else 'missing'}")

    def produce(self, key: bytes, value: str | bytes, timestamp_ms: int | None = None) -> None:
        """Queue one message; on a full local queue, serve callbacks and retry, never drop."""
        producer = self._producer
        pause = 0.001
        while True:
            try:
                if timestamp_ms is None:
                    producer.produce(self.topic, value, key)
                else:
                    producer.produce(self.topic, value, key, timestamp=timestamp_ms)
                break
            except BufferError:
                self.queue_full_waits += 1
                producer.poll(pause)
                pause = min(pause * 2, 0.5)
        self.sent += 1
        self._since_poll += 1
        if self._since_poll >= self.POLL_EVERY:
            self._since_poll = 0
            producer.poll(0)

    def raw_produce(self) -> tuple[object, str]:
        """The librdkafka ``produce`` and topic, for hot loops that call it directly.

        Such a loop must send a ``BufferError`` to :meth:`produce` (which waits and retries),
        call :meth:`poll` now and then, and report what it sent with :meth:`count_sent`.
        """
        return self._producer.produce, self.topic

    def count_sent(self, n: int) -> None:
        self.sent += n

    def poll(self, timeout_s: float = 0.0) -> None:
        self._producer.poll(timeout_s)

    def close(self, timeout_s: float = 120.0) -> int:
        """Flush; returns how many messages were still undelivered at the deadline (counted failed)."""
        remaining = self._producer.flush(timeout_s)
        if remaining:
            self.failed["flush_timeout"] += remaining
        return remaining

    @property
    def delivered(self) -> int:
        return self.sent - sum(self.failed.values())
