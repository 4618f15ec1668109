"""Drive the local stack's deploy/ scripts from the settings model.

The scripts under deploy/ do the work (fetch, start, health check, stop); this
module is the one place that turns :class:`~dnsentinel.settings.Settings` into
their ``DS_*`` environment, checks the settings first so that a bad port, a
remote host or a missing JDK is a one-line :class:`ConfigError` rather than a
stack trace, and creates the Kafka topics once the broker is up. Both the CLI
(``dnsentinel stack``) and the test fixture (tests/conftest.py) use it, so the
tests exercise the same code path as a person does.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable
from urllib.parse import urlsplit

from dnsentinel.errors import ConfigError, ServiceUnavailable
from dnsentinel.settings import REPO_ROOT, Settings, redact_url

DEPLOY_DIR = REPO_ROOT / "deploy"
STACK_SH = DEPLOY_DIR / "stack.sh"
SERVICES = ("redis", "kafka", "elasticsearch", "coredns")
PROFILES = ("single", "cluster")
"""``--profile`` of ``dnsentinel stack``: this module drives ``single``; dnsentinel.cli.cluster.profile ``cluster``."""
ES_MIN_JAVA = 21
KAFKA_MIN_JAVA = 17
JVM_DIR = Path("/usr/lib/jvm")


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int


@dataclass(frozen=True)
class ServiceStatus:
    """One row of ``dnsentinel stack status``."""

    name: str
    address: str
    version: str
    state: str  # healthy | stopped | unhealthy | not-built
    detail: str

    @property
    def healthy(self) -> bool:
        return self.state == "healthy"


def versions() -> dict[str, str]:
    """The pinned versions of deploy/versions.env."""
    pinned: dict[str, str] = {}
    for line in (DEPLOY_DIR / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            pinned[key] = value
    return pinned


# --- settings checks --------------------------------------------------------------------


def _split_hostport(value: str, default_port: int, where: str) -> Endpoint:
    try:
        parts = urlsplit(value if "//" in value else f"//{value}")
        port = parts.port or default_port
    except ValueError:  # port out of range or not a number
        raise ConfigError(f"{where}={value!r}: invalid port; use a number in 1-65535") from None
    if not parts.hostname:
        raise ConfigError(f"{where}={value!r}: no host; write host:port, e.g. 127.0.0.1:{default_port}")
    return Endpoint(parts.hostname, port)


def _local_addresses() -> set[str]:
    addrs = {"0.0.0.0", "::"}
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            addrs.add(str(info[4][0]))
    except OSError:
        pass
    return addrs


def _check_local(ep: Endpoint, where: str) -> None:
    """The local stack binds its services here, so every host must be this machine."""
    try:
        infos = socket.getaddrinfo(ep.host, ep.port, proto=socket.IPPROTO_TCP)
    except OSError:
        raise ConfigError(
            f"{where}: host {ep.host!r} does not resolve; use 127.0.0.1 for the local stack"
        ) from None
    local = _local_addresses()
    for info in infos:
        addr = str(info[4][0])
        if addr.startswith("127.") or addr == "::1" or addr in local:
            return
    raise ConfigError(f"{where}: {ep.host} is not this machine; the local stack runs here only: use 127.0.0.1")


def _java_major(java_home: Path) -> int | None:
    release = java_home / "release"
    if release.is_file():
        m = re.search(r'^JAVA_VERSION="(\d+)', release.read_text(), re.M)
        if m:
            return int(m.group(1))
    return None


def _find_java(configured: Path | None, minimum: int, what: str, setting: str) -> Path | None:
    """The JDK home for `what`; None means "the java on PATH" (checked by the script)."""
    if configured is not None:
        if not (configured / "bin" / "java").is_file():
            raise ConfigError(f"{setting}={configured}: no bin/java there; point it at a JDK {minimum}+ home")
        major = _java_major(configured)
        if major is not None and major < minimum:
            raise ConfigError(f"{setting}={configured} is Java {major}; {what} needs Java {minimum}+")
        return configured
    if minimum <= KAFKA_MIN_JAVA and shutil.which("java"):
        return None
    candidates = []
    if JVM_DIR.is_dir():
        for home in JVM_DIR.iterdir():
            major = _java_major(home)
            if major is not None and major >= minimum and (home / "bin" / "java").is_file() and not home.is_symlink():
                candidates.append((major, home))
    if not candidates:
        raise ConfigError(
            f"no JDK {minimum}+ found for {what} (looked in {JVM_DIR}); install one or set {setting}"
        )
    return max(candidates)[1]


def stack_env(settings: Settings, services: tuple[str, ...] = SERVICES) -> dict[str, str]:
    """The DS_* environment of the deploy scripts; raises ConfigError on bad settings."""
    k, r, e, c, s = settings.kafka, settings.redis, settings.elasticsearch, settings.coredns, settings.stack
    brokers = [b.strip() for b in k.bootstrap_servers.split(",") if b.strip()]
    if len(brokers) != 1:
        raise ConfigError(
            f"DNSENTINEL_KAFKA__BOOTSTRAP_SERVERS lists {len(brokers)} brokers; the local stack runs exactly one"
        )
    if k.security_protocol != "PLAINTEXT":
        raise ConfigError("DNSENTINEL_KAFKA__SECURITY_PROTOCOL: the local stack's broker is PLAINTEXT only")
    kafka = _split_hostport(brokers[0], 9092, "DNSENTINEL_KAFKA__BOOTSTRAP_SERVERS")
    if urlsplit(r.url).scheme != "redis":
        raise ConfigError(f"DNSENTINEL_REDIS__URL={r.url!r}: the local stack's Redis needs a redis:// URL")
    redis = _split_hostport(r.url, 6379, "DNSENTINEL_REDIS__URL")
    if urlsplit(e.url).scheme != "http":
        raise ConfigError(f"DNSENTINEL_ELASTICSEARCH__URL={e.url!r}: the local stack's node needs an http:// URL")
    es = _split_hostport(e.url, 9200, "DNSENTINEL_ELASTICSEARCH__URL")

    ports = {
        "DNSENTINEL_REDIS__URL": ("redis", redis.port),
        "DNSENTINEL_KAFKA__BOOTSTRAP_SERVERS": ("kafka", kafka.port),
        "DNSENTINEL_STACK__KAFKA_CONTROLLER_PORT": ("kafka", s.kafka_controller_port),
        "DNSENTINEL_ELASTICSEARCH__URL": ("elasticsearch", es.port),
        "DNSENTINEL_STACK__ES_TRANSPORT_PORT": ("elasticsearch", s.es_transport_port),
        "DNSENTINEL_COREDNS__PORT": ("coredns", c.port),
        "DNSENTINEL_COREDNS__HEALTH_PORT": ("coredns", c.health_port),
        "DNSENTINEL_COREDNS__READY_PORT": ("coredns", c.ready_port),
        "DNSENTINEL_COREDNS__METRICS_PORT": ("coredns", c.metrics_port),
    }
    seen: dict[int, str] = {}
    for name, (_, port) in ports.items():
        if port in seen:
            raise ConfigError(f"{name} and {seen[port]} both use port {port}; give each service its own port")
        seen[port] = name
    for ep, where, svc in (
        (redis, "DNSENTINEL_REDIS__URL", "redis"),
        (kafka, "DNSENTINEL_KAFKA__BOOTSTRAP_SERVERS", "kafka"),
        (es, "DNSENTINEL_ELASTICSEARCH__URL", "elasticsearch"),
        (Endpoint(c.host, c.port), "DNSENTINEL_COREDNS__HOST", "coredns"),
    ):
        if svc in services:
            _check_local(ep, where)

    env = {
        "DS_STATE_DIR": str(s.state_dir.resolve()),
        "DS_CACHE_DIR": str((s.cache_dir or s.state_dir / "cache").resolve()),
        "DS_START_TIMEOUT": str(int(s.start_timeout_s)),
        "DS_REDIS_HOST": redis.host,
        "DS_REDIS_PORT": str(redis.port),
        "DS_KAFKA_HOST": kafka.host,
        "DS_KAFKA_PORT": str(kafka.port),
        "DS_KAFKA_CONTROLLER_PORT": str(s.kafka_controller_port),
        "DS_KAFKA_HEAP": s.kafka_heap,
        "DS_ES_HOST": es.host,
        "DS_ES_PORT": str(es.port),
        "DS_ES_TRANSPORT_PORT": str(s.es_transport_port),
        "DS_ES_HEAP": s.es_heap,
        "DS_COREDNS_HOST": c.host,
        "DS_COREDNS_PORT": str(c.port),
        "DS_COREDNS_METRICS_PORT": str(c.metrics_port),
        "DS_COREDNS_HEALTH_PORT": str(c.health_port),
        "DS_COREDNS_READY_PORT": str(c.ready_port),
        "DS_COREDNS_UPSTREAM": c.upstream or "",
        "DS_COREDNS_SERVER_ID": c.server_id,
        "DS_COREDNS_REDIS_ADDR": f"{redis.host}:{redis.port}",
        "DS_COREDNS_KAFKA_BROKERS": f"{kafka.host}:{kafka.port}",
        "DS_COREDNS_QUERIES_TOPIC": k.queries_topic,
        "DS_COREDNS_KEY_PREFIX": r.key_prefix,
        "DS_COREDNS_REDIS_DB": urlsplit(r.url).path.strip("/") or "0",
    }
    if "kafka" in services:
        home = _find_java(s.java_home, KAFKA_MIN_JAVA, "Kafka", "DNSENTINEL_STACK__JAVA_HOME")
        env["DS_JAVA_HOME"] = str(home) if home else ""
    if "elasticsearch" in services:
        home = _find_java(s.es_java_home, ES_MIN_JAVA, "Elasticsearch 9", "DNSENTINEL_STACK__ES_JAVA_HOME")
        env["DS_ES_JAVA_HOME"] = str(home)
    return env


def addresses(settings: Settings) -> dict[str, str]:
    """Each service's client-facing address, for the status table (passwords masked)."""
    return {
        "redis": redact_url(settings.redis.url),
        "kafka": settings.kafka.bootstrap_servers,
        "elasticsearch": redact_url(settings.elasticsearch.url),
        "coredns": f"{settings.coredns.host}:{settings.coredns.port}",
    }


