"""Kafka of the cluster profile: 3 KRaft nodes, SASL_SSL/SCRAM for every client, RF 3, ACLs.

Runs against the nodes deploy/cluster/kafka.sh starts, through the profile's ``cluster`` fixture
(tests/cluster/conftest.py; ``DNSENTINEL_TEST_CLUSTER_SERVICES=kafka`` starts Kafka alone), whose
``up`` also made the pipeline's topics and ACLs (dnsentinel.cli.cluster.kafka.setup). The
produce/consume and refusal checks use topics, groups and ACLs named with a random tag, made by
the same functions, so a running pipeline is never disturbed; every test removes what it made.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dnsentinel.cli.cluster import kafka as ck
from dnsentinel.errors import ServiceUnavailable
from dnsentinel.settings import REPO_ROOT, Settings

pytestmark = [pytest.mark.cluster, pytest.mark.integration]

KAFKA_SH = REPO_ROOT / "deploy" / "cluster" / "kafka.sh"


def _script(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(KAFKA_SH), *args], capture_output=True, text=True, timeout=timeout)


def _tagged(settings: Settings) -> Settings:
    """``settings`` whose topics and worker app id carry a random tag."""
    tag = f"t{uuid.uuid4().hex[:8]}"
    k, d, w = settings.kafka, settings.detections, settings.worker
    return settings.model_copy(update={
        "kafka": k.model_copy(update={f: f"{tag}.{getattr(k, f)}" for f in ("queries_topic", "verdicts_topic", "dlq_topic")}
                              | {"queries_partitions": 2, "verdicts_partitions": 2}),
        "detections": d.model_copy(update={"signals_topic": f"{tag}.{d.signals_topic}", "alerts_topic": f"{tag}.{d.alerts_topic}"}),
        "worker": w.model_copy(update={"app_id": f"{tag}-{w.app_id}"}),
    })


@pytest.fixture
def pipeline(cluster: Any) -> Iterator[tuple[Settings, Path]]:
    """Tagged pipeline topics and their ACLs, made by ``setup``'s own steps; removed afterwards."""
    from confluent_kafka.admin import AclBindingFilter, AdminClient

    from dnsentinel.cli import stackctl

    tagged = _tagged(cluster.settings_as("admin"))
    admin_settings = ck.client_settings(tagged, "admin", cluster.dir)
    stackctl.ensure_topics(admin_settings, echo=False)
    bindings = ck.acl_bindings(admin_settings)
    ck.ensure_acls(admin_settings, bindings)
    yield tagged, cluster.dir
    admin = AdminClient(admin_settings.kafka.confluent_config())
    filters = [AclBindingFilter(b.restype, b.name, b.resource_pattern_type, b.principal, b.host, b.operation,
                                b.permission_type) for b in bindings]
    for fut in admin.delete_acls(filters, request_timeout=30).values():
        fut.result(timeout=30)
    for fut in admin.delete_topics([name for name, _, _ in stackctl.topic_specs(tagged)], request_timeout=30).values():
        fut.result(timeout=30)


def _as(settings: Settings, user: str, directory: Path) -> dict[str, object]:
    """librdkafka settings of ``user`` on the cluster (its password from the profile's secrets)."""
    return ck.client_settings(settings, user, directory).kafka.confluent_config()


def test_status_and_three_registered_brokers(cluster: Any) -> None:
    from confluent_kafka.admin import AdminClient

    status = _script("status")
    assert status.returncode == 0, status.stdout
    rows = [ln.split() for ln in status.stdout.splitlines()]
    assert [(r[0], r[2]) for r in rows] == [("kafka-1", "healthy"), ("kafka-2", "healthy"), ("kafka-3", "healthy")]
    brokers = AdminClient(cluster.settings_as("admin").kafka.confluent_config()).list_topics(timeout=30).brokers
    assert sorted(brokers) == [1, 2, 3]


def test_pipeline_topics_have_rf3_and_min_isr2(cluster: Any) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource

    from dnsentinel.cli import stackctl

    settings = cluster.settings_as("admin")
    admin = AdminClient(settings.kafka.confluent_config())
    meta = admin.list_topics(timeout=30).topics
    specs = stackctl.topic_specs(settings)
    for name, partitions, _ in specs:
        assert len(meta[name].partitions) == partitions
        assert {len(p.replicas) for p in meta[name].partitions.values()} == {3}, name
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name, _, _ in specs]
    for res, fut in admin.describe_configs(resources, request_timeout=30).items():
        assert fut.result(timeout=30)["min.insync.replicas"].value == "2", res.name


