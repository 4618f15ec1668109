"""Idempotent `up`, clean `down`, and a port held by a stranger, on a SEPARATE stack.

These tests never touch the shared stack on the default ports: they run their
own instances from a temporary state dir on free ports (sharing only the
download cache and the already built CoreDNS binary of the session's stack).
Elasticsearch is left out of the lifecycle test: a second node needs 1-4
minutes of a shared 2-core machine; its down path is the same pid-file stop,
checked by hand (deploy/README.md).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from dnsentinel.errors import ServiceUnavailable
from dnsentinel.settings import Settings

pytestmark = pytest.mark.integration


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _separate_settings(base: Settings, state_dir: Path) -> Settings:
    p = _free_ports(9)
    cache = base.stack.cache_dir or base.stack.state_dir / "cache"
    return Settings(
        kafka={"bootstrap_servers": f"127.0.0.1:{p[0]}", "queries_topic": "dns.queries"},
        redis={"url": f"redis://127.0.0.1:{p[1]}/0"},
        elasticsearch={"url": f"http://127.0.0.1:{p[2]}"},
        coredns={"port": p[3], "health_port": p[4], "ready_port": p[5], "metrics_port": p[6]},
        stack={
            "state_dir": state_dir,
            "cache_dir": cache,
            "kafka_controller_port": p[7],
            "es_transport_port": p[8],
            "es_heap": "512m",
            "kafka_heap": "256m",
            "start_timeout_s": base.stack.start_timeout_s,
        },
    )


def _ports(s: Settings, services: tuple[str, ...]) -> list[int]:
    from dnsentinel.cli import stackctl

    return [port for svc, port in stackctl._ports(stackctl.stack_env(s, ())) if svc in services]


def _listened(port: int) -> bool:
    out = subprocess.run(["ss", "-Hltun", f"sport = :{port}"], capture_output=True, text=True).stdout
    return bool(out.strip())


def _pids(state_dir: Path) -> dict[str, int]:
    pids = {}
    for name, rel in (("redis", "redis/redis.pid"), ("kafka", "kafka/kafka.pid"),
                      ("elasticsearch", "elasticsearch/es.pid"), ("coredns", "coredns/coredns.pid")):
        f = state_dir / rel
        if f.exists():
            pids[name] = int(f.read_text().strip())
    return pids


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


LIFECYCLE = ("redis", "kafka", "coredns")


def test_up_twice_then_down_leaves_no_process_and_no_port(stack, tmp_path):
    from dnsentinel.cli import stackctl

    state = tmp_path / "state"
    # Reuse the session stack's CoreDNS build instead of linking it again; `up` first so that
    # it matches the current sources (teammates edit them while tests run).
    stackctl.up(stack, ("coredns",), echo=False)
    (state / "bin").mkdir(parents=True)
    for f in ("coredns", "coredns.srchash"):
        shutil.copy2(stack.stack.state_dir / "bin" / f, state / "bin" / f)
    s = _separate_settings(stack, state)
    pids: dict[str, int] = {}
    try:
        stackctl.up(s, LIFECYCLE)
        rows = {r.name: r for r in stackctl.status(s) if r.name in LIFECYCLE}
        assert all(r.healthy for r in rows.values()), rows
        pids = _pids(state)
        assert set(pids) == set(LIFECYCLE)

        stackctl.up(s, LIFECYCLE)  # idempotent: nothing restarted
        assert _pids(state) == pids
        assert all(r.healthy for r in stackctl.status(s) if r.name in LIFECYCLE)
    finally:
        stackctl.down(s, LIFECYCLE)
    assert not [n for n, pid in pids.items() if _alive(pid)], "a service process survived `down`"
    assert not [p for p in _ports(s, LIFECYCLE) if _listened(p)], "a port is still listened on after `down`"
    assert {r.state for r in stackctl.status(s) if r.name in LIFECYCLE} == {"stopped"}


def test_port_held_by_another_process_is_a_clear_error(tmp_path):
    from dnsentinel.cli import stackctl

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        s = Settings(redis={"url": f"redis://127.0.0.1:{port}/0"}, stack={"state_dir": tmp_path})
        with pytest.raises(ServiceUnavailable, match=f"port {port} .*already used"):
            stackctl.up(s, ("redis",), echo=False)
    finally:
        holder.close()


def test_up_and_down_of_one_service_only(tmp_path):
    from dnsentinel.cli import stackctl

    (port,) = _free_ports(1)
    s = Settings(redis={"url": f"redis://127.0.0.1:{port}/0"}, stack={"state_dir": tmp_path})
    try:
        stackctl.up(s, ("redis",), echo=False)
        assert {r.name: r.state for r in stackctl.status(s)}["redis"] == "healthy"
    finally:
        stackctl.down(s, ("redis",), echo=False)
    assert not _listened(port)