def _loopback_only(host: str) -> bool:
    """Whether every address ``host`` resolves to is a loopback one (unresolvable: no)."""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(str(i[4][0]).split("%")[0]).is_loopback for i in infos)


def exposure_warnings(settings: Settings, running: Iterable[str]) -> list[str]:
    """One line per running service reached on a non-loopback address by clients without credentials.

    Our clients connecting without credentials means the service accepts anyone who can
    reach that address (or our clients could not work); CoreDNS is left out: DNS is meant
    to be reached and has no login.
    """
    k, r, e = settings.kafka, settings.redis, settings.elasticsearch
    kafka_auth = k.security_protocol.startswith("SASL") or (k.security_protocol == "SSL" and k.ssl_certfile is not None)
    checks = {
        "redis": ([urlsplit(r.url).hostname or ""], bool(r.password or r.username or urlsplit(r.url).password),
                  "requirepass/ACL users and DNSENTINEL_REDIS__PASSWORD (or _FILE)"),
        "kafka": ([_split_hostport(b.strip(), 9092, "DNSENTINEL_KAFKA__BOOTSTRAP_SERVERS").host
                   for b in k.bootstrap_servers.split(",") if b.strip()], kafka_auth,
                  "SASL (DNSENTINEL_KAFKA__SECURITY_PROTOCOL=SASL_SSL with a user and password) or client certificates"),
        "elasticsearch": ([urlsplit(e.url).hostname or ""], bool(e.api_key or (e.username and e.password)),
                          "security on and DNSENTINEL_ELASTICSEARCH__API_KEY (or user and password, or _FILE)"),
    }
    lines = []
    for name in running:
        if name not in checks:
            continue
        hosts, authed, fix = checks[name]
        exposed = [h for h in hosts if not _loopback_only(h)]
        if exposed and not authed:
            lines.append(f"{name} runs without auth on {', '.join(exposed)} (not loopback): anyone who reaches it "
                         f"can read and change it; use {fix}")
    return lines