def test_replay_produces_with_acks_all_and_worker_consumes(pipeline: tuple[Settings, Path]) -> None:
    from confluent_kafka import Consumer

    from dnsentinel.producers.kafka_out import EventProducer

    settings, directory = pipeline
    producer = EventProducer(settings=ck.client_settings(settings, "replay", directory))  # the replay's client: acks=all
    producer.check_reachable()
    key, value = uuid.uuid4().hex.encode(), b'{"test": "replay to worker"}'
    producer.produce(key, value)
    assert producer.close(30) == 0 and not producer.failed, producer.failed

    consumer = Consumer({**_as(settings, "worker", directory), "group.id": f"{settings.worker.app_id}-test",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([settings.kafka.queries_topic])
    try:
        got = None
        for _ in range(60):
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            if msg.key() == key:
                got = msg.value()
                break
        assert got == value
    finally:
        consumer.close()


def test_coredns_may_not_read_queries(pipeline: tuple[Settings, Path]) -> None:
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    settings, directory = pipeline
    consumer = Consumer({**_as(settings, "coredns", directory), "group.id": f"{settings.worker.app_id}-coredns",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(settings.kafka.queries_topic, 0, 0)])
    try:
        codes = []
        for _ in range(30):
            msg = consumer.poll(1.0)
            if msg is not None:
                assert msg.error() is not None, "coredns read a query event"
                codes.append(msg.error().code())
                if codes[-1] == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                    break
        assert KafkaError.TOPIC_AUTHORIZATION_FAILED in codes, codes
    finally:
        consumer.close()


def test_coredns_may_not_produce_verdicts(pipeline: tuple[Settings, Path]) -> None:
    from confluent_kafka import KafkaError, Producer

    settings, directory = pipeline
    results: list[Any] = []
    producer = Producer({**_as(settings, "coredns", directory), "acks": "all", "message.timeout.ms": 20_000})
    producer.produce(settings.kafka.verdicts_topic, b"forged", b"k", on_delivery=lambda err, msg: results.append(err))
    producer.flush(30)
    assert len(results) == 1 and results[0] is not None
    assert results[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_wrong_password_is_one_clear_line(cluster: Any) -> None:
    from pydantic import SecretStr

    from dnsentinel.kafka_check import check_kafka

    worker = cluster.settings_as("worker").kafka
    wrong = worker.model_copy(update={"sasl_password": SecretStr("not-the-password")})
    with pytest.raises(ServiceUnavailable) as err:
        check_kafka(wrong, timeout_s=60)
    message = str(err.value)
    assert "\n" not in message
    assert "authentication failed for user worker" in message and "SCRAM-SHA-512" in message
    assert wrong.bootstrap_servers in message


def test_client_without_the_cluster_ca_is_one_clear_line(cluster: Any, tmp_path: Path) -> None:
    from dnsentinel.kafka_check import check_kafka

    other_ca = tmp_path / "other-ca.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=not ours",
                    "-keyout", str(tmp_path / "other-ca.key"), "-out", str(other_ca)], check=True, capture_output=True)
    stranger = cluster.settings_as("worker").kafka.model_copy(update={"ssl_cafile": other_ca})
    with pytest.raises(ServiceUnavailable) as err:
        check_kafka(stranger, timeout_s=60)
    message = str(err.value)
    assert "\n" not in message and "not trusted" in message and "ssl_cafile" in message


def test_acls_name_only_the_settings_topics_and_groups() -> None:
    """Renaming a topic in the settings moves its ACLs with it: no name is spelled twice."""
    from confluent_kafka.admin import AclOperation, ResourceType

    tagged = _tagged(Settings())
    k, d, app = tagged.kafka, tagged.detections, tagged.worker.app_id
    names = {k.queries_topic, k.verdicts_topic, k.dlq_topic, d.signals_topic, d.alerts_topic, app,
             ck.DASHBOARD_GROUP_PREFIX}
    bindings = ck.acl_bindings(tagged)
    assert {b.name for b in bindings} <= names
    grants = {(b.principal, b.restype, b.name, b.operation) for b in bindings}
    assert ("User:coredns", ResourceType.TOPIC, k.queries_topic, AclOperation.WRITE) in grants
    assert ("User:worker", ResourceType.TOPIC, k.queries_topic, AclOperation.READ) in grants
    assert not any(p == "User:coredns" and op == AclOperation.READ for p, _, _, op in grants)
    assert not any(p == "User:replay" and n != k.queries_topic for p, _, n, _ in grants)
