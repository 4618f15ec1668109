"""The Redis ACL users of the cluster grant each component exactly the commands its code issues.

A throw-away redis-server (no TLS: this is about ACL rules, not transport) loads the ACL file
rendered from deploy/multi/redis/users.acl.tmpl the way deploy/cluster/redis.sh renders it. Each
Python component's Redis operations then run *as that component's ACL user*, through the
component's own code (VerdictCache, the worker's changes follower, the dashboard's accounts,
sessions, login limits and vetting), while MONITOR records the command names, one phase per
component. Two failures are caught:

* a command the code issues that its user lacks: the call raises NOPERM (or, where the code
  swallows errors, like the changes follower, it lands in ``ACL LOG``, which must stay empty);
* a grant nobody uses: the user's command set must equal the recorded set.

The CoreDNS plugin is Go (rueidis): its data commands come from the builder calls
(``B().Hmget()``...) in coredns-plugin/plugin/dnsentinel/*.go, plus the commands rueidis' client-side
caching sends around them (:data:`RUEIDIS_CACHING`); the exact sequence is replayed as the
``coredns`` user.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dnsentinel.cli.cluster.redis import PRINCIPALS, acl_users, command_name, render_acl
from dnsentinel.settings import REPO_ROOT, DashboardSettings, RedisSettings, Settings, StackSettings

PREFIX = "dnsentinel"
PLUGIN_DIR = REPO_ROOT / "coredns-plugin" / "plugin" / "dnsentinel"

RUEIDIS_CACHING = {"client|tracking", "multi", "client|caching", "pttl", "exec", "ping"}
"""What rueidis (v1.0.x, pipe.go) sends besides the plugin's own reads: ``CLIENT TRACKING ON OPTIN``
at connect; each ``DoCache`` read as ``MULTI, CLIENT CACHING YES, PTTL key, <read>, EXEC``; ``PING``
as keep-alive. (``HELLO 3 AUTH`` needs no grant; its ``CLIENT SETINFO`` may fail: rueidis ignores it.)"""

NO_GRANT = {"auth", "hello"}
"""Commands every user may run (logging in); MONITOR's record of them is left out."""

RUEIDIS_SENTINEL = {"role"}
"""rueidis in Sentinel mode (the cluster's Corefile: ``redis_sentinel``) asks the node the Sentinels
name for its ``ROLE`` before using it as the master (sentinel.go)."""

REPLICATION = {"psync", "replconf", "ping"}
SENTINEL = {"multi", "slaveof", "ping", "exec", "subscribe", "config|rewrite", "role", "publish", "info",
            "client|setname", "client|kill", "script|kill"}
