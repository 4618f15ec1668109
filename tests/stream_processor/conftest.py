"""Integration fixtures of the stream processor: unique topics, prefixes and a worker subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest

from .sandbox import Sandbox

HERE = Path(__file__).resolve().parent

PRIOR_DOMAINS = ("popular-site.org",)
"""Registrable domains on the test models' popularity ranking."""


@pytest.fixture(scope="session")
def services(request: pytest.FixtureRequest) -> Any:
    """The shared stack (infra's ``stack`` fixture when present); unreachable services fail loudly."""
    try:
        return request.getfixturevalue("stack")
    except pytest.FixtureLookupError:
        pass
    from dnsentinel.settings import get_settings

    s = get_settings()
    for what, host, port in (("kafka", *s.kafka.bootstrap_servers.split(",")[0].rsplit(":", 1)),
                             ("redis", "127.0.0.1", 6379), ("elasticsearch", "127.0.0.1", 9200)):
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
        except OSError as exc:
            pytest.fail(f"{what} at {host}:{port} is unreachable ({exc}); start the stack: dnsentinel stack up")
    return s


class WorkerEnv(Sandbox):
    """One isolated worker setup: its topics, Redis prefix, ES prefix, model table and process."""

    def __init__(self, tmp: Path, scores: dict[str, dict[str, float]], version: str = "table-1") -> None:
        super().__init__("sptest")
        self.version_file = tmp / "version"
        self.version_file.write_text(version)
        (tmp / "scores.json").write_text(json.dumps(scores))
        # The table model's version directory holds a popularity prior, as a registry version does:
        # the worker must decide ranked names by it (PRIOR_DOMAINS) without asking the model.
        from dnsentinel.models import prior

        (tmp / "model").mkdir()
        prior.Prior(frozenset(PRIOR_DOMAINS), frozenset(), {"sources": ["test"]}).save(tmp / "model")
        self.env = dict(os.environ)
        self.env.update(self.worker_env(tmp / "state"))
        self.env.update({
            "DNSENTINEL_WORKER__MODEL_POLL_S": "0.5",
            "DNSENTINEL_WORKER__ES_FLUSH_INTERVAL_S": "0.5",
            "SP_TEST_SCORES": str(tmp / "scores.json"),
            "SP_TEST_VERSION_FILE": str(self.version_file),
            "SP_TEST_MODEL_DIR": str(tmp / "model"),
        })
        self.log = tmp / "worker.log"
        self.proc: subprocess.Popen | None = None
        self.redis = __import__("redis").Redis.from_url(self.settings.redis.url)
        from elasticsearch import Elasticsearch

        self.es = Elasticsearch(**self.settings.elasticsearch.client_kwargs())

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen([sys.executable, str(HERE / "worker_runner.py")], env=self.env,
                                     stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def produce(self, values: list[tuple[bytes | None, bytes]]) -> None:
        from confluent_kafka import Producer

        p = Producer({**self.settings.kafka.confluent_config(), "partitioner": "murmur2_random", "linger.ms": 5})
        for key, value in values:
            p.produce(self.queries, value=value, key=key)
            p.poll(0)
        assert p.flush(30) == 0

    def consume_all(self, topic: str, expect: int, timeout: float = 60.0) -> list[tuple[bytes | None, bytes]]:
        from confluent_kafka import Consumer

        c = Consumer({**self.settings.kafka.confluent_config(), "group.id": f"sptest-reader-{uuid.uuid4().hex[:6]}",
                      "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.subscribe([topic])
        out = []
        deadline = time.monotonic() + timeout
        try:
            while len(out) < expect and time.monotonic() < deadline:
                m = c.poll(0.5)
                if m is not None and not m.error():
                    out.append((m.key(), m.value()))
        finally:
            c.close()
        return out

    def wait_for(self, check: Callable[[], Any], timeout: float = 90.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                pytest.fail(f"worker exited with {self.proc.returncode}:\n{self.log.read_text()[-4000:]}")
            try:
                last = check()
                if last:
                    return last
            except Exception as exc:  # not there yet
                last = exc
            time.sleep(0.5)
        pytest.fail(f"timed out waiting for {what} (last: {last!r}); worker log:\n{self.log.read_text()[-4000:]}")

    def cleanup(self) -> None:
        self.stop()
        self.drop()


@pytest.fixture
def worker_env(services: Any, tmp_path: Path) -> Any:
    envs: list[WorkerEnv] = []

    def make(scores: dict[str, dict[str, float]], version: str = "table-1") -> WorkerEnv:
        env = WorkerEnv(tmp_path, scores, version)
        envs.append(env)
        return env

    yield make
    for env in envs:
        env.cleanup()
