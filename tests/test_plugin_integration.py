"""Runs the CoreDNS plugin's Go integration tests against the real Redis and Kafka.

They live beside the plugin (coredns-plugin/plugin/dnsentinel/*integration_test.go) and only
run when ``DNSENTINEL_INTEGRATION=1``; plain ``go test ./...`` (the Makefile's go-test target)
stays service-free. This test is what makes them part of the one test command.
"""

from __future__ import annotations

import os
import subprocess
from urllib.parse import urlsplit

import pytest

from dnsentinel.settings import REPO_ROOT, Settings

pytestmark = pytest.mark.integration


def test_go_plugin_integration(stack: Settings) -> None:
    redis = urlsplit(stack.redis.url)
    env = os.environ | {
        "DNSENTINEL_INTEGRATION": "1",
        "DNSENTINEL_REDIS_ADDR": f"{redis.hostname}:{redis.port or 6379}",
        "DNSENTINEL_KAFKA_BROKERS": stack.kafka.bootstrap_servers,
    }
    proc = subprocess.run(
        ["go", "test", "-count=1", "-run", "Integration", "./plugin/dnsentinel/"],
        cwd=REPO_ROOT / "coredns-plugin",
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, f"go integration tests failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    assert "ok" in proc.stdout
