"""The cluster profile for tests: ``cluster`` brings it up once per session, like ``stack`` does.

It goes through the same code path as ``dnsentinel stack up --profile cluster``
(dnsentinel.cli.cluster.profile -> deploy/cluster.sh -> deploy/cluster/<service>.sh) and yields a
:class:`Cluster`: the node table (deploy/multi/cluster.env), each node's status row, the secrets,
the CA and the settings file of the product's processes, plus :meth:`Cluster.settings_as` for a
component's settings under its own user. It never skips: a profile that cannot start fails the
tests that need it with the script's error and hint. A profile this session started is stopped
once the last test of tests/cluster has run (so its 3 JVM clusters do not load the machine for
the rest of the suite); one that was already running is left running.

``DNSENTINEL_TEST_CLUSTER_SERVICES=redis,kafka`` limits what the fixture starts (default: every
service of the profile). As with ``stack``, the first ``up`` runs right after collection, outside
any test's timeout.
"""

from __future__ import annotations

import os
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dnsentinel.errors import DnsentinelError
from dnsentinel.settings import Settings, get_settings

_early: dict[str, Any] = {}


@dataclass
class Cluster:
    """What the cluster tests need to reach the profile's nodes."""

    dir: Path
    nodes: dict[str, str]
    """deploy/multi/cluster.env (hosts, ports, node counts)."""
    status: dict[str, Any]
    """``node name -> NodeStatus`` after ``up``."""
    secrets: dict[str, str]
    """``PASSWORD_<PRINCIPAL>`` of secrets.env."""
    settings_file: Path
    startup_s: float

    @property
    def ca(self) -> Path:
        return self.dir / "pki" / "ca.crt"

    def password(self, user: str) -> str:
        return self.secrets[f"PASSWORD_{user.upper()}"]

    def settings_as(self, user: str) -> Settings:
        """The cluster's settings file with ``user`` and its password for Redis, Kafka and Elasticsearch."""
        data = tomllib.loads(self.settings_file.read_text())
        pw = self.password(user)
        data["redis"].update(username=user, password=pw)
        data["kafka"].update(sasl_username=user, sasl_password=pw)
        data["elasticsearch"].update(username=user, password=pw)
        return Settings(**data)


def _services() -> tuple[str, ...]:
    from dnsentinel.cli.cluster import profile

    named = os.environ.get("DNSENTINEL_TEST_CLUSTER_SERVICES", "")
    return tuple(s.strip() for s in named.split(",") if s.strip()) or profile.SERVICES


def _bring_up() -> Cluster | str:
    """Start the profile; a Cluster, or the failure message."""
    from dnsentinel.cli.cluster import profile

    settings = get_settings()
    services = _services()
    try:
        _early["was_running"] = any(r.state != "stopped" for r in profile.status(settings, services)
                                    if r.state != "missing")
        took = profile.up(settings, services, echo=False)
        rows = [r for r in profile.status(settings, services)]
    except DnsentinelError as exc:
        return f"the cluster profile could not start: {exc}"
    sick = [f"{r.service}/{r.node}: {r.state} {r.detail}" for r in rows if not r.healthy]
    if sick:
        return "the cluster profile is not healthy after `up`: " + "; ".join(sick)
    return Cluster(profile.cluster_dir(settings), profile.node_table(), {r.node: r for r in rows},
                   profile.secrets(settings), profile.settings_file(settings), took)


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly or not any("cluster" in getattr(i, "fixturenames", ()) for i in session.items):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    started = time.monotonic()
    if reporter:
        reporter.write_line(f"dnsentinel: bringing the cluster profile up ({', '.join(_services())})...")
    _early["result"] = _bring_up()
    if reporter:
        ok = isinstance(_early["result"], Cluster)
        reporter.write_line(f"dnsentinel: cluster {'up' if ok else 'FAILED'} after {time.monotonic() - started:.0f}s")


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    if "result" not in _early:
        _early["result"] = _bring_up()
    result = _early["result"]
    if isinstance(result, str):
        pytest.fail(result, pytrace=False)
    yield result


@pytest.fixture(scope="package", autouse=True)
def _stop_what_we_started() -> Iterator[None]:
    """After the last cluster test: stop the profile if this session started it."""
    yield
    if "result" in _early and not _early.get("was_running", True):
        from dnsentinel.cli.cluster import profile

        profile.down(get_settings(), _services(), echo=False)
