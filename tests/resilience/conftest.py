"""A separate "fault stack" for the resilience tests, shared by all of them.

These tests kill Redis, stop Kafka, cut Elasticsearch off and SIGKILL workers, so they never
touch the shared stack on the default ports: the session brings up its own Redis, Kafka,
Elasticsearch and CoreDNS with the project's own code path (``stackctl.up(settings)``) from
``.state/resilience`` on free ports, runs workers with ``dnsentinel worker`` (managed by
``dnsentinel.cli.apps``, so ``stop_all`` reaps them) and tears everything down at the end.

Like tests/conftest.py, the stack starts right after collection (outside pytest-timeout's
per-test limit: a second Elasticsearch node takes minutes on a loaded 2-core machine).
``DNSENTINEL_RESILIENCE_KEEP=1`` leaves the fault stack running and reuses it (same ports,
``.state/resilience/ports.json``) on the next run, which makes iterating on one test cheap.

Elasticsearch "down" is a TCP proxy in this process between the workers and the real node
(:class:`TcpProxy`): closing it refuses new connections and cuts open ones, exactly what
clients see of a dead node, without a multi-minute JVM restart in the middle of the suite.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import string
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
from polling import wait_for

from dnsentinel.settings import REPO_ROOT, Settings

STATE = REPO_ROOT / ".state" / "resilience"
KEEP = os.environ.get("DNSENTINEL_RESILIENCE_KEEP") == "1"
FLOOD_LIMIT = 100
"""worker.max_new_names_per_domain_per_min of the fault stack's workers (low, so a flood test is short)."""


_state: dict[str, Any] = {}


# --- small helpers ----------------------------------------------------------------------


def rand_label(n: int = 10) -> str:
    return "".join(random.choices(string.ascii_lowercase, k=n))


