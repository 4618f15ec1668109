"""Clients through Redis Sentinel: the same client object follows a real failover.

Each test starts its own throwaway topology in a temporary folder on free loopback ports: a
primary and a replica (ACL user ``worker``, a password for replication and Sentinel
monitoring) and three Sentinels (quorum 2, their own password). ``SIGKILL`` of the primary
stands for a crashed host; the Sentinels promote the replica within a few seconds, and the
client that wrote before the crash reads and writes on the new primary without being rebuilt.
The Go plugin's twin of the failover test (store_sentinel_test.go) runs against a topology of
its own made here, as ``go test`` cannot start one by itself.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dnsentinel.errors import ServiceUnavailable
from dnsentinel.settings import REPO_ROOT, Settings

pytestmark = pytest.mark.integration

MASTER = "dnsentinel"
DATA_PASSWORD = "data-pw"
WORKER_PASSWORD = "worker-pw"
SENTINEL_PASSWORD = "sentinel-pw"
PEER_PASSWORD = "peer-pw"
SENTINEL_CLIENT_GRANTS = ("+ping +subscribe +unsubscribe +client|tracking +sentinel|masters +sentinel|master "
                          "+sentinel|get-master-addr-by-name +sentinel|replicas +sentinel|slaves +sentinel|sentinels")
"""What the product's clients need of a Sentinel, and all the test's ``discovery`` user may run:
redis-py asks SENTINEL MASTERS; rueidis GET-MASTER-ADDR-BY-NAME, REPLICAS and SENTINELS, subscribes
to the switch events, and turns on CLIENT TRACKING on its Sentinel connection too (it copies the
client's options), so a Sentinel ACL without ``client|tracking`` keeps the plugin from connecting."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Topology:
    """A primary, a replica and three Sentinels, as processes of this test."""

    root: Path
    primary: int = field(default_factory=_free_port)
    replica: int = field(default_factory=_free_port)
    sentinels: list[int] = field(default_factory=lambda: [_free_port() for _ in range(3)])
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    pki: Path | None = None
    """With it, every node listens on TLS only (the cluster CA's certificates), Sentinels included."""

    def tls_conf(self) -> str:
        if self.pki is None:
            return ""
        return (f"port 0\ntls-cert-file {self.pki}/redis-primary.crt\ntls-key-file {self.pki}/redis-primary.key\n"
                f"tls-ca-cert-file {self.pki}/ca.crt\ntls-auth-clients no\ntls-replication yes\n")

    def port_conf(self, port: int) -> str:
        return (f"tls-port {port}\n" + self.tls_conf()) if self.pki else f"port {port}\n"

    def node(self, port: int, password: str | None = None, username: str | None = None) -> Any:
        """A plain redis-py client of one node (TLS when the topology has it)."""
        import redis

        tls = {"ssl": True, "ssl_ca_certs": str(self.pki / "ca.crt")} if self.pki else {}
        return redis.Redis("127.0.0.1", port, username=username, password=password, socket_timeout=1,
                           socket_connect_timeout=1, decode_responses=True, **tls)

    def start(self) -> None:
        self._server(self.primary)
        self._server(self.replica, f"replicaof 127.0.0.1 {self.primary}")
        for port in self.sentinels:
            self._sentinel(port)
        self.wait(lambda: self._replicas_known() and self._sentinels_agree(), "Sentinels see the replica", 30)

    def _server(self, port: int, extra: str = "") -> None:
        conf = self.root / f"redis-{port}.conf"
        conf.write_text(
            f"{self.port_conf(port)}bind 127.0.0.1\ndir {self.root}\ndbfilename dump-{port}.rdb\nsave \"\"\nappendonly no\n"
            f"requirepass {DATA_PASSWORD}\nmasterauth {DATA_PASSWORD}\n"
            f"user worker on >{WORKER_PASSWORD} ~* &* +@all\n{extra}\n")
        self._spawn(port, [str(conf)])

    def _sentinel(self, port: int) -> None:
        conf = self.root / f"sentinel-{port}.conf"
        conf.write_text(
            f"{self.port_conf(port)}bind 127.0.0.1\ndir {self.root}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {self.primary} 2\n"
            f"sentinel auth-pass {MASTER} {DATA_PASSWORD}\n"
            f"sentinel down-after-milliseconds {MASTER} 1000\n"
            f"sentinel failover-timeout {MASTER} 5000\n"
            # ACL as on the cluster profile: nobody anonymous, clients limited to discovery.
            f"user default off\nuser peer on >{PEER_PASSWORD} ~* &* +@all\n"
            f"user discovery on >{SENTINEL_PASSWORD} resetchannels &* -@all {SENTINEL_CLIENT_GRANTS}\n"
            f"sentinel sentinel-user peer\nsentinel sentinel-pass {PEER_PASSWORD}\n")
        self._spawn(port, [str(conf), "--sentinel"])

    def _spawn(self, port: int, args: list[str]) -> None:
        log = (self.root / f"{port}.log").open("wb")
        self.procs[port] = subprocess.Popen([shutil.which("redis-server") or "redis-server", *args],
                                            stdout=log, stderr=subprocess.STDOUT)
        self.wait(lambda: self._cli(port, "PING") in ("PONG", "NOAUTH"), f"redis-server on {port}", 15)

    def _cli(self, port: int, *cmd: str, password: str | None = None) -> str:
        import redis

        try:
            with self.node(port, password) as c:
                return str(c.execute_command(*cmd))
        except redis.AuthenticationError:
            return "NOAUTH"
        except redis.RedisError as exc:
            return f"error: {exc}"

    def master_port(self) -> int | None:
        """The master port Sentinels agree on (None while they differ or do not know)."""
        import redis

        seen = set()
        for port in self.sentinels:
            try:
                with self.node(port, PEER_PASSWORD, "peer") as c:
                    addr = c.sentinel_get_master_addr_by_name(MASTER)
            except redis.RedisError:
                continue
            seen.add(int(addr[1]) if addr else None)
        return seen.pop() if len(seen) == 1 else None

    def _replicas_known(self) -> bool:
        import redis

        try:
            with self.node(self.sentinels[0], PEER_PASSWORD, "peer") as c:
                return any(int(r["port"]) == self.replica for r in c.sentinel_slaves(MASTER))
        except redis.RedisError:
            return False

    def _sentinels_agree(self) -> bool:
        import redis

        try:
            with self.node(self.sentinels[0], PEER_PASSWORD, "peer") as c:
                return len(c.sentinel_sentinels(MASTER)) == len(self.sentinels) - 1
        except redis.RedisError:
            return False

    def kill(self, port: int) -> None:
        self.procs[port].send_signal(signal.SIGKILL)
        self.procs[port].wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()

    def settings(self, **redis: object) -> Settings:
        r = {"url": "redis://127.0.0.1:1/0", "sentinels": [f"127.0.0.1:{p}" for p in self.sentinels],
             "sentinel_master": MASTER, "sentinel_username": "discovery", "sentinel_password": SENTINEL_PASSWORD,
             "username": "worker",
             "password": WORKER_PASSWORD, "key_prefix": f"test-sentinel-{uuid.uuid4().hex[:8]}", **redis}
        if self.pki:
            r = {"ssl": True, "ssl_ca_certs": str(self.pki / "ca.crt"), **r}
        return Settings(redis=r)

    @staticmethod
    def wait(ok, what: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not ok():
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: not within {timeout_s:.0f} s")
            time.sleep(0.2)


def _topology(root: Path, pki: Path | None = None) -> Iterator[Topology]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: run deploy/install-system.sh", pytrace=False)
    topo = Topology(root, pki=pki)
    try:
        topo.start()
        yield topo
    finally:
        topo.stop()


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    """Plain TCP; shared by the error checks (which change nothing) and then the failover test."""
    yield from _topology(tmp_path_factory.mktemp("sentinel"))


@pytest.fixture()
def tls_topology(tmp_path: Path, pki: Path) -> Iterator[Topology]:
    """TLS only, Sentinels included: what the cluster profile runs."""
    yield from _topology(tmp_path, pki)


def test_start_up_check_names_the_service_address_and_cause(topology: Topology) -> None:
    from dnsentinel.redis_client import check_redis

    check_redis(topology.settings().redis)  # all good: no error
    cases = [
        ({"sentinel_password": "wrong"}, "redis sentinels at " + ", ".join(f"127.0.0.1:{p}" for p in topology.sentinels)
         + ": authentication failed for user discovery (WRONGPASS"),
        ({"password": "wrong"}, f"redis at 127.0.0.1:{topology.primary} (master 'dnsentinel'): authentication "
                                "failed for user worker (WRONGPASS"),
        ({"username": "nobody"}, "authentication failed for user nobody (WRONGPASS"),
        ({"sentinel_master": "other"}, "no healthy master named 'other'"),
        ({"sentinels": [f"127.0.0.1:{topology.primary}"], "sentinel_username": None, "sentinel_password": DATA_PASSWORD},
         "not a Sentinel"),
    ]
    for change, needle in cases:
        with pytest.raises(ServiceUnavailable) as err:
            check_redis(topology.settings(**change).redis)
        assert needle in str(err.value) and "\n" not in str(err.value), (change, str(err.value))


def test_the_same_cache_object_follows_a_failover(topology: Topology) -> None:
    from dnsentinel.redis_client import async_client
    from dnsentinel.verdict_cache.cache import Verdict, VerdictCache

    settings = topology.settings()
    cache = VerdictCache.from_settings(settings)
    aclient = async_client(settings.redis)  # the worker's changes-channel client, same factory

    async def scenario() -> None:
        before = Verdict("before.example.com", "malicious", 0.99, "test-1", int(time.time()))
        assert cache.put_verdicts([before]) == 1
        assert cache.client.wait(1, 5000) == 1  # the replica has it before the crash
        assert await aclient.ping()

        topology.kill(topology.primary)
        await asyncio.to_thread(topology.wait, lambda: topology.master_port() == topology.replica,
                                "the Sentinels promote the replica", 60)

        assert cache.get_verdicts(["before.example.com"])["before.example.com"].label == "malicious"
        after = Verdict("after.example.com", "benign", 0.01, "test-1", int(time.time()))
        assert cache.put_verdicts([after]) == 1
        assert cache.get_verdicts(["after.example.com"])["after.example.com"].label == "benign"
        assert cache.client.connection_pool.get_master_address()[1] == topology.replica
        assert await aclient.get(cache.verdict_key("after.example.com")) is not None
        await aclient.aclose()

    asyncio.run(scenario())


def test_go_plugin_follows_a_failover(tls_topology: Topology) -> None:
    """store_sentinel_test.go against a TLS topology: the plugin reads from the new primary, no restart."""
    topology = tls_topology
    assert topology.pki is not None
    env = os.environ | {
        "DNSENTINEL_SENTINEL_ADDRS": ",".join(f"127.0.0.1:{p}" for p in topology.sentinels),
        "DNSENTINEL_SENTINEL_MASTER": MASTER,
        "DNSENTINEL_SENTINEL_USER": "discovery",
        "DNSENTINEL_SENTINEL_PASSWORD": SENTINEL_PASSWORD,
        "DNSENTINEL_SENTINEL_REDIS_USER": "worker",
        "DNSENTINEL_SENTINEL_REDIS_PASSWORD": WORKER_PASSWORD,
        "DNSENTINEL_SENTINEL_KILL_PID": str(topology.procs[topology.primary].pid),
        "DNSENTINEL_SENTINEL_CA": str(topology.pki / "ca.crt"),
    }
    proc = subprocess.run(
        ["go", "test", "-count=1", "-v", "-run", "^TestSentinelFailover$", "./plugin/dnsentinel/"],
        cwd=REPO_ROOT / "coredns-plugin", env=env, capture_output=True, text=True, timeout=400)
    report = f"{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    assert proc.returncode == 0, f"go test failed:\n{report}"
    assert "--- PASS: TestSentinelFailover" in proc.stdout, f"did not pass (skipped?):\n{report}"


# -- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cluster profile's CA and node certificates (deploy/multi/pki.sh) in a temporary folder."""
    root = tmp_path_factory.mktemp("pki")
    subprocess.run(["bash", str(REPO_ROOT / "deploy" / "multi" / "pki.sh"), str(root)], check=True,
                   capture_output=True, timeout=300)
    return root / "pki"


@pytest.fixture()
def tls_server(tmp_path: Path, pki: Path) -> Iterator[int]:
    """One redis-server speaking only TLS (the redis-primary certificate), user ``worker``."""
    topo = Topology(tmp_path)
    port = topo.primary
    conf = tmp_path / "tls.conf"
    conf.write_text(
        f"port 0\ntls-port {port}\nbind 127.0.0.1\ndir {tmp_path}\nsave \"\"\n"
        f"tls-cert-file {pki}/redis-primary.crt\ntls-key-file {pki}/redis-primary.key\n"
        f"tls-ca-cert-file {pki}/ca.crt\ntls-auth-clients optional\n"
        f"user default off\nuser worker on >{WORKER_PASSWORD} ~* &* +@all\n")
    log = (tmp_path / "tls.log").open("wb")
    topo.procs[port] = subprocess.Popen([shutil.which("redis-server") or "redis-server", str(conf)],
                                        stdout=log, stderr=subprocess.STDOUT)
    try:
        Topology.wait(lambda: _listening(port), f"TLS redis-server on {port}", 15)
        yield port
    finally:
        topo.stop()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_tls_errors_name_the_cause(tls_server: int, pki: Path) -> None:
    from dnsentinel.redis_client import check_redis
    from dnsentinel.verdict_cache.cache import VerdictCache

    good = {"url": f"rediss://127.0.0.1:{tls_server}/0", "username": "worker", "password": WORKER_PASSWORD,
            "ssl_ca_certs": str(pki / "ca.crt"), "socket_timeout_s": 1, "connect_timeout_s": 1}
    check_redis(Settings(redis=good).redis)
    cache = VerdictCache.from_settings(Settings(redis={**good, "url": f"redis://127.0.0.1:{tls_server}/0", "ssl": True}))
    assert cache.client.ping()  # ``ssl = true`` is the same as rediss://
    cases = [
        ({"ssl_ca_certs": None}, "TLS certificate not trusted (set redis.ssl_ca_certs"),
        ({"password": "wrong"}, "authentication failed for user worker (WRONGPASS"),
        ({"url": f"redis://127.0.0.1:{tls_server}/0"}, "does it want TLS? use rediss://"),
        ({"url": f"rediss://localhost:{tls_server}/0"}, ""),  # localhost is in the SAN too: no error
    ]
    for change, needle in cases:
        r = Settings(redis={**good, **change}).redis
        if not needle:
            check_redis(r)
            continue
        with pytest.raises(ServiceUnavailable) as err:
            check_redis(r)
        msg = str(err.value)
        assert msg.startswith(f"redis at 127.0.0.1:{tls_server}: ") and needle in msg and "\n" not in msg, (change, msg)