# --- running the scripts ----------------------------------------------------------------


def _check_services(services: tuple[str, ...]) -> tuple[str, ...]:
    for name in services:
        if name not in SERVICES:
            raise ConfigError(f"unknown service {name!r}; pick one of: {', '.join(SERVICES)}")
    return services


def run_script(script: Path, args: list[str], env: dict[str, str], echo: bool = True) -> tuple[int, list[str]]:
    """Run a deploy/ driver script (stack.sh, cluster.sh), echoing its lines as they come; returns (rc, last lines)."""
    tail: deque[str] = deque(maxlen=40)
    with subprocess.Popen([str(script), *args], env={**os.environ, **env}, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line.rstrip("\n"))
            if echo:
                sys.stdout.write(line)
                sys.stdout.flush()
    return proc.returncode, list(tail)


def script_failure(what: str, action: str, tail: list[str]) -> ServiceUnavailable:
    """One line from a failed script run: its ``error:``/``hint:`` lines, else its last line."""
    errors = [ln for ln in tail if ": error: " in ln or ": hint: " in ln]
    summary = " | ".join(errors) if errors else (tail[-1] if tail else "no output")
    return ServiceUnavailable(f"{what} {action} failed: {summary}")


def _run(args: list[str], env: dict[str, str], echo: bool = True) -> tuple[int, list[str]]:
    return run_script(STACK_SH, args, env, echo)