"""The Redis Sentinel documentation's minimal set for the monitored instances (failover checked in
test_redis_cluster.py: ACL LOG stays empty)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """A redis-server on a free port with the rendered ACL file; admin client included."""
    import redis

    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: run deploy/install-system.sh", pytrace=False)
    tmp = tmp_path_factory.mktemp("redis-acl")
    passwords = {p: secrets.token_hex(12) for p in PRINCIPALS}
    acl = render_acl(passwords, PREFIX)
    (tmp / "users.acl").write_text(acl)
    port = _free_port()
    subprocess.run(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--daemonize", "yes",
                    "--dir", str(tmp), "--logfile", str(tmp / "redis.log"), "--pidfile", str(tmp / "redis.pid"),
                    "--aclfile", str(tmp / "users.acl"), "--save", "", "--appendonly", "no"], check=True)
    admin = redis.Redis(port=port, username="admin", password=passwords["admin"], decode_responses=True)
    deadline = time.monotonic() + 10
    while True:
        try:
            admin.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                pytest.fail(f"the throw-away redis-server did not start: {(tmp / 'redis.log').read_text()[-500:]}")
            time.sleep(0.05)
    try:
        yield SimpleNamespace(port=port, passwords=passwords, admin=admin, acl=acl_users(acl), tmp=tmp)
    finally:
        try:
            admin.shutdown(nosave=True)
        except redis.ConnectionError:
            pass


def settings_as(server: SimpleNamespace, user: str) -> Settings:
    """The settings a component runs with on the cluster: its own ACL user."""
    # vetted_replicas as on the cluster, so vetted changes WAIT for a replica (none here: 1 ms each).
    redis_settings = RedisSettings(url=f"redis://127.0.0.1:{server.port}/0", username=user,
                                   password=server.passwords[user], key_prefix=PREFIX,
                                   vetted_replicas=1, vetted_wait_ms=1)
    return Settings(redis=redis_settings, stack=StackSettings(state_dir=server.tmp / "state"),
                    dashboard=DashboardSettings())


class Recorder:
    """MONITOR on an admin connection; commands grouped by the phase markers (``ECHO acl-phase:<name>``)."""

    def __init__(self, server: SimpleNamespace) -> None:
        import redis

        self.server = server
        self.by_phase: dict[str, set[str]] = defaultdict(set)
        self.helper = redis.Redis(port=server.port, username="admin", password=server.passwords["admin"],
                                  single_connection_client=True, decode_responses=True)
        """The test's own admin connection (markers, publishing): left out of every phase."""
        self._helper_port = int(self.helper.client_info()["addr"].rsplit(":", 1)[1])
        self._client = redis.Redis(port=server.port, username="admin", password=server.passwords["admin"])
        self._monitor = self._client.monitor()
        self._monitor.__enter__()
        self._phase = "setup"
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            cmd = self._monitor.next_command()
            args = cmd["command"].split()
            if not args or args[0].lower() in NO_GRANT:
                continue
            if args[0].upper() == "ECHO" and len(args) > 1 and args[1].startswith("acl-phase:"):
                self._phase = args[1].split(":", 1)[1]
                if self._phase == "end":
                    self._done.set()
                    return
                continue
            if int(cmd.get("client_port") or 0) != self._helper_port:
                self.by_phase[self._phase].add(command_name(args))

    def phase(self, name: str) -> None:
        self.helper.echo(f"acl-phase:{name}")

    def finish(self) -> dict[str, set[str]]:
        self.phase("end")
        assert self._done.wait(10), "MONITOR did not see the end marker"
        self._monitor.__exit__(None, None, None)
        self._client.close()
        self.helper.close()
        return dict(self.by_phase)


# --- what each component does with Redis ---------------------------------------------------------


def _verdicts() -> list[Any]:
    from dnsentinel.verdict_cache.keys import Verdict

    now = int(time.time())
    return [Verdict("evil.example", "malicious", 0.97, "m1", now), Verdict("fine.example", "benign", 0.01, "m1", now)]


def worker_calls() -> dict[str, Callable[[Any], object]]:
    """Every VerdictCache method the worker's code calls, as the worker calls it.

    The names are the members of the worker's two cache ports (stream_processor/ports.py
    ``VerdictStore`` and detections/service.py ``AlertCache``); the test checks they match, so a
    method added to a port without an entry here fails loudly instead of going unchecked.
    """
    return {
        "decide_many": lambda c: c.decide_many(["evil.example", "a.b.fine.example"]),
        "put_verdicts": lambda c: (c.put_verdicts(_verdicts()), c.put_verdicts(_verdicts(), True)),
        "get_verdicts": lambda c: c.get_verdicts(["evil.example", "missing.example"]),
        "set_vetted": lambda c: c.set_vetted("tunnel.example", "block", "detector:tunnel", "alert x"),
        "first_sightings": lambda c: c.first_sightings({"new.example": "1|10.0.0.1|a.new.example"}, 3600),
    }


def _port_members(cls: type) -> set[str]:
    return {n for n, v in vars(cls).items() if callable(v) and not n.startswith("_")}


