"""Redis of the cluster profile, as started by deploy/cluster/redis.sh: replication, Sentinels, TLS, ACL.

Every client goes over TLS with the profile's CA. Failures a person meets (a wrong password, a
missing CA) must come out of the product's own start-up check (dnsentinel.redis_client.check_redis)
as one clear line.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from typing import Any

import pytest

from dnsentinel.cli.cluster.redis import tls_client
from dnsentinel.errors import ServiceUnavailable
from dnsentinel.settings import REPO_ROOT

pytestmark = [pytest.mark.cluster, pytest.mark.integration]

REDIS_SH = REPO_ROOT / "deploy" / "cluster" / "redis.sh"


def _sentinel_ports(cluster: Any) -> list[int]:
    base = int(cluster.nodes["SENTINEL_PORT"])
    return [base + i for i in range(int(cluster.nodes["SENTINEL_NODES"]))]


def _data_ports(cluster: Any) -> list[int]:
    return [int(cluster.nodes["REDIS_PRIMARY_PORT"]), int(cluster.nodes["REDIS_REPLICA_PORT"])]


def _sentinel(cluster: Any, port: int, user: str | None = None) -> Any:
    """A client of one Sentinel: anonymous (discovery only) or as ``user``."""
    import redis

    kwargs: dict[str, Any] = {"ssl": True, "ssl_ca_certs": str(cluster.ca), "socket_timeout": 5, "decode_responses": True}
    if user:
        kwargs.update(username=user, password=cluster.password(user))
    return redis.Redis(host=cluster.nodes["CLUSTER_HOST"], port=port, **kwargs)


def _master(cluster: Any) -> tuple[str, int]:
    host, port = _sentinel(cluster, _sentinel_ports(cluster)[0]).sentinel_get_master_addr_by_name(
        cluster.nodes["REDIS_MASTER_NAME"])
    return host, int(port)


def _admin(cluster: Any, port: int) -> Any:
    return tls_client(cluster.nodes["CLUSTER_HOST"], port, "admin", cluster.password("admin"), cluster.ca,
                      decode_responses=True)


def _wait(check: Any, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout_s:.0f}s")
        time.sleep(0.3)


def test_replica_is_in_sync(cluster: Any) -> None:
    _, master_port = _master(cluster)
    replica_port = next(p for p in _data_ports(cluster) if p != master_port)
    master, replica = _admin(cluster, master_port), _admin(cluster, replica_port)
    info = master.info("replication")
    assert info["role"] == "master" and info["connected_slaves"] == 1
    assert info["slave0"]["state"] == "online"
    assert replica.info("replication")["master_link_status"] == "up"
    key, value = f"dnsentinel:test:repl:{uuid.uuid4().hex}", uuid.uuid4().hex
    master.set(key, value, ex=60)
    assert master.wait(1, 5000) == 1
    assert replica.get(key) == value


def test_three_sentinels_agree(cluster: Any) -> None:
    name = cluster.nodes["REDIS_MASTER_NAME"]
    answers = set()
    for port in _sentinel_ports(cluster):
        s = _sentinel(cluster, port)  # anonymous: discovery is open to clients
        answers.add(tuple(s.sentinel_get_master_addr_by_name(name)))
        state = s.sentinel_master(name)
        assert state["num-other-sentinels"] == 2, port
        assert state["num-slaves"] == 1, port
        assert state["quorum"] == 2, port
        assert state["is_master"] and not state["is_sdown"] and not state["is_odown"], port
    assert len(answers) == 1


def test_sentinel_discovery_works_as_the_clients_do_it(cluster: Any) -> None:
    """What rueidis (the plugin) sends a Sentinel, anonymously over TLS: tracking, discovery, SUBSCRIBE."""
    import redis

    name = cluster.nodes["REDIS_MASTER_NAME"]
    client = redis.Redis(host=cluster.nodes["CLUSTER_HOST"], port=_sentinel_ports(cluster)[1], ssl=True,
                         ssl_ca_certs=str(cluster.ca), socket_timeout=5, protocol=3, decode_responses=True)
    conn = client.connection_pool.get_connection()
    try:
        for args in (("CLIENT", "TRACKING", "ON", "OPTIN"), ("SENTINEL", "SENTINELS", name),
                     ("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name), ("SENTINEL", "REPLICAS", name)):
            conn.send_command(*args)
            reply = conn.read_response()
            assert not isinstance(reply, redis.ResponseError), f"{args}: {reply}"
    finally:
        client.connection_pool.release(conn)
    pubsub = client.pubsub()
    pubsub.subscribe("+switch-master")
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    pubsub.close()


def test_an_anonymous_sentinel_client_cannot_change_anything(cluster: Any) -> None:
    import redis

    s = _sentinel(cluster, _sentinel_ports(cluster)[0])
    with pytest.raises(redis.exceptions.NoPermissionError):
        s.sentinel_failover(cluster.nodes["REDIS_MASTER_NAME"])
    with pytest.raises(redis.exceptions.NoPermissionError):
        s.sentinel_set(cluster.nodes["REDIS_MASTER_NAME"], "quorum", 1)


def test_the_worker_works_through_the_sentinels_with_its_own_user(cluster: Any) -> None:
    from dnsentinel.redis_client import check_redis
    from dnsentinel.verdict_cache.cache import VerdictCache
    from dnsentinel.verdict_cache.keys import Verdict

    settings = cluster.settings_as("worker")
    check_redis(settings.redis)
    cache = VerdictCache.from_settings(settings)
    name = f"cluster-test-{uuid.uuid4().hex[:8]}.example"
    cache.put_verdicts([Verdict(name, "malicious", 0.99, "test", int(time.time()))])
    assert cache.get_verdicts([name])[name].label == "malicious"
    assert cache.decide_many([name])[name] != "unknown"
    cache.close()


def test_a_wrong_password_is_a_clear_error(cluster: Any) -> None:
    from dnsentinel.redis_client import check_redis

    settings = cluster.settings_as("worker")
    wrong = settings.redis.model_copy(update={"password": type(settings.redis.password)("not-the-password")})
    with pytest.raises(ServiceUnavailable) as err:
        check_redis(wrong)
    message = str(err.value)
    assert "worker" in message and "authentication failed" in message
    assert "\n" not in message


def test_a_client_without_the_ca_is_a_clear_error(cluster: Any) -> None:
    from dnsentinel.redis_client import check_redis

    settings = cluster.settings_as("worker")
    no_ca = settings.redis.model_copy(update={"ssl_ca_certs": None})
    with pytest.raises(ServiceUnavailable) as err:
        check_redis(no_ca)
    assert "certificate" in str(err.value).lower()
    assert "\n" not in str(err.value)


def test_nobody_gets_in_without_a_user(cluster: Any) -> None:
    import redis

    client = redis.Redis(host=cluster.nodes["CLUSTER_HOST"], port=_master(cluster)[1], ssl=True,
                         ssl_ca_certs=str(cluster.ca), socket_timeout=5)
    with pytest.raises(redis.exceptions.AuthenticationError):
        client.get("dnsentinel:v1:vetted")


def test_plain_tcp_is_refused(cluster: Any) -> None:
    import redis

    client = redis.Redis(host=cluster.nodes["CLUSTER_HOST"], port=_master(cluster)[1], socket_timeout=3,
                         username="admin", password=cluster.password("admin"))
    with pytest.raises(redis.ConnectionError):
        client.ping()


def test_the_coredns_user_cannot_write_a_verdict(cluster: Any) -> None:
    import redis

    host, port = _master(cluster)
    coredns = tls_client(host, port, "coredns", cluster.password("coredns"), cluster.ca)
    coredns.get("dnsentinel:v1:verdict:example.com")  # reading is its job: no error
    with pytest.raises(redis.exceptions.NoPermissionError):
        coredns.set("dnsentinel:v1:verdict:example.com", "b|0.0100|x|1")


def test_failover_follows_and_status_tells_the_truth(cluster: Any) -> None:
    """A failover moves the master; Sentinels, `redis.sh status` and the worker's client follow.

    Afterwards no data node logged a refused command of the replication or Sentinel users
    (their ACL sets are the minimal ones of the Redis documentation).
    """
    name = cluster.nodes["REDIS_MASTER_NAME"]
    _, before = _master(cluster)
    admin_sentinel = _sentinel(cluster, _sentinel_ports(cluster)[0], "admin")
    assert admin_sentinel.sentinel_failover(name)
    _wait(lambda: _master(cluster)[1] != before, "the Sentinels naming a new master")
    _, after = _master(cluster)
    _wait(lambda: subprocess.run([str(REDIS_SH), "status"], capture_output=True).returncode == 0,
          "redis.sh status healthy after the failover", 90)
    lines = subprocess.run([str(REDIS_SH), "status"], capture_output=True, text=True).stdout.splitlines()
    roles = {ln.split()[0]: ln for ln in lines}
    new_master = "redis-primary" if after == int(cluster.nodes["REDIS_PRIMARY_PORT"]) else "redis-replica"
    old_master = "redis-replica" if new_master == "redis-primary" else "redis-primary"
    assert "healthy master" in roles[new_master]
    assert f"replica of {cluster.nodes['CLUSTER_HOST']}:{after}" in roles[old_master]

    test_the_worker_works_through_the_sentinels_with_its_own_user(cluster)
    for port in _data_ports(cluster):
        refused = [e for e in _admin(cluster, port).acl_log() if e.get("username") in ("replication", "sentinel")]
        assert refused == [], f"port {port}: {refused}"
