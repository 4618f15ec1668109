"""Replay into the real Kafka (a unique topic) and read the events back; --wait-verdicts against
the real Redis (a unique prefix). The report's test moved to tests/dashboard/test_report_integration.py."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest

from dnsentinel.producers.kafka_out import EventProducer
from dnsentinel.producers.replay import ReplayOptions, replay
from dnsentinel.verdict_cache.events import parse_event
from dnsentinel.verdict_cache.names import routing_key

from .helpers import LOGS

pytestmark = pytest.mark.integration

VECTORS = json.loads((LOGS.parent.parent.parent / "verdict_cache" / "vectors.json").read_text())


@pytest.fixture
def topic(stack):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(stack.kafka.confluent_config())
    name = f"test.producers.{uuid.uuid4().hex[:10]}"
    admin.create_topics([NewTopic(name, 6, 1)])[name].result(30)
    yield name
    admin.delete_topics([name])[name].result(30)


def consume_all(settings, topic: str, expected: int, timeout_s: float = 60.0):
    from confluent_kafka import Consumer

    consumer = Consumer({**settings.kafka.confluent_config(), "group.id": f"test-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    got = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(got) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 1.0):
                assert msg.error() is None, msg.error()
                got.append(msg)
        # anything beyond `expected` would be a duplicate: give it a moment to show up
        for msg in consumer.consume(1000, 1.0):
            got.append(msg)
    finally:
        consumer.close()
    return got


def test_replay_every_format_into_kafka(stack, topic):
    files = [LOGS / n for n in ("zeek_dns.log.gz", "zeek_dns.json", "bind_query.log", "coredns_log.log",
                                "dnstap_client.fstrm", "events.jsonl", "queries.csv")]
    sink = EventProducer(topic=topic)
    sink.check_reachable()
    summary = replay([str(f) for f in files], sink, ReplayOptions())
    assert sink.close() == 0 and not sink.failed
    assert summary.produced == sink.sent == sink.delivered > 20
    msgs = consume_all(stack, topic, summary.produced)
    assert len(msgs) == summary.produced
    partition_of: dict[bytes, int] = {}
    origins = set()
    for m in msgs:
        ev = parse_event(m.value())
        assert m.key() == routing_key(ev.name)
        assert partition_of.setdefault(m.key(), m.partition()) == m.partition()  # one key, one partition
        origins.add(ev.origin)
        assert ev.source == "replay"
    assert origins == {f.name for f in files}
    # the original timestamps are kept: the Zeek fixture's first query is at 1763629200.125
    zeek = [parse_event(m.value()) for m in msgs if parse_event(m.value()).origin == "zeek_dns.log.gz"]
    assert min(e.ts for e in zeek) == 1763629200125
    # murmur2 agreement with the Go plugin: the contract vectors pin example.com to partition 3 of 6
    assert partition_of[b"example.com"] == 3


def test_partitions_match_the_contract_vectors(stack, topic):
    cases = [v for v in VECTORS["partitions"] if v["partitions"] == 6]
    assert cases
    sink = EventProducer(topic=topic)
    for i, case in enumerate(cases):
        sink.produce(case["key"].encode(), json.dumps({"i": i}))
    assert sink.close() == 0
    msgs = consume_all(stack, topic, len(cases))
    got = {json.loads(m.value())["i"]: m.partition() for m in msgs}
    assert got == {i: c["partition"] for i, c in enumerate(cases)}


def test_full_local_queue_waits_instead_of_dropping(stack, topic):
    sink = EventProducer(topic=topic, overrides={"queue.buffering.max.messages": 50, "linger.ms": 50})
    for i in range(3000):
        sink.produce(b"k%d" % (i % 17), '{"i":%d}' % i)
    assert sink.close() == 0
    assert sink.queue_full_waits > 0 and sink.delivered == 3000
    assert len(consume_all(stack, topic, 3000)) == 3000


def test_unknown_topic_is_a_clear_error(stack):
    from dnsentinel.errors import ServiceUnavailable

    sink = EventProducer(topic=f"test.producers.absent.{uuid.uuid4().hex[:8]}",
                         overrides={"allow.auto.create.topics": False})
    with pytest.raises(ServiceUnavailable, match="not available"):
        sink.check_reachable(timeout_s=10)


def test_wait_verdicts_against_redis(stack):
    import redis

    from dnsentinel.producers.wait import wait_for_verdicts
    from dnsentinel.verdict_cache.cache import Verdict, VerdictCache

    client = redis.Redis.from_url(stack.redis.url, **stack.redis.client_kwargs())
    prefix = f"test-producers-{uuid.uuid4().hex[:8]}"
    cache = VerdictCache(client, prefix=prefix)
    names = {"a.example.com", "b.example.com"}

    def workers() -> None:
        time.sleep(0.5)
        cache.put_verdicts([Verdict(n, "benign", 0.01, "test-1", int(time.time())) for n in names])

    t = threading.Thread(target=workers)
    t.start()
    try:
        assert wait_for_verdicts(names, cache, timeout_s=20, poll_s=0.1) == set()
    finally:
        t.join()
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
