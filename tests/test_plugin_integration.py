"""Runs the CoreDNS plugin's Go integration tests against the real Redis and Kafka.

They live beside the plugin (coredns-plugin/plugin/dnsentinel/*integration_test.go) and only
run when ``DNSENTINEL_INTEGRATION=1``; plain ``go test ./...`` (the Makefile's go-test target)
stays service-free. This test is what makes them part of the one test command. ``go test``
exits 0 when ``-run`` matches nothing or a test skips, so every ``TestIntegration*`` function
of those files must be reported as passed.
"""

from __future__ import annotations

import os
import re
import subprocess
from urllib.parse import urlsplit

import pytest

from dnsentinel.settings import REPO_ROOT, Settings

pytestmark = pytest.mark.integration

PLUGIN_DIR = REPO_ROOT / "coredns-plugin" / "plugin" / "dnsentinel"


def integration_test_names() -> list[str]:
    """The ``TestIntegration*`` functions declared in the plugin's integration test files."""
    return sorted(
        name
        for path in PLUGIN_DIR.glob("*integration_test.go")
        for name in re.findall(r"^func (TestIntegration\w*)\(t \*testing\.T\)", path.read_text(), re.M)
    )


def test_go_plugin_integration(stack: Settings) -> None:
    expected = integration_test_names()
    assert expected, f"no TestIntegration* functions in {PLUGIN_DIR}/*integration_test.go"
    redis = urlsplit(stack.redis.url)
    env = os.environ | {
        "DNSENTINEL_INTEGRATION": "1",
        "DNSENTINEL_REDIS_ADDR": f"{redis.hostname}:{redis.port or 6379}",
        "DNSENTINEL_KAFKA_BROKERS": stack.kafka.bootstrap_servers,
    }
    proc = subprocess.run(
        ["go", "test", "-count=1", "-v", "-run", "^TestIntegration", "./plugin/dnsentinel/"],
        cwd=REPO_ROOT / "coredns-plugin",
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    report = f"{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    assert proc.returncode == 0, f"go integration tests failed:\n{report}"
    assert "no tests to run" not in proc.stdout, f"go test ran no test:\n{report}"
    passed = set(re.findall(r"^--- PASS: (TestIntegration\w*) ", proc.stdout, re.M))
    missing = [name for name in expected if name not in passed]
    assert not missing, f"did not pass (skipped or not run): {missing}\n{report}"
