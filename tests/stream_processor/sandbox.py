"""The isolated resources of one worker run: its topics, Redis key prefix, index prefix and group.

Shared by the integration tests (conftest.py) and bench/worker_bench.py (which puts this
folder on ``sys.path``), so both make and remove them the same way, and never touch the
shared stack's own topics, keys or indices.
"""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

from dnsentinel.settings import Settings, get_settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Sandbox:
    """Names with a random suffix, the topics made at once, everything dropped by :meth:`drop`."""

    def __init__(self, tag: str, settings: Settings | None = None) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic

        self.settings = s = settings or get_settings()
        self.sfx = sfx = uuid.uuid4().hex[:10]
        self.queries, self.verdicts, self.dlq = f"{tag}-{sfx}.q", f"{tag}-{sfx}.v", f"{tag}-{sfx}.dlq"
        self.signals, self.alerts = f"{tag}-{sfx}.signals", f"{tag}-{sfx}.alerts"
        self.redis_prefix = f"{tag}{sfx}"
        self.es_prefix = f"{tag}-{sfx}"
        self.app_id = f"{tag}-{sfx}"
        self.admin = AdminClient(s.kafka.confluent_config())
        futs = self.admin.create_topics([
            NewTopic(self.queries, 6, 1), NewTopic(self.verdicts, 6, 1, config={"cleanup.policy": "compact"}),
            NewTopic(self.dlq, 1, 1), NewTopic(self.signals, 6, 1), NewTopic(self.alerts, 1, 1)])
        for f in futs.values():
            f.result(30)

    def worker_env(self, state_dir: Path, metrics_port: int | None = None) -> dict[str, str]:
        """The environment that points a worker at these resources (its own ports and state folder)."""
        return {
            "DNSENTINEL_KAFKA__QUERIES_TOPIC": self.queries,
            "DNSENTINEL_KAFKA__VERDICTS_TOPIC": self.verdicts,
            "DNSENTINEL_KAFKA__DLQ_TOPIC": self.dlq,
            "DNSENTINEL_DETECTIONS__SIGNALS_TOPIC": self.signals,
            "DNSENTINEL_DETECTIONS__ALERTS_TOPIC": self.alerts,
            "DNSENTINEL_REDIS__KEY_PREFIX": self.redis_prefix,
            "DNSENTINEL_ELASTICSEARCH__INDEX_PREFIX": self.es_prefix,
            "DNSENTINEL_WORKER__APP_ID": self.app_id,
            "DNSENTINEL_WORKER__WEB_PORT": str(free_port()),
            "DNSENTINEL_WORKER__METRICS_PORT": str(metrics_port or free_port()),
            "DNSENTINEL_STACK__STATE_DIR": str(state_dir),
        }

    def drop(self) -> None:
        """Delete the Redis keys, the indices and the topics (a topic that will not go is left)."""
        import redis
        from elasticsearch import Elasticsearch

        from dnsentinel.verdict_cache.es_schema import drop_prefix

        r = redis.Redis.from_url(self.settings.redis.url)
        keys = list(r.scan_iter(match=f"{self.redis_prefix}:*", count=5000))
        for i in range(0, len(keys), 5000):
            r.delete(*keys[i:i + 5000])
        drop_prefix(Elasticsearch(**self.settings.elasticsearch.client_kwargs()), prefix=self.es_prefix)
        topics = [t for t in self.admin.list_topics(timeout=10).topics if self.sfx in t]
        if topics:
            for f in self.admin.delete_topics(topics).values():
                try:
                    f.result(30)
                except Exception:
                    pass