def run_worker(settings: Settings, helper: Any) -> None:
    from dnsentinel.redis_client import check_redis
    from dnsentinel.stream_processor.app import _follow_changes
    from dnsentinel.verdict_cache.cache import VerdictCache

    check_redis(settings.redis)  # `dnsentinel worker` checks Redis at start (stream_processor/cli.py)
    cache = VerdictCache.from_settings(settings)
    try:
        for call in worker_calls().values():
            call(cache)
    finally:
        cache.close()

    channel = f"{PREFIX}:v1:changes"
    seen: list[str] = []
    proc = SimpleNamespace(lru=SimpleNamespace(clear=lambda: None), on_change=seen.append)

    async def follow_briefly() -> None:
        task = asyncio.create_task(_follow_changes(settings, proc))  # type: ignore[arg-type]
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            if helper.pubsub_numsub(channel)[0][1]:
                helper.publish(channel, "verdict evil.example")
            await asyncio.sleep(0.05)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(follow_briefly())
    assert seen == ["verdict evil.example"], "the worker's changes follower received nothing (see ACL LOG)"


class _AuditStore:
    """The dashboard's Elasticsearch store, which vetting also writes to (not Redis)."""

    def write_audit(self, entries: list[dict]) -> None: ...

    def mark_vetting(self, names: list[str], state: str) -> None: ...


def run_dashboard(settings: Settings) -> None:
    from dnsentinel.dashboard import vetting
    from dnsentinel.dashboard.auth import Accounts
    from dnsentinel.redis_client import check_redis
    from dnsentinel.verdict_cache.cache import VerdictCache

    acc = Accounts.from_settings(settings)
    check_redis(settings.redis, acc.users.client)  # `dnsentinel dashboard` checks Redis at start (dashboard/cli.py)
    acc.users.add("ana", "correct horse battery", "analyst", by="admin")
    acc.users.get("ana"), acc.users.all(), acc.users.any()
    acc.users.set_password("ana", "another long passphrase", by="admin")
    acc.users.set_role("ana", "viewer", by="admin")
    assert acc.authenticate("ana", "wrong", "10.0.0.9", "127.0.0.1").outcome == "wrong"
    assert acc.authenticate("ana", "another long passphrase", "10.0.0.9", "127.0.0.1").outcome == "ok"
    token, _ = acc.sessions.open("ana", "10.0.0.9")
    assert acc.sessions.resolve(token)
    acc.sessions.close(token)
    acc.sessions.open("ana", "10.0.0.9")
    acc.sessions.close_all("ana")
    acc.users.remove("ana", by="admin")

    cache = VerdictCache.from_settings(settings)
    try:
        cache.get_verdicts(["evil.example"]), cache.decide_many(["evil.example"])  # data.live_verdict
        done = vetting.apply(cache, _AuditStore(), ["phish.example", "fine.example"], "block", "ana", "seen in mail")
        vetting.undo(cache, _AuditStore(), done, "ana")
        vetting.undo(cache, _AuditStore(), done, "ana")  # a second undo: the entries are gone (WATCH, UNWATCH)
        cache.vetted_log(count=1000)  # data.vetted_history
        cache.list_vetted()  # training runs it starts with --include-vetted (models/dataset.py)
    finally:
        cache.close()


def plugin_commands() -> set[str]:
    """Commands the Go plugin builds with rueidis (``c.B().Hmget()`` -> ``hmget``), tests excluded."""
    found: set[str] = set()
    for path in PLUGIN_DIR.glob("*.go"):
        if path.name.endswith("_test.go"):
            continue
        found.update(m.lower() for m in re.findall(r"\bB\(\)\.([A-Z][A-Za-z]*)\(\)", path.read_text()))
    return found


