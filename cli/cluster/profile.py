"""``dnsentinel stack ... --profile cluster``: the cluster profile driven from the settings.

deploy/cluster.sh does the work (pki.sh, the settings file of the product's processes, each
service's deploy/cluster/<service>.sh in order, Kafka's topics and ACLs); this module gives it its
environment, turns its output into rows (one per node) and one-line errors, and reads each
certificate's expiry (``pki.sh DIR expiry``). Both the CLI (cli/stack.py) and the test fixture
(tests/cluster/conftest.py) use it, so the tests start the cluster the way a person does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from dnsentinel.errors import ConfigError, DnsentinelError, ServiceUnavailable
from dnsentinel.settings import REPO_ROOT, Settings

DEPLOY_DIR = REPO_ROOT / "deploy"
CLUSTER_SH = DEPLOY_DIR / "cluster.sh"
PKI_SH = DEPLOY_DIR / "multi" / "pki.sh"
CLUSTER_ENV = DEPLOY_DIR / "multi" / "cluster.env"
SERVICES = ("redis", "kafka", "elasticsearch", "coredns", "apps")
"""Start order (deploy/cluster.sh's SERVICES): data services, then the product's processes."""
CERT_WARN_DAYS = 30


@dataclass(frozen=True)
class NodeStatus:
    """One node of ``stack status --profile cluster`` (a line of a service script's ``status``)."""

    service: str
    node: str
    address: str
    state: str  # healthy | stopped | unhealthy | missing (no script yet)
    detail: str

    @property
    def healthy(self) -> bool:
        return self.state == "healthy"


@dataclass(frozen=True)
class CertExpiry:
    """A certificate of the profile's PKI and how long it stays valid."""

    name: str
    not_after: float
    """Unix seconds."""
    days_left: float

    @property
    def level(self) -> str:
        """``ok``, ``warn`` (under :data:`CERT_WARN_DAYS` days left) or ``error`` (expired)."""
        if self.days_left <= 0:
            return "error"
        return "warn" if self.days_left < CERT_WARN_DAYS else "ok"


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (``#`` comments dropped): cluster.env, secrets.env."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def cluster_dir(settings: Settings) -> Path:
    """``DS_CLUSTER_DIR``, else ``<state_dir>/cluster`` (as the scripts decide it)."""
    named = os.environ.get("DS_CLUSTER_DIR")
    return Path(named).resolve() if named else (settings.stack.state_dir / "cluster").resolve()


def node_table() -> dict[str, str]:
    """The profile's node table and ports (deploy/multi/cluster.env)."""
    return read_env_file(CLUSTER_ENV)


def secrets(settings: Settings) -> dict[str, str]:
    """``PASSWORD_<PRINCIPAL>`` of secrets.env (made by pki.sh on the first ``up``)."""
    path = cluster_dir(settings) / "secrets.env"
    if not path.is_file():
        raise ServiceUnavailable(f"cluster: no {path}; start the profile first: dnsentinel stack up --profile cluster")
    return read_env_file(path)


def settings_file(settings: Settings) -> Path:
    """The settings file of the product's processes (``DNSENTINEL_CONFIG``), written by ``up``."""
    return cluster_dir(settings) / "dnsentinel.toml"


def cluster_env(settings: Settings) -> dict[str, str]:
    """The DS_* environment of deploy/cluster.sh; raises ConfigError when a JDK is missing."""
    from dnsentinel.cli import stackctl

    s = settings.stack
    env = {
        "DS_STATE_DIR": str(s.state_dir.resolve()),
        "DS_CACHE_DIR": str((s.cache_dir or s.state_dir / "cache").resolve()),
        "DS_CLUSTER_DIR": str(cluster_dir(settings)),
        "DS_START_TIMEOUT": str(int(s.start_timeout_s)),
        "DS_PYTHON": sys.executable,
        "DS_REDIS_KEY_PREFIX": settings.redis.key_prefix,
    }
    kafka_home = stackctl._find_java(s.java_home, stackctl.KAFKA_MIN_JAVA, "Kafka", "DNSENTINEL_STACK__JAVA_HOME")
    env["DS_JAVA_HOME"] = str(kafka_home) if kafka_home else ""
    env["DS_ES_JAVA_HOME"] = str(stackctl._find_java(s.es_java_home, stackctl.ES_MIN_JAVA, "Elasticsearch 9",
                                                     "DNSENTINEL_STACK__ES_JAVA_HOME"))
    return env


def _check_services(services: tuple[str, ...]) -> tuple[str, ...]:
    for name in services:
        if name not in SERVICES:
            raise ConfigError(f"unknown cluster service {name!r}; pick one of: {', '.join(SERVICES)}")
    return services


def _run(args: list[str], settings: Settings, echo: bool) -> tuple[int, list[str]]:
    """Run deploy/cluster.sh with the profile's environment; returns (rc, last lines)."""
    from dnsentinel.cli.stackctl import run_script

    return run_script(CLUSTER_SH, args, cluster_env(settings), echo)


def _failure(action: str, tail: list[str]) -> ServiceUnavailable:
    from dnsentinel.cli.stackctl import script_failure

    return script_failure("cluster", action, tail)


def up(settings: Settings, services: tuple[str, ...] = SERVICES, echo: bool = True) -> float:
    """Start the profile (idempotent); returns the seconds it took. Raises on any failure."""
    services = _check_services(services)
    t0 = time.monotonic()
    rc, tail = _run(["up", *services], settings, echo)
    if rc != 0:
        raise _failure("up", tail)
    return time.monotonic() - t0


def down(settings: Settings, services: tuple[str, ...] = SERVICES, echo: bool = True) -> None:
    """Stop the services (reverse order); each script checks its ports are free."""
    rc, tail = _run(["down", *_check_services(services)], settings, echo)
    if rc != 0:
        raise _failure("down", tail)


def status(settings: Settings, services: tuple[str, ...] = SERVICES) -> list[NodeStatus]:
    """Every node's health, as the service scripts see it."""
    proc = subprocess.run([str(CLUSTER_SH), "status", *_check_services(services)], capture_output=True, text=True,
                          env={**os.environ, **cluster_env(settings)}, cwd=REPO_ROOT, timeout=120)
    rows = []
    for line in proc.stdout.splitlines():
        parts = line.split(" ", 4)
        if len(parts) < 4:
            continue
        service, node, address, state = parts[:4]
        rows.append(NodeStatus(service, node, address, state, parts[4] if len(parts) > 4 else ""))
    if not rows:
        raise ServiceUnavailable(f"cluster status printed nothing: {proc.stderr.strip()[-300:] or 'no output'}")
    return rows


def certificates(settings: Settings, now: float | None = None) -> list[CertExpiry]:
    """Each certificate of the profile's PKI with its days left (none before the first ``up``)."""
    directory = cluster_dir(settings)
    if not (directory / "pki").is_dir():
        return []
    proc = subprocess.run([str(PKI_SH), str(directory), "expiry"], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise ServiceUnavailable(f"pki.sh {directory} expiry failed: {proc.stderr.strip()[-300:]}")
    now = time.time() if now is None else now
    out = []
    for line in proc.stdout.splitlines():
        name, _, epoch = line.partition(" ")
        if epoch.strip().isdigit():
            out.append(CertExpiry(name, float(epoch), (float(epoch) - now) / 86400))
    return out


def logs(settings: Settings, service: str, node: str | None = None, lines: int = 50, follow: bool = False) -> int:
    """Show a node's log (``node`` as the service's script names it); returns the exit code."""
    _check_services((service,))
    args = [str(CLUSTER_SH), "logs", service, *([node] if node else []), "-n", str(lines), *(["-f"] if follow else [])]
    try:
        return subprocess.run(args, env={**os.environ, **cluster_env(settings)}, cwd=REPO_ROOT).returncode
    except KeyboardInterrupt:
        return 0


def run_main(module: str, label: str, commands: dict[str, Callable[[Settings], Iterable[str] | None]],
             argv: list[str] | None = None) -> int:
    """``python -m dnsentinel.cli.cluster.MODULE COMMAND``: the lines a command returns, each prefixed with
    ``label``; an expected failure is one ``label: error:`` line and exit 1 (the driver script shows it)."""
    from dnsentinel.settings import get_settings

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in commands:
        print(f"usage: python -m dnsentinel.cli.cluster.{module} {'|'.join(commands)}", file=sys.stderr)
        return 2
    try:
        for line in commands[args[0]](get_settings()) or ():
            print(f"{label}: {line}")
    except DnsentinelError as exc:
        print(f"{label}: error: {exc}", file=sys.stderr)
        return 1
    return 0