def _failure(action: str, tail: list[str]) -> ServiceUnavailable:
    return script_failure("stack", action, tail)


def up(settings: Settings, services: tuple[str, ...] = SERVICES, echo: bool = True) -> None:
    """Start the services (idempotent), then create the Kafka topics; raises on any failure."""
    services = _check_services(services)
    env = stack_env(settings, services)
    rc, tail = _run(["up", *services], env, echo)
    if rc != 0:
        raise _failure("up", tail)
    if "kafka" in services:
        ensure_topics(settings, echo=echo)


def down(settings: Settings, services: tuple[str, ...] = SERVICES, echo: bool = True) -> None:
    """Stop the services and check that none of their ports is still listened on."""
    services = _check_services(services)
    env = stack_env(settings, services)
    external = {r.name for r in status(settings) if r.detail.startswith("external")}
    rc, tail = _run(["down", *services], env, echo)
    if rc != 0:
        raise _failure("down", tail)
    mine = [svc for svc in services if svc not in external]
    left = [f"{svc}:{port}" for svc, port in _ports(env) if svc in mine and _listening(port)]
    if left:
        raise ServiceUnavailable(f"stack down left ports listened on: {', '.join(left)}")


def _ports(env: dict[str, str]) -> list[tuple[str, int]]:
    keys = {
        "redis": ["DS_REDIS_PORT"],
        "kafka": ["DS_KAFKA_PORT", "DS_KAFKA_CONTROLLER_PORT"],
        "elasticsearch": ["DS_ES_PORT", "DS_ES_TRANSPORT_PORT"],
        "coredns": ["DS_COREDNS_PORT", "DS_COREDNS_HEALTH_PORT", "DS_COREDNS_READY_PORT", "DS_COREDNS_METRICS_PORT"],
    }
    return [(svc, int(env[k])) for svc, ks in keys.items() for k in ks]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def status(settings: Settings) -> list[ServiceStatus]:
    """Health of every service, as the scripts see it (fast: no JVM is started)."""
    env = {**os.environ, **stack_env(settings, ())}
    where = addresses(settings)
    rows = []
    for name in SERVICES:
        script = str(DEPLOY_DIR / "services" / f"{name}.sh")
        st = subprocess.run([script, "status"], env=env, capture_output=True, text=True, timeout=30)
        ver = subprocess.run([script, "version"], env=env, capture_output=True, text=True, timeout=30)
        state, _, detail = st.stdout.strip().partition(" ")
        rows.append(ServiceStatus(name, where[name], ver.stdout.strip() or "?", state or "unknown", detail))
    return rows


def logs(settings: Settings, service: str, lines: int = 50, follow: bool = False) -> int:
    """Show a service's log (tail, optionally following); returns the exit code."""
    _check_services((service,))
    env = {**os.environ, **stack_env(settings, ())}
    args = [str(STACK_SH), "logs", service, "-n", str(lines)] + (["-f"] if follow else [])
    try:
        return subprocess.run(args, env=env).returncode
    except KeyboardInterrupt:
        return 0