def run_coredns(server: SimpleNamespace) -> None:
    """rueidis' exact sequence for the plugin's two cached reads, on one RESP3 connection.

    (Checked end to end as well: CoreDNS of deploy/cluster/coredns.sh through the Sentinels answered
    NXDOMAIN for a vetted block, and ACL LOG stayed empty on every node.)"""
    import redis

    client = redis.Redis(port=server.port, username="coredns", password=server.passwords["coredns"], protocol=3)
    conn = client.connection_pool.get_connection()
    try:
        def call(*args: str) -> Any:
            conn.send_command(*args)
            return conn.read_response()

        call("CLIENT", "TRACKING", "ON", "OPTIN")
        for read in (("GET", f"{PREFIX}:v1:verdict:evil.example"),
                     ("HMGET", f"{PREFIX}:v1:vetted", "evil.example", "*.example")):
            for args in (("MULTI",), ("CLIENT", "CACHING", "YES"), ("PTTL", read[1]), read, ("EXEC",)):
                reply = call(*args)
                assert not isinstance(reply, redis.ResponseError), f"coredns: {args[0]} refused: {reply}"
        call("PING")
        call("ROLE")
    finally:
        client.connection_pool.release(conn)
        client.close()


# --- the tests -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded(server: SimpleNamespace) -> dict[str, set[str]]:
    """Commands per component, each run as its own ACL user; ACL LOG must stay empty."""
    rec = Recorder(server)
    rec.phase("worker")
    run_worker(settings_as(server, "worker"), rec.helper)
    rec.phase("dashboard")
    run_dashboard(settings_as(server, "dashboard"))
    rec.phase("coredns")
    run_coredns(server)
    phases = rec.finish()
    denied = server.admin.acl_log()
    assert not denied, f"commands refused by the ACL (NOPERM): {denied}"
    return phases


def test_worker_port_methods_are_all_exercised() -> None:
    from dnsentinel.stream_processor.detections.service import AlertCache
    from dnsentinel.stream_processor.ports import VerdictStore

    assert _port_members(VerdictStore) | _port_members(AlertCache) == set(worker_calls())


@pytest.mark.parametrize("component", ["worker", "dashboard"])
def test_python_component_user_grants_exactly_what_it_uses(component: str, recorded: dict[str, set[str]],
                                                            server: SimpleNamespace) -> None:
    used = recorded[component]
    granted = server.acl[component].commands
    assert used - granted == set(), f"{component} uses commands its ACL user lacks"
    assert granted - used == set(), f"{component}'s ACL user grants commands its code never issues"


def test_coredns_user_grants_exactly_the_plugins_commands(recorded: dict[str, set[str]],
                                                          server: SimpleNamespace) -> None:
    builder = plugin_commands()
    assert builder == {"get", "hmget"}, "the plugin's rueidis builder calls changed: review the coredns ACL user"
    assert server.acl["coredns"].commands == builder | RUEIDIS_CACHING | RUEIDIS_SENTINEL
    assert recorded["coredns"] == builder | RUEIDIS_CACHING | RUEIDIS_SENTINEL


def test_service_users_and_key_scope(server: SimpleNamespace) -> None:
    acl = server.acl
    assert acl["replication"].commands == REPLICATION and not acl["replication"].keys
    assert acl["sentinel"].commands == SENTINEL and acl["sentinel"].channels == ["__sentinel__:hello"]
    assert acl["admin"].all_commands
    assert not acl["default"].enabled and not acl["default"].commands
    for user in ("coredns", "worker", "dashboard"):
        assert acl[user].keys == [f"{PREFIX}:*"], user
        assert not acl[user].all_commands, user
    assert acl["coredns"].channels == []  # invalidations arrive as RESP3 pushes, not pub/sub
    assert acl["worker"].channels == acl["dashboard"].channels == [f"{PREFIX}:*"]
    for user in acl.values():
        assert user.name == "default" or (user.passwords and all(p.startswith("#") for p in user.passwords)), \
            f"{user.name}: passwords must be stored as #<sha256>, never in clear"


def test_a_component_cannot_touch_keys_outside_the_prefix(server: SimpleNamespace) -> None:
    import redis

    worker = redis.Redis(port=server.port, username="worker", password=server.passwords["worker"])
    with pytest.raises(redis.exceptions.NoPermissionError):
        worker.set("other:key", "x")
    with pytest.raises(redis.exceptions.NoPermissionError):
        worker.flushall()
    worker.close()
