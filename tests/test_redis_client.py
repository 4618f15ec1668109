"""Unit tests of the Redis client factory and its start-up errors (no Redis runs here).

The same behaviour against real servers (a Sentinel failover, wrong passwords, TLS) is in
tests/verdict_cache/test_vc_sentinel.py.
"""

from __future__ import annotations

import os

import pytest
import redis

from dnsentinel.errors import ConfigError, ServiceUnavailable
from dnsentinel.redis_client import async_client, check_redis, explain, sync_client
from dnsentinel.settings import RedisSettings, Settings, get_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("DNSENTINEL_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.parametrize("value", ["10.0.0.1:26379,10.0.0.2:26379", '["10.0.0.1:26379", "10.0.0.2:26379"]',
                                   " 10.0.0.1:26379 , 10.0.0.2:26379 "])
def test_sentinels_from_the_environment(monkeypatch, value):
    monkeypatch.setenv("DNSENTINEL_REDIS__SENTINELS", value)
    monkeypatch.setenv("DNSENTINEL_REDIS__SENTINEL_MASTER", "cache")
    r = get_settings().redis
    assert r.sentinel_addresses() == [("10.0.0.1", 26379), ("10.0.0.2", 26379)] and r.sentinel_master == "cache"


def test_sentinels_from_toml(monkeypatch, tmp_path):
    (tmp_path / "dnsentinel.toml").write_text('[redis]\nsentinels = ["s1:26379", "[2001:db8::1]:26380"]\n')
    assert get_settings().redis.sentinel_addresses() == [("s1", 26379), ("2001:db8::1", 26380)]


@pytest.mark.parametrize("bad", ["s1", "s1:", ":26379", "s1:0", "s1:99999", "s1:abc"])
def test_a_bad_sentinel_address_is_one_line_naming_the_setting(monkeypatch, bad):
    monkeypatch.setenv("DNSENTINEL_REDIS__SENTINELS", f"127.0.0.1:26379,{bad}")
    with pytest.raises(ConfigError) as err:
        get_settings()
    msg = str(err.value)
    assert "DNSENTINEL_REDIS__SENTINELS" in msg and "redis.sentinels" in msg and repr(bad) in msg and "\n" not in msg


def test_the_factory_picks_sentinel_or_url():
    from redis.asyncio.sentinel import SentinelConnectionPool as AsyncSentinelPool
    from redis.sentinel import SentinelConnectionPool

    plain = RedisSettings(url="redis://10.0.0.9:6390/4", username="worker", password="pw")
    c = sync_client(plain, decode_responses=True)
    kw = c.connection_pool.connection_kwargs
    assert not isinstance(c.connection_pool, SentinelConnectionPool)
    assert (kw["host"], kw["port"], kw["db"], kw["username"], kw["password"]) == ("10.0.0.9", 6390, 4, "worker", "pw")
    assert kw["decode_responses"] and kw["socket_connect_timeout"] == 2.0

    sentinel = RedisSettings(url="redis://ignored:1/3", sentinels=["10.0.0.1:26379", "10.0.0.2:26379"],
                             sentinel_master="cache", username="worker", password="pw",
                             sentinel_username="sent", sentinel_password="spw")
    c = sync_client(sentinel)
    pool = c.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "cache"
    assert (pool.connection_kwargs["db"], pool.connection_kwargs["username"]) == (3, "worker")
    nodes = pool.sentinel_manager.sentinels
    assert [n.connection_pool.connection_kwargs["port"] for n in nodes] == [26379, 26379]
    assert {(n.connection_pool.connection_kwargs["username"], n.connection_pool.connection_kwargs["password"])
            for n in nodes} == {("sent", "spw")}
    assert isinstance(async_client(sentinel).connection_pool, AsyncSentinelPool)


