"""Kafka of the cluster profile: clients per principal, the pipeline topics (RF 3) and the ACLs.

deploy/cluster/kafka.sh starts the nodes (SCRAM users are made when a node is formatted); this
module does what needs a client, connected as ``admin`` over SASL_SSL: it waits until every
broker is registered, creates the topics through stackctl.ensure_topics (the one place that
knows their partitions and configs) with the cluster's replication factor and min ISR, and
grants each principal what its component does, nothing more (:func:`acl_bindings`). Topic and
group names come from the settings only.

    python -m dnsentinel.cli.cluster.kafka setup     # after deploy/cluster/kafka.sh start
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from dnsentinel.cli.cluster.profile import CLUSTER_ENV, cluster_dir, read_env_file, run_main
from dnsentinel.errors import ServiceUnavailable
from dnsentinel.settings import Settings

PRINCIPALS = ("admin", "coredns", "worker", "replay", "dashboard")
"""The SCRAM users (deploy/cluster/kafka.sh formats the nodes with them; pki.sh makes their passwords)."""
DASHBOARD_GROUP_PREFIX = "dnsentinel-dashboard"
"""Consumer groups the dashboard may use (it reads verdicts and alerts)."""
REPLICATION_FACTOR = 3
MIN_INSYNC_REPLICAS = 2


def bootstrap_servers(env: Mapping[str, str]) -> str:
    """Every node's client listener: node N on KAFKA_CLIENT_PORT + N - 1."""
    host, base = env["CLUSTER_HOST"], int(env["KAFKA_CLIENT_PORT"])
    return ",".join(f"{host}:{base + i}" for i in range(int(env["KAFKA_NODES"])))


def client_settings(settings: Settings, user: str, directory: Path | None = None) -> Settings:
    """``settings`` with Kafka pointed at the cluster as ``user`` (SCRAM-SHA-512 over TLS, the profile's CA)."""
    if user not in PRINCIPALS:
        raise ValueError(f"no Kafka principal {user!r}; one of {', '.join(PRINCIPALS)}")
    directory = directory or cluster_dir(settings)
    secrets_file = directory / "secrets.env"
    if not secrets_file.is_file():
        raise ServiceUnavailable(f"kafka cluster: no {secrets_file}; start it first: deploy/cluster/kafka.sh start")
    password = read_env_file(secrets_file)[f"PASSWORD_{user.upper()}"]
    kafka = settings.kafka.model_copy(update={
        "bootstrap_servers": bootstrap_servers(read_env_file(CLUSTER_ENV)),
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": user,
        "sasl_password": SecretStr(password),
        "ssl_cafile": directory / "pki" / "ca.crt",
        "replication_factor": REPLICATION_FACTOR,
        "min_insync_replicas": MIN_INSYNC_REPLICAS,
    })
    return settings.model_copy(update={"kafka": kafka})


def wait_brokers(settings: Settings, expected: int, timeout_s: float = 120.0) -> int:
    """Wait until ``expected`` brokers are registered (in the metadata); a bad login fails at once."""
    from confluent_kafka.admin import AdminClient

    from dnsentinel.kafka_check import check_kafka

    k = settings.kafka
    check_kafka(k, min(timeout_s, 30.0))
    admin = AdminClient(k.confluent_config())
    deadline = time.monotonic() + timeout_s
    seen = 0
    while time.monotonic() < deadline:
        seen = len(admin.list_topics(timeout=10).brokers)
        if seen >= expected:
            return seen
        time.sleep(0.5)
    raise ServiceUnavailable(f"kafka at {k.bootstrap_servers}: {seen} of {expected} brokers registered after "
                             f"{timeout_s:.0f}s; see deploy/cluster/kafka.sh status and logs")


def acl_bindings(settings: Settings) -> list[Any]:
    """Every ACL of the pipeline, per principal, from the topic and group names of ``settings``.

    * coredns: produces query events (its franz-go producer is not idempotent: no IdempotentWrite).
    * replay: produces query events (an idempotent producer needs only Write on a topic, KIP-679).
    * worker: consumes queries and signals (groups ``<app_id>``, ``<app_id>-signals``); produces
      verdicts, dead letters, signals and alerts; Faust declares those topics at start (Create on
      an existing topic only answers "already exists") and keeps its own topics and groups under
      the app id (prefixed).
    * dashboard: reads verdicts and alerts in groups starting with :data:`DASHBOARD_GROUP_PREFIX`.
    * admin is a super user (server.properties.tmpl); so are the nodes' certificates.
    """
    from confluent_kafka.admin import AclOperation as Op
    from confluent_kafka.admin import ResourcePatternType as Pattern
    from confluent_kafka.admin import ResourceType as Res

    k, d, app = settings.kafka, settings.detections, settings.worker.app_id
    pipeline = [k.queries_topic, k.verdicts_topic, k.dlq_topic, d.signals_topic, d.alerts_topic]
    grants: list[tuple[str, Any, str, Any, tuple[Any, ...]]] = [
        ("coredns", Res.TOPIC, k.queries_topic, Pattern.LITERAL, (Op.WRITE, Op.DESCRIBE)),
        ("replay", Res.TOPIC, k.queries_topic, Pattern.LITERAL, (Op.WRITE, Op.DESCRIBE)),
        ("worker", Res.TOPIC, k.queries_topic, Pattern.LITERAL, (Op.READ,)),
        ("worker", Res.TOPIC, d.signals_topic, Pattern.LITERAL, (Op.READ,)),
        *(("worker", Res.TOPIC, t, Pattern.LITERAL, (Op.DESCRIBE, Op.CREATE)) for t in pipeline),
        *(("worker", Res.TOPIC, t, Pattern.LITERAL, (Op.WRITE,))
          for t in (k.verdicts_topic, k.dlq_topic, d.signals_topic, d.alerts_topic)),
        ("worker", Res.TOPIC, app, Pattern.PREFIXED, (Op.CREATE, Op.READ, Op.WRITE, Op.DESCRIBE)),
        ("worker", Res.GROUP, app, Pattern.PREFIXED, (Op.READ, Op.DESCRIBE)),
        *(("dashboard", Res.TOPIC, t, Pattern.LITERAL, (Op.READ, Op.DESCRIBE)) for t in (k.verdicts_topic, d.alerts_topic)),
        ("dashboard", Res.GROUP, DASHBOARD_GROUP_PREFIX, Pattern.PREFIXED, (Op.READ, Op.DESCRIBE)),
    ]
    return [_allow(user, res, name, pattern, op) for user, res, name, pattern, ops in grants for op in ops]


