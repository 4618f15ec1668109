"""Users, logins, sessions, the audit index and the ``users``/``audit`` commands on the real stack.

Each test works under its own Redis key prefix and Elasticsearch index prefix and removes
them afterwards, so the shared local stack's data is never touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from dnsentinel.dashboard import actions, audit, auth
from dnsentinel.dashboard.access import Actor
from dnsentinel.dashboard.store import Store
from dnsentinel.settings import Settings
from dnsentinel.verdict_cache.es_schema import CLIENT_ADDRESS, EVENT_ACTION, MAPPINGS, USER_ROLES, index_name, properties

pytestmark = pytest.mark.integration
PASSWORD = "correct horse battery"


@pytest.fixture
def prefixes(stack):
    import redis
    from elasticsearch import Elasticsearch

    prefix = f"dashacc-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(stack.redis.url, decode_responses=True, **stack.redis.client_kwargs())
    es = Elasticsearch(**stack.elasticsearch.client_kwargs())
    yield prefix, client, es
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    es.options(ignore_status=404).indices.delete(index=f"{prefix}-*", expand_wildcards="all")


def _accounts(stack, prefix, client, tmp_path, **dashboard) -> auth.Accounts:
    settings = Settings(redis={"url": stack.redis.url, "key_prefix": prefix}, stack={"state_dir": tmp_path},
                        dashboard=dashboard)
    acc = auth.Accounts.from_settings(settings, client)
    acc.users.rounds = 4
    return acc


def test_users_logins_and_sessions_on_redis(stack, prefixes, tmp_path):
    prefix, client, _ = prefixes
    acc = _accounts(stack, prefix, client, tmp_path, login_max_failures=2, login_lockout_s=2)
    assert acc.demo_available("127.0.0.1")
    acc.users.add("alice", PASSWORD, "analyst", "t")
    assert not acc.demo_available("127.0.0.1") and client.hexists(f"{prefix}:v1:dashboard:users", "alice")
    assert acc.authenticate("alice", PASSWORD, "192.0.2.1", "127.0.0.1").outcome == "ok"
    assert [acc.authenticate("alice", "nope", "192.0.2.1", "::1").outcome for _ in range(2)] == ["wrong", "locked"]
    assert 0 < client.ttl(f"{prefix}:v1:dashboard:lock:user:alice") <= 2
    assert acc.authenticate("alice", PASSWORD, "192.0.2.1", "::1").outcome == "locked"
    time.sleep(2.2)  # the lockout is Redis's TTL
    assert acc.authenticate("alice", PASSWORD, "192.0.2.1", "::1").outcome == "ok"
    token, expires = acc.sessions.open("alice", "192.0.2.1")
    other, _ = acc.sessions.open("alice", "192.0.2.2")
    assert acc.sessions.resolve(token) == ("alice", expires)
    assert 0 < client.ttl(f"{prefix}:v1:dashboard:session:{token.split('.')[0]}") <= 8 * 3600
    assert acc.sessions.close(token) == "alice" and acc.sessions.resolve(token) is None
    assert acc.sessions.close_all("alice") == 1 and acc.sessions.resolve(other) is None


def test_the_audit_index_gains_new_fields_and_answers_filters(stack, prefixes):
    prefix, _, es = prefixes
    old = {k: v for k, v in MAPPINGS["audit"].items() if k not in (EVENT_ACTION, CLIENT_ADDRESS, USER_ROLES)}  # before issue 17
    es.indices.create(index=index_name("audit", prefix=prefix), mappings={"dynamic": "strict", "properties": properties(old)})
    store = Store(es, prefix)
    admin = Actor("root", "admin", "192.0.2.1")
    with pytest.raises(RuntimeError, match="refused entries"):  # an index made before this version
        store.write_audit([audit.by(admin, "promote", "model:current", after="m1")])
    audit.ensure_index(es, prefix)
    store.write_audit([audit.by(admin, "promote", "model:current", before="m0", after="m1"),
                       audit.by(Actor("ann", "analyst", "192.0.2.2"), "vet", "a*b.example", after="block"),
                       audit.by(Actor("ann", "analyst", "192.0.2.2"), "vet", "axb.example", after="allow")])
    assert [r["name"] for r in audit.search(es, prefix, who="ann")] in (
        ["a*b.example", "axb.example"], ["axb.example", "a*b.example"])
    assert [r["name"] for r in audit.search(es, prefix, target="a*b")] == ["a*b.example"]  # '*' is literal
    assert [r["after"] for r in audit.search(es, prefix, actions=("promote",))] == ["m1"]
    assert audit.search(es, prefix, since_ms=int(time.time() * 1000) + 60_000) == []
    row = audit.search(es, prefix, actions=("promote",))[0]
    assert (row["who"], row["role"], row["address"], row["before"]) == ("root", "admin", "192.0.2.1", "m0")


def test_login_failures_and_user_changes_are_audited_in_es(stack, prefixes, tmp_path):
    prefix, client, es = prefixes
    acc, store = _accounts(stack, prefix, client, tmp_path), Store(es, prefix)
    audit.ensure_index(es, prefix)
    admin = Actor("root", "admin", "192.0.2.1")
    actions.add_user(admin, store, acc, "bob", PASSWORD, "viewer")
    actions.login(store, acc, "bob", "wrong password", "192.0.2.9", "127.0.0.1")
    _, token = actions.login(store, acc, "bob", PASSWORD, "192.0.2.9", "127.0.0.1")
    actions.set_role(admin, store, acc, "bob", "analyst")
    actions.remove_user(admin, store, acc, "bob")
    assert acc.sessions.resolve(token) is None
    got = [(r["action"], r["who"], r["address"], r["before"], r["after"]) for r in reversed(audit.search(es, prefix))]
    assert got == [("user_add", "root", "192.0.2.1", "none", "viewer"), ("login_failed", "bob", "192.0.2.9", "none", "none"),
                   ("login", "bob", "192.0.2.9", "none", "session"), ("user_role", "root", "192.0.2.1", "viewer", "analyst"),
                   ("user_remove", "root", "192.0.2.1", "analyst", "none")]


def _cli(prefix: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "DNSENTINEL_REDIS__KEY_PREFIX": prefix, "DNSENTINEL_ELASTICSEARCH__INDEX_PREFIX": prefix,
           "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "dnsentinel.cli.main", *args], input=stdin, env=env,
                          capture_output=True, text=True, timeout=120)


def test_users_and_audit_commands(stack, prefixes):
    prefix, client, _ = prefixes
    refused = _cli(prefix, "dashboard", "--address", "0.0.0.0", "--port", "1")
    assert refused.returncode == 1 and refused.stderr.strip().count("\n") == 0
    assert "dnsentinel users add NAME --role admin" in refused.stderr
    assert _cli(prefix, "users", "add", "alice", "--role", "analyst", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    weak = _cli(prefix, "users", "add", "bob", "--role", "viewer", "--password-stdin", stdin="short\n")
    assert weak.returncode == 1 and "at least 12" in weak.stderr
    assert _cli(prefix, "users", "role", "alice", "admin").stdout.strip() == "alice: analyst -> admin"
    assert _cli(prefix, "users", "passwd", "alice", "--password-stdin", stdin="another long password\n").returncode == 0
    listed = json.loads(_cli(prefix, "users", "list", "--format", "json").stdout)
    assert [(u["name"], u["role"], u["source"]) for u in listed] == [("alice", "admin", "redis")]
    assert "$2b$" not in json.dumps(listed) and PASSWORD not in json.dumps(listed)
    assert "$2b$" in client.hget(f"{prefix}:v1:dashboard:users", "alice")
    assert _cli(prefix, "users", "remove", "alice").returncode == 0
    assert _cli(prefix, "users", "remove", "alice").returncode == 1
    entries = json.loads(_cli(prefix, "audit", "--since", "1h", "--format", "json").stdout)
    assert [(e["action"], e["name"]) for e in reversed(entries)] == [
        ("user_add", "user:alice"), ("user_role", "user:alice"), ("user_passwd", "user:alice"), ("user_remove", "user:alice")]
    assert all(e["who"].startswith("cli:") and e["role"] == "admin" for e in entries)
    table = _cli(prefix, "audit", "--since", "1h", "--action", "user_role").stdout
    assert "user_role" in table and "user_add" not in table
    assert _cli(prefix, "audit", "--action", "hack").returncode == 2