def scrape(url: str, timeout_s: float = 5.0) -> dict[tuple[str, tuple], float]:
    """Prometheus text of ``url`` as {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=timeout_s) as resp:
        text = resp.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(samples: dict[tuple[str, tuple], float], name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(v for (n, ls), v in samples.items() if n == name and all((k, v2) in ls for k, v2 in labels.items()))


def _port_free(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _free_ports(n: int, taken: set[int]) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        p = random.randint(20000, 32000)  # below the ephemeral range (32768+)
        if p not in taken and p + 1 not in taken and _port_free(p) and _port_free(p + 1):
            ports.append(p)
            taken.update((p, p + 1))  # the second of a pair: the second worker's web/metrics port
    return ports


# --- Elasticsearch proxy -----------------------------------------------------------------


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target``; :meth:`cut` makes it look like a dead node."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.port = port
        self.target = target
        self._lsock: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def up(self) -> bool:
        return self._lsock is not None

    def restore(self) -> None:
        if self._lsock is not None:
            return
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(64)
        self._lsock = ls
        threading.Thread(target=self._accept, args=(ls,), daemon=True, name="es-proxy").start()

    def cut(self) -> None:
        ls, self._lsock = self._lsock, None
        if ls is not None:
            try:  # wakes the thread blocked in accept(); close() alone would not stop it accepting
                ls.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            ls.close()
        with self._lock:
            conns, self._conns = self._conns, set()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def _accept(self, ls: socket.socket) -> None:
        while True:
            try:
                client, _ = ls.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


# --- the fault stack ---------------------------------------------------------------------


@dataclass
class FaultStack:
    """The separate stack, its settings, and the faults the tests inject."""

    settings: Settings
    ports: dict[str, int]
    proxy: TcpProxy
    extra_env: dict[str, str] = field(default_factory=dict)

    # environment of the subprocesses (workers, replay): every address of THIS stack
    @property
    def env(self) -> dict[str, str]:
        s, p = self.settings, self.ports
        env = {
            "DNSENTINEL_REDIS__URL": s.redis.url,
            "DNSENTINEL_KAFKA__BOOTSTRAP_SERVERS": s.kafka.bootstrap_servers,
            "DNSENTINEL_ELASTICSEARCH__URL": f"http://127.0.0.1:{p['es_proxy']}",
            "DNSENTINEL_STACK__STATE_DIR": str(s.stack.state_dir),
            "DNSENTINEL_STACK__CACHE_DIR": str(s.stack.cache_dir),
            "DNSENTINEL_COREDNS__PORT": str(s.coredns.port),
            "DNSENTINEL_COREDNS__HEALTH_PORT": str(s.coredns.health_port),
            "DNSENTINEL_COREDNS__READY_PORT": str(s.coredns.ready_port),
            "DNSENTINEL_COREDNS__METRICS_PORT": str(s.coredns.metrics_port),
            "DNSENTINEL_STACK__KAFKA_CONTROLLER_PORT": str(s.stack.kafka_controller_port),
            "DNSENTINEL_STACK__ES_TRANSPORT_PORT": str(s.stack.es_transport_port),
            "DNSENTINEL_WORKER__WEB_PORT": str(s.worker.web_port),
            "DNSENTINEL_WORKER__METRICS_PORT": str(s.worker.metrics_port),
            "DNSENTINEL_WORKER__MAX_NEW_NAMES_PER_DOMAIN_PER_MIN": str(s.worker.max_new_names_per_domain_per_min),
            "DNSENTINEL_DASHBOARD__PORT": str(p["dashboard"]),
        }
        return env | self.extra_env

    # services
    def up(self, *services: str) -> None:
        from dnsentinel.cli import stackctl

        stackctl.up(self.settings, services or stackctl.SERVICES, echo=False)

    def down(self, *services: str) -> None:
        from dnsentinel.cli import stackctl

        stackctl.down(self.settings, services, echo=False)

    def service_pid(self, service: str) -> int:
        rel = {"redis": "redis/redis.pid", "kafka": "kafka/kafka.pid", "coredns": "coredns/coredns.pid",
               "elasticsearch": "elasticsearch/es.pid"}[service]
        return int((self.settings.stack.state_dir / rel).read_text().strip())

    # workers
    def worker_name(self, index: int) -> str:
        return f"worker-{index + 1}"

    def start_worker(self, index: int = 0) -> int:
        from dnsentinel.cli import apps

        app = apps.worker_app(self.settings, index)
        return apps.start(self.settings, apps.App(app.name, app.argv, self.env | app.env))

    def worker_pid(self, index: int = 0) -> int | None:
        from dnsentinel.cli import apps

        return apps.pid_of(self.settings, self.worker_name(index))

    def kill_worker(self, index: int = 0, sig: signal.Signals = signal.SIGKILL) -> None:
        pid = self.worker_pid(index)
        assert pid is not None, f"{self.worker_name(index)} is not running"
        os.kill(pid, sig)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)  # our child (apps.start): reap it
            except ChildProcessError:
                done = pid if not Path(f"/proc/{pid}").exists() else 0
            if done:
                return
            time.sleep(0.1)
        pytest.fail(f"{self.worker_name(index)} (pid {pid}) survived {sig.name}", pytrace=False)

    def stop_worker(self, index: int = 0) -> None:
        """A clean stop (SIGTERM, then SIGKILL after 30 s)."""
        if self.worker_pid(index) is None:
            return
        os.kill(self.worker_pid(index), signal.SIGTERM)
        try:
            wait_for(lambda: self._reaped(index), 30, f"{self.worker_name(index)} to stop", every=0.3)
        except pytest.fail.Exception:
            self.kill_worker(index)

    def _reaped(self, index: int) -> bool:
        pid = self.worker_pid(index)
        if pid is None:
            return True
        try:
            return os.waitpid(pid, os.WNOHANG)[0] == pid
        except ChildProcessError:
            return not Path(f"/proc/{pid}").exists()

    def worker_metrics(self, index: int = 0) -> dict[tuple[str, tuple], float]:
        return scrape(f"http://127.0.0.1:{self.settings.worker.metrics_port + index}/metrics")

    def worker_ready(self, index: int = 0) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.settings.worker.web_port + index}/health",
                                        timeout=3) as r:
                ok = json.loads(r.read()).get("ok")
        except (OSError, ValueError):
            return False
        if not ok:
            return False
        try:
            self.worker_metrics(index)
            return True
        except OSError:
            return False

    def ensure_worker(self, index: int = 0, timeout_s: float = 240) -> int:
        """Start the worker unless it runs, and wait until it has its model and serves metrics."""
        pid = self.start_worker(index)
        wait_for(lambda: self.worker_ready(index), timeout_s, f"{self.worker_name(index)} to load its model",
                 every=1.0)
        return pid

    def score(self, names: list[str], index: int = 0) -> dict[str, str]:
        """Labels of the worker's current model (its /score page), without loading TensorFlow here."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.settings.worker.web_port + index}/score",
                                     data=json.dumps({"domains": names}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return {x["name"]: x["label"] for x in json.loads(r.read())["results"]}

    # clients of this stack (the test process talks to ES directly, never through the proxy)
    def cache(self) -> Any:
        from dnsentinel.verdict_cache.cache import VerdictCache

        return VerdictCache.from_settings(self.settings)

    def es(self) -> Any:
        from elasticsearch import Elasticsearch

        return Elasticsearch(**self.settings.elasticsearch.client_kwargs())

    def coredns_metrics(self, settings: Settings | None = None) -> dict[tuple[str, tuple], float]:
        c = (settings or self.settings).coredns
        return scrape(f"http://{c.host}:{c.metrics_port}/metrics")

    def cli(self, *args: str, timeout_s: float = 180) -> subprocess.CompletedProcess:
        """``dnsentinel ARGS`` against this stack."""
        from dnsentinel.cli import apps

        env = {k: v for k, v in os.environ.items() if not k.startswith("DNSENTINEL_")} | self.env
        env["COLUMNS"] = "200"
        return subprocess.run(apps.cli_argv(*args), env=env, capture_output=True, text=True, timeout=timeout_s,
                              cwd=REPO_ROOT)

    def dnsperf(self, qfile: Path, *args: str, settings: Settings | None = None,
                timeout_s: float = 120) -> subprocess.Popen:
        c = (settings or self.settings).coredns
        return subprocess.Popen(["dnsperf", "-s", c.host, "-p", str(c.port), "-d", str(qfile), *args],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def second_coredns(self) -> Settings:
        """Settings of another CoreDNS instance on other ports, same Redis and Kafka."""
        p = self.ports
        state2 = self.settings.stack.state_dir / "coredns2"
        (state2 / "bin").mkdir(parents=True, exist_ok=True)
        for f in ("coredns", "coredns.srchash"):  # the same build: no second link
            shutil.copy2(self.settings.stack.state_dir / "bin" / f, state2 / "bin" / f)
        data = self.settings.model_dump()
        data["coredns"].update(port=p["dns2"], health_port=p["health2"], ready_port=p["ready2"],
                               metrics_port=p["metrics2"], server_id="coredns-resilience-2")
        data["stack"]["state_dir"] = state2
        return Settings(**data)


def _settings(ports: dict[str, int]) -> Settings:
    from dnsentinel.settings import get_settings

    base = get_settings()
    return Settings(
        kafka={"bootstrap_servers": f"127.0.0.1:{ports['kafka']}"},
        redis={"url": f"redis://127.0.0.1:{ports['redis']}/0"},
        elasticsearch={"url": f"http://127.0.0.1:{ports['es']}", "request_timeout_s": 30},
        coredns={"port": ports["dns"], "health_port": ports["health"], "ready_port": ports["ready"],
                 "metrics_port": ports["metrics"], "server_id": "coredns-resilience"},
        worker={"web_port": ports["web"], "metrics_port": ports["wmetrics"],
                "max_new_names_per_domain_per_min": FLOOD_LIMIT},
        stack={
            "state_dir": STATE,
            "cache_dir": base.stack.cache_dir or base.stack.state_dir / "cache",
            "kafka_controller_port": ports["kafka_ctl"],
            "es_transport_port": ports["es_transport"],
            "kafka_heap": "256m",
            "es_heap": "512m",
            "start_timeout_s": base.stack.start_timeout_s,
        },
    )


PORT_NAMES = ("redis", "kafka", "kafka_ctl", "es", "es_transport", "es_proxy", "dns", "health", "ready",
              "metrics", "web", "wmetrics", "dashboard", "dns2", "health2", "ready2", "metrics2")


def _stack_running() -> bool:
    """Whether a service of the fault stack (a pid file under STATE) is alive."""
    for pid_file in ("redis/redis.pid", "kafka/kafka.pid", "elasticsearch/es.pid", "coredns/coredns.pid"):
        try:
            pid = int((STATE / pid_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if Path(f"/proc/{pid}").exists():
            return True
    return False


def _ports() -> dict[str, int]:
    saved = STATE / "ports.json"
    if saved.exists():
        ports = json.loads(saved.read_text())
        # Reused only while this stack runs (KEEP) or every port is still free: a saved port that some
        # other process took since would make the idempotent `up` adopt that process as ours.
        if set(ports) == set(PORT_NAMES) and (_stack_running() or all(_port_free(p) for p in ports.values())):
            return ports
    ports = dict(zip(PORT_NAMES, _free_ports(len(PORT_NAMES), set())))
    STATE.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(ports))
    return ports


def _bring_up() -> FaultStack:
    from dnsentinel.cli import stackctl
    from dnsentinel.cli.demo import wait_pipeline
    from dnsentinel.settings import get_settings

    ports = _ports()
    settings = _settings(ports)
    # Reuse the shared stack's CoreDNS build when it is current (same sources): no second link.
    shared_bin = get_settings().stack.state_dir / "bin"
    mine = STATE / "bin"
    if (shared_bin / "coredns").exists() and not (mine / "coredns").exists():
        mine.mkdir(parents=True, exist_ok=True)
        for f in ("coredns", "coredns.srchash"):
            shutil.copy2(shared_bin / f, mine / f)
    fs = FaultStack(settings, ports, TcpProxy(ports["es_proxy"], ("127.0.0.1", ports["es"])))
    _state["stack"] = fs
    stackctl.up(settings, echo=False)
    sick = [f"{r.name}: {r.state} {r.detail}" for r in stackctl.status(settings) if not r.healthy]
    if sick:
        raise RuntimeError("the fault stack is not healthy after `up`: " + "; ".join(sick))
    _clean_slate(fs)
    fs.proxy.restore()
    fs.ensure_worker(0)
    wait_pipeline(settings, timeout_s=240)
    return fs


def _clean_slate(fs: FaultStack) -> None:
    """Empty the fault stack's data, so a rerun (state dir reused, or ``KEEP``) starts like a fresh clone.

    Redis (verdicts, vetted entries, counters: its dump.rdb) and Elasticsearch (every ``<prefix>-*``
    index) survive a ``down``/``up`` in ``.state/resilience``; names, blocks and counts of an earlier session would
    otherwise answer this session's questions. Stray workers of an earlier session are stopped (a
    leftover second worker would hold partitions and ports), and the worker group skips whatever an
    earlier session left unconsumed on the queries topic. Templates stay: the worker installs them.
    """
    from dnsentinel.cli import apps

    if KEEP:  # worker 1 is reused (no model reload); a leftover worker 2 is not
        apps.stop_all(fs.settings, only={fs.worker_name(1)})
    else:
        apps.stop_all(fs.settings)
        _skip_unconsumed(fs.settings)
    cache = fs.cache()
    cache.client.flushall()
    cache.client.save()  # the snapshot too: a Redis killed by a test restarts from it, not from old data
    cache.client.publish(cache.channel, "vetted *")  # in-process caches of vetted entries: drop them
    es = fs.es()
    prefix = fs.settings.elasticsearch.index_prefix
    names = list(es.indices.get(index=f"{prefix}-*", expand_wildcards="all", allow_no_indices=True))
    if names:
        es.indices.delete(index=",".join(names), ignore_unavailable=True)
    es.close()


def _skip_unconsumed(settings: Settings) -> None:
    """Commit the queries topic's end offsets for the (memberless) worker group."""
    from confluent_kafka import Consumer, TopicPartition

    topic = settings.kafka.queries_topic
    c = Consumer(settings.kafka.confluent_config() | {"group.id": settings.worker.app_id,
                                                      "enable.auto.commit": False})
    try:
        meta = c.list_topics(topic, timeout=30).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            return  # not created yet: nothing left over
        ends = [TopicPartition(topic, p, _high_watermark(c, topic, p)) for p in meta.partitions]
        c.commit(offsets=ends, asynchronous=False)
    finally:
        c.close()


def _high_watermark(c: object, topic: str, partition: int, timeout_s: float = 30.0) -> int:
    """The partition's end offset; a partition whose leader is still being elected is asked again."""
    from confluent_kafka import KafkaException, TopicPartition

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s)[1]  # type: ignore[attr-defined]
        except KafkaException as exc:
            if "LEADER" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _tear_down() -> None:
    fs: FaultStack | None = _state.pop("stack", None)
    if fs is None or KEEP:
        return
    from dnsentinel.cli import apps, stackctl

    fs.proxy.cut()
    apps.stop_all(fs.settings)
    coredns2 = fs.settings.stack.state_dir / "coredns2"
    if coredns2.exists():
        stackctl.down(fs.second_coredns(), ("coredns",), echo=False)
    stackctl.down(fs.settings, echo=False)
    (STATE / "ports.json").unlink(missing_ok=True)


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly or not any("fault" in getattr(i, "fixturenames", ())
                                                    for i in session.items):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    started = time.monotonic()
    if reporter:
        reporter.write_line(f"resilience: bringing the fault stack up in {STATE} (separate ports)...")
    try:
        _bring_up()
    except Exception as exc:  # noqa: BLE001 - reported by the fixture, loudly
        _state["error"] = f"the fault stack could not start: {type(exc).__name__}: {exc}"
    if reporter:
        reporter.write_line(f"resilience: fault stack {'FAILED' if 'error' in _state else 'up'} "
                            f"after {time.monotonic() - started:.0f}s")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if "stack" not in _state:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    started = time.monotonic()
    _tear_down()
    if reporter and not KEEP:
        reporter.write_line(f"resilience: fault stack down after {time.monotonic() - started:.0f}s")


@pytest.fixture(scope="session")
def fault() -> Iterator[FaultStack]:
    if "error" in _state:
        pytest.fail(_state["error"], pytrace=False)
    if "stack" not in _state:  # collected lazily (e.g. by name): bring it up now
        try:
            _bring_up()
        except Exception as exc:  # noqa: BLE001
            pytest.fail(f"the fault stack could not start: {type(exc).__name__}: {exc}", pytrace=False)
    yield _state["stack"]


@pytest.fixture
def healthy(fault: FaultStack) -> FaultStack:
    """Every service up (a test before may have stopped one), the ES proxy open, worker 1 scoring."""
    fault.up()
    fault.proxy.restore()
    fault.ensure_worker(0)
    return fault