def _allow(user: str, res: Any, name: str, pattern: Any, op: Any) -> Any:
    from confluent_kafka.admin import AclBinding, AclPermissionType

    return AclBinding(res, name, pattern, f"User:{user}", "*", op, AclPermissionType.ALLOW)


def ensure_acls(settings: Settings, bindings: list[Any], timeout_s: float = 30.0) -> None:
    """Create the ACLs (creating one that exists changes nothing); ``settings`` connect as admin."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from dnsentinel.kafka_check import explain_kafka

    k = settings.kafka
    admin = AdminClient(k.confluent_config())
    for binding, fut in admin.create_acls(bindings, request_timeout=timeout_s).items():
        try:
            fut.result(timeout=timeout_s)
        except KafkaException as exc:
            raise ServiceUnavailable(f"kafka at {k.bootstrap_servers}: could not grant {binding.principal} "
                                     f"{binding.operation.name} on {binding.name}: {explain_kafka(exc.args[0], k)}") from None
    wait_acls_applied(settings, bindings, timeout_s)


def wait_acls_applied(settings: Settings, bindings: list[Any], timeout_s: float = 30.0) -> None:
    """Wait until every broker enforces ``bindings``.

    In KRaft, CreateAcls answers once the controller has committed the records; each broker
    applies them when it replays the metadata log, a moment later (seconds on a loaded machine).
    A client that writes in between is refused with TOPIC_AUTHORIZATION_FAILED, a permanent
    error for librdkafka, so the set-up waits here. Each broker is asked on its own (a client
    bootstrapped with one address asks that broker), and it answers from its own authorizer.
    """
    from confluent_kafka.admin import AclBindingFilter, AclOperation, AclPermissionType, AdminClient
    from confluent_kafka.admin import ResourcePatternType as Pattern
    from confluent_kafka.admin import ResourceType as Res

    every = AclBindingFilter(Res.ANY, None, Pattern.ANY, None, None, AclOperation.ANY, AclPermissionType.ANY)
    wanted = set(bindings)
    deadline = time.monotonic() + timeout_s
    for address in settings.kafka.bootstrap_servers.split(","):
        admin = AdminClient({**settings.kafka.confluent_config(), "bootstrap.servers": address})
        missing = len(wanted)
        while time.monotonic() < deadline:
            applied = set(admin.describe_acls(every, request_timeout=10).result(timeout=15))
            missing = len(wanted - applied)
            if not missing:
                break
            time.sleep(0.2)
        else:
            raise ServiceUnavailable(f"kafka at {address}: {missing} of {len(wanted)} ACLs not applied after "
                                     f"{timeout_s:.0f}s; see deploy/cluster/kafka.sh logs")


def setup(settings: Settings, echo: bool = True, timeout_s: float = 120.0) -> Settings:
    """After the nodes are up: every broker registered, then the topics, then the ACLs (idempotent).

    Returns the admin client settings it used."""
    from dnsentinel.cli import stackctl

    admin = client_settings(settings, "admin")
    nodes = int(read_env_file(CLUSTER_ENV)["KAFKA_NODES"])
    wait_brokers(admin, nodes, timeout_s)
    stackctl.ensure_topics(admin, echo=echo)
    bindings = acl_bindings(admin)
    ensure_acls(admin, bindings)
    if echo:
        print(f"kafka: {nodes} brokers registered; topics RF {admin.kafka.replication_factor}, "
              f"min ISR {admin.kafka.min_insync_replicas}; {len(bindings)} ACLs in place")
    return admin


def main(argv: list[str] | None = None) -> int:
    """``python -m dnsentinel.cli.cluster.kafka setup`` (deploy/cluster.sh runs it after the nodes start)."""
    return run_main("kafka", "kafka", {"setup": lambda s: setup(s) and None}, argv)


if __name__ == "__main__":
    sys.exit(main())
