"""Offset commits of the batch consumer, with a stand-in for librdkafka's consumer (no broker).

confluent-kafka lets one call at a time into a client: a commit made from the event loop while
the fetching thread sat in ``consume`` slept, holding the loop, for seconds on a loaded machine.
So ``ack`` only notes offsets, and the fetching thread commits them before its next poll.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from dnsentinel.stream_processor.consumer import BatchConsumer

TOPIC = "q"


class FakeKafkaConsumer:
    """Records every commit with the thread that made it; polls find nothing."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.commits: list[tuple[str, list[tuple[int, int]], bool]] = []
        self.closed = False

    def subscribe(self, topics: list[str], on_assign: Any, on_revoke: Any, on_lost: Any) -> None:
        self.on_assign, self.on_revoke = on_assign, on_revoke

    def consume(self, num: int, timeout: float) -> list[Any]:
        return []

    def commit(self, offsets: list[Any], asynchronous: bool) -> None:
        self.commits.append((threading.current_thread().name, [(tp.partition, tp.offset) for tp in offsets],
                             asynchronous))

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def consumer(monkeypatch: pytest.MonkeyPatch) -> tuple[BatchConsumer, FakeKafkaConsumer]:
    import confluent_kafka
    from confluent_kafka import TopicPartition

    made: list[FakeKafkaConsumer] = []

    def make(config: dict[str, Any]) -> FakeKafkaConsumer:
        made.append(FakeKafkaConsumer(config))
        return made[-1]

    monkeypatch.setattr(confluent_kafka, "Consumer", make)
    c = BatchConsumer({}, TOPIC, batch_max=100, within_s=0.001, linger_s=0.0)
    fake = made[0]
    fake.on_assign(fake, [TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)])
    return c, fake


def _fetch_in_thread(c: BatchConsumer) -> None:
    with ThreadPoolExecutor(1, thread_name_prefix="fetcher") as pool:
        pool.submit(c.fetch).result()


def test_ack_only_notes_offsets_and_the_fetching_thread_commits_them(consumer) -> None:
    c, fake = consumer
    c.ack([{0: 10}, None, {0: 12, 1: 5}])
    assert fake.commits == []  # nothing from the acking thread (the event loop)
    _fetch_in_thread(c)
    assert len(fake.commits) == 1
    thread, offsets, asynchronous = fake.commits[0]
    assert thread.startswith("fetcher") and sorted(offsets) == [(0, 13), (1, 6)] and asynchronous
    _fetch_in_thread(c)
    assert len(fake.commits) == 1  # committed once


def test_revoked_partitions_are_not_committed_and_close_commits_what_is_left(consumer) -> None:
    from confluent_kafka import TopicPartition

    c, fake = consumer
    fake.on_revoke(fake, [TopicPartition(TOPIC, 1)])
    c.ack([{0: 20, 1: 9}])
    _fetch_in_thread(c)
    assert [offsets for _, offsets, _ in fake.commits] == [[(0, 21)]]
    c.ack([{0: 30}])
    c.close()
    assert fake.commits[-1][1:] == ([(0, 31)], False) and fake.closed
    c.ack([{0: 40}])  # after close: ignored
    assert len(fake.commits) == 2