# --- Kafka topics ------------------------------------------------------------------------


def topic_specs(settings: Settings) -> list[tuple[str, int, dict[str, str]]]:
    """(name, partitions, config) of the topics of verdict_cache/SPEC.md §2."""
    k, d = settings.kafka, settings.detections
    day_ms = str(86_400_000)
    return [
        (k.queries_topic, k.queries_partitions, {}),
        (k.verdicts_topic, k.verdicts_partitions, {"cleanup.policy": "compact"}),
        (k.dlq_topic, k.dlq_partitions, {"retention.ms": str(14 * 86_400_000)}),
        (d.signals_topic, k.queries_partitions, {"retention.ms": day_ms}),
        (d.alerts_topic, 1, {"retention.ms": str(30 * 86_400_000)}),
    ]


def ensure_topics(settings: Settings, echo: bool = True, timeout_s: float = 30.0) -> None:
    """Create the pipeline's topics with their explicit partition counts, replication factor
    and min ISR (``kafka.replication_factor`` / ``kafka.min_insync_replicas``); idempotent."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    from dnsentinel.kafka_check import check_kafka, explain_kafka

    k = settings.kafka
    check_kafka(k, timeout_s)  # a wrong password or an untrusted CA: one line within seconds
    admin = AdminClient(k.confluent_config())
    try:
        existing = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        raise ServiceUnavailable(f"kafka at {k.bootstrap_servers}: {explain_kafka(exc.args[0], k, timeout_s)}") from None
    new = [
        NewTopic(name, num_partitions=parts, replication_factor=k.replication_factor,
                 config={**conf, "min.insync.replicas": str(k.min_insync_replicas)})
        for name, parts, conf in topic_specs(settings)
        if name not in existing
    ]
    if new:
        for name, fut in admin.create_topics(new, request_timeout=timeout_s).items():
            try:
                fut.result(timeout=timeout_s)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise ServiceUnavailable(f"could not create Kafka topic {name}: {explain_kafka(exc.args[0], k)}") from None
            if echo:
                print(f"kafka: created topic {name}")
        _await_leaders(admin, [t.topic for t in new], timeout_s)
    for name, parts, _ in topic_specs(settings):
        meta = existing.get(name)
        if meta is not None and len(meta.partitions) != parts and echo:
            print(f"kafka: warning: topic {name} has {len(meta.partitions)} partitions, settings say {parts}")
        replicas = len(next(iter(meta.partitions.values())).replicas) if meta is not None and meta.partitions else None
        if replicas is not None and replicas != k.replication_factor and echo:
            print(f"kafka: warning: topic {name} has {replicas} replicas, settings say {k.replication_factor}")
    _align_retention(admin, [(n, c) for n, _, c in topic_specs(settings) if n in existing and "retention.ms" in c],
                     timeout_s)


def _await_leaders(admin: object, topics: list[str], timeout_s: float) -> None:
    """Wait until every partition of the new topics has a leader: a client that reads offsets right
    after creation (a test, a worker) would otherwise get NOT_LEADER_FOR_PARTITION."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        meta = admin.list_topics(timeout=timeout_s).topics  # type: ignore[attr-defined]
        if all(t in meta and meta[t].partitions and all(p.leader >= 0 for p in meta[t].partitions.values())
               for t in topics):
            return
        time.sleep(0.2)
    raise ServiceUnavailable(f"Kafka topics {', '.join(topics)} have no leader after {timeout_s:.0f}s")


def _align_retention(admin: object, topics: list[tuple[str, dict[str, str]]], timeout_s: float) -> None:
    """Topics made by an older version get the retention SPEC §2.1 promises (incremental: nothing else changes)."""
    if not topics:
        return
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    resources = [ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=[
        ConfigEntry("retention.ms", conf["retention.ms"], incremental_operation=AlterConfigOpType.SET)])
        for name, conf in topics]
    for name, fut in admin.incremental_alter_configs(resources, request_timeout=timeout_s).items():  # type: ignore[attr-defined]
        fut.result(timeout=timeout_s)