def test_tls_reaches_data_and_sentinel_connections(tmp_path):
    from redis.connection import SSLConnection
    from redis.sentinel import SentinelManagedSSLConnection

    ca = tmp_path / "ca.crt"
    r = RedisSettings(url="redis://10.0.0.9:6390/0", ssl=True, ssl_ca_certs=ca)
    pool = sync_client(r).connection_pool
    assert pool.connection_class is SSLConnection and pool.connection_kwargs["ssl_ca_certs"] == str(ca)
    assert sync_client(RedisSettings(url="rediss://h:1/0")).connection_pool.connection_class is SSLConnection

    s = RedisSettings(url="rediss://x:1/0", sentinels=["10.0.0.1:26379"], ssl_ca_certs=ca,
                      ssl_certfile=tmp_path / "c.crt", ssl_keyfile=tmp_path / "c.key")
    pool = sync_client(s).connection_pool
    assert pool.connection_class is SentinelManagedSSLConnection
    assert pool.connection_kwargs["ssl_certfile"] == str(tmp_path / "c.crt")
    node = pool.sentinel_manager.sentinels[0].connection_pool
    assert node.connection_class is SSLConnection and node.connection_kwargs["ssl_ca_certs"] == str(ca)


@pytest.mark.parametrize(("exc", "needle"), [
    (redis.AuthenticationError("invalid username-password pair or user is disabled."),
     "authentication failed for user worker (WRONGPASS"),
    (redis.AuthenticationError("Authentication required."), "the server wants a password"),
    (redis.exceptions.NoPermissionError("this user has no permissions to run the 'mget' command"),
     "user worker lacks a permission"),
    (redis.ConnectionError("Error 1 connecting to h:1. [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
                           "unable to get local issuer certificate (_ssl.c:1006)."), "TLS certificate not trusted (set redis.ssl_ca_certs"),
    (redis.ConnectionError("Error 1 connecting to h:1. [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
                           "IP address mismatch, certificate is not valid for '10.0.0.9'."), "does not name this address"),
    (redis.ConnectionError("Error 1 connecting to h:1. [SSL: WRONG_VERSION_NUMBER] wrong version number"),
     "the server does not speak TLS here"),
    (redis.ConnectionError("Error 111 connecting to h:1. Connection refused."), "unreachable (connection refused"),
    (redis.TimeoutError("Timeout connecting to server"), "unreachable (no answer within 2 s)"),
    (redis.ConnectionError("Connection closed by server."), "does it want TLS? use rediss://"),
])
def test_errors_become_a_cause_and_the_setting_to_fix(exc, needle):
    assert needle in explain(exc, "worker", RedisSettings())


class _Failing:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def ping(self) -> bool:
        raise self.exc


def test_check_names_the_service_and_address():
    r = RedisSettings(url="redis://:pw@10.0.0.9:6390/0", username="worker")
    with pytest.raises(ServiceUnavailable) as err:
        check_redis(r, _Failing(redis.AuthenticationError("invalid username-password pair or user is disabled.")))
    assert str(err.value) == ("redis at 10.0.0.9:6390: authentication failed for user worker "
                              "(WRONGPASS: wrong password, unknown or disabled user)")
    assert "pw" not in str(err.value).replace("password", "")


def test_unreachable_sentinels_are_named_with_their_cause():
    r = Settings(redis={"sentinels": ["127.0.0.1:1", "127.0.0.1:2"], "connect_timeout_s": 0.5}).redis
    with pytest.raises(ServiceUnavailable) as err:
        check_redis(r)
    assert str(err.value) == ("redis sentinels at 127.0.0.1:1, 127.0.0.1:2: unreachable "
                              "(connection refused: is it running on this port?)")


@pytest.mark.parametrize("argv", [["worker"], ["dashboard"], ["lists", "show"], ["users", "list"]])
def test_start_up_of_each_command_is_one_line_naming_redis(monkeypatch, argv):
    from typer.testing import CliRunner

    from dnsentinel.cli.main import app

    monkeypatch.setenv("DNSENTINEL_REDIS__URL", "redis://127.0.0.1:1/0")  # nothing listens on port 1
    res = CliRunner().invoke(app, argv)
    assert isinstance(res.exception, ServiceUnavailable), res.output
    assert str(res.exception) == "redis at 127.0.0.1:1: unreachable (connection refused: is it running on this port?)"


def test_replay_names_kafka_first(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from dnsentinel.cli.main import app

    monkeypatch.setenv("DNSENTINEL_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
    log = tmp_path / "q.log"
    log.write_text("")
    res = CliRunner().invoke(app, ["replay", str(log), "--no-progress"])
    assert isinstance(res.exception, ServiceUnavailable), res.output
    assert str(res.exception).startswith("kafka at 127.0.0.1:1: unreachable (")
