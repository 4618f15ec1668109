"""Smoke test of the real local stack: each service does its one job end to end.

Names carry a random suffix so concurrent sessions never collide, and every
test removes what it made.
"""

from __future__ import annotations

import time
import uuid

import pytest

pytestmark = pytest.mark.integration


def _suffix() -> str:
    return uuid.uuid4().hex[:10]


def test_status_reports_every_service_healthy(stack):
    from dnsentinel.cli import stackctl

    rows = {r.name: r for r in stackctl.status(stack)}
    assert set(rows) == set(stackctl.SERVICES)
    for row in rows.values():
        assert row.healthy, f"{row.name}: {row.state} {row.detail}"
        assert row.version and row.version != "?"
    assert rows["kafka"].version == stackctl.versions()["KAFKA_VERSION"]
    assert rows["elasticsearch"].version == stackctl.versions()["ELASTICSEARCH_VERSION"]


def test_kafka_produce_and_consume(stack):
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    conf = stack.kafka.confluent_config()
    topic = f"smoke-{_suffix()}"
    admin = AdminClient(conf)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(timeout=30)
    try:
        producer = Producer(conf)
        producer.produce(topic, key=b"example.com", value=b'{"qname":"example.com"}')
        assert producer.flush(30) == 0
        consumer = Consumer({**conf, "group.id": f"smoke-{_suffix()}", "auto.offset.reset": "earliest"})
        consumer.subscribe([topic])
        got = None
        deadline = time.monotonic() + 60
        while got is None and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None:
                assert msg.error() is None, msg.error()
                got = msg
        consumer.close()
        assert got is not None, "no message consumed back within 60 s"
        assert (got.key(), got.value()) == (b"example.com", b'{"qname":"example.com"}')
    finally:
        admin.delete_topics([topic])[topic].result(timeout=30)


def test_pipeline_topics_have_their_partition_counts(stack):
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient(stack.kafka.confluent_config())
    topics = admin.list_topics(timeout=30).topics
    k = stack.kafka
    for name, parts in ((k.queries_topic, k.queries_partitions), (k.verdicts_topic, k.verdicts_partitions), (k.dlq_topic, k.dlq_partitions)):
        assert name in topics, f"topic {name} missing"
        assert len(topics[name].partitions) == parts
    res = ConfigResource(ConfigResource.Type.TOPIC, k.verdicts_topic)
    conf = admin.describe_configs([res])[res].result(timeout=30)
    assert conf["cleanup.policy"].value == "compact"


def test_redis_write_and_read(stack):
    import redis

    r = redis.Redis.from_url(stack.redis.url, **stack.redis.client_kwargs())
    key = f"smoke-{_suffix()}:k"
    try:
        assert r.set(key, "v1", ex=60)
        assert r.get(key) == b"v1"
    finally:
        r.delete(key)
        r.close()


def test_elasticsearch_index_and_search(stack):
    from elasticsearch import Elasticsearch

    es = Elasticsearch(**stack.elasticsearch.client_kwargs())
    index = f"smoke-{_suffix()}"
    try:
        es.index(index=index, id="1", document={"name": "example.com", "score": 0.25}, refresh=True)
        hits = es.search(index=index, query={"term": {"name.keyword": "example.com"}})["hits"]
        assert hits["total"]["value"] == 1
        assert hits["hits"][0]["_source"]["score"] == 0.25
    finally:
        es.indices.delete(index=index, ignore_unavailable=True)
        es.close()


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_coredns_resolves_a_name(stack, tcp):
    import dns.message
    import dns.query
    import dns.rdatatype

    q = dns.message.make_query(f"smoke-{_suffix()}.example.com.", dns.rdatatype.A)
    send = dns.query.tcp if tcp else dns.query.udp
    reply = send(q, stack.coredns.host, port=stack.coredns.port, timeout=5)
    assert reply.rcode() == 0
    addrs = [rd.address for rrset in reply.answer for rd in rrset]
    assert addrs, "no A record in the answer"
    if not stack.coredns.upstream:
        assert addrs == ["192.0.2.1"]  # the template answer of deploy/coredns/resolver-template.tmpl
