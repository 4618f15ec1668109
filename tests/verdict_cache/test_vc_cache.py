"""VerdictCache against the real Redis (integration)."""

from __future__ import annotations

import threading
import time

import pytest

from dnsentinel.verdict_cache.cache import Verdict, VerdictCache, VettedRecord
from dnsentinel.verdict_cache.names import InvalidName

pytestmark = pytest.mark.integration


def test_put_and_get_verdicts_with_ttl_by_label(cache: VerdictCache, redis_client) -> None:
    now = int(time.time())
    written = cache.put_verdicts([
        Verdict("bad.example.com", "malicious", 0.99814, "charcnn-1", now),
        Verdict("good.example.com", "benign", 0.01, "charcnn-1", now),
        Verdict("meh.example.com", "uncertain", 0.5, "charcnn-1", now),
    ])
    assert written == 3
    got = cache.get_verdicts(["bad.example.com", "good.example.com", "meh.example.com", "absent.example.com"])
    assert set(got) == {"bad.example.com", "good.example.com", "meh.example.com"}
    assert got["bad.example.com"] == Verdict("bad.example.com", "malicious", 0.9981, "charcnn-1", now)
    assert redis_client.get(cache.verdict_key("bad.example.com")) == f"m|0.9981|charcnn-1|{now}".encode()
    ttl = {n: redis_client.ttl(cache.verdict_key(n)) for n in got}
    assert 7 * 86400 - 5 <= ttl["bad.example.com"] <= 7 * 86400
    assert 86400 - 5 <= ttl["good.example.com"] <= 86400
    assert 3600 - 5 <= ttl["meh.example.com"] <= 3600


def test_bad_value_reads_as_unknown_and_is_counted(cache: VerdictCache, redis_client) -> None:
    redis_client.set(cache.verdict_key("x.example.com"), "garbage")
    assert cache.get_verdicts(["x.example.com"]) == {}
    assert cache.decide_many(["x.example.com"]) == {"x.example.com": "unknown"}
    assert cache.counts["bad_value"] == 2


def test_decide_many_applies_precedence(cache: VerdictCache) -> None:
    now = int(time.time())
    cache.put_verdicts([Verdict("paypal-verify.weebly.com", "malicious", 0.99, "m1", now),
                        Verdict("www.example.com", "malicious", 0.99, "m1", now)])
    cache.set_vetted("weebly.com", "allow", "alice")
    cache.set_vetted("*.example.com", "allow", "alice")
    cache.set_vetted("evil.test", "block", "bob", note="C2")
    cache.set_vetted("trap.evil.test", "honeypot", "bob")
    decisions = cache.decide_many(["paypal-verify.weebly.com", "weebly.com", "www.example.com", "a.evil.test",
                                   "x.trap.evil.test", "nothing.org", "localhost"])
    assert decisions == {
        "paypal-verify.weebly.com": "malicious",
        "weebly.com": "allow",
        "www.example.com": "allow",
        "a.evil.test": "block",
        "x.trap.evil.test": "honeypot",
        "nothing.org": "unknown",
        "localhost": "unknown",
    }


def test_set_vetted_returns_previous_and_logs(cache: VerdictCache) -> None:
    assert cache.set_vetted("Example.COM.", "block", "alice", note="  phishing  ") is None
    before = cache.set_vetted("example.com", "allow", "bob")
    assert isinstance(before, VettedRecord)
    assert (before.action, before.by, before.note) == ("block", "alice", "phishing")
    assert cache.list_vetted() == {"example.com": cache.get_vetted(["example.com"])["example.com"]}
    assert cache.list_vetted("block") == {}
    removed = cache.remove_vetted("example.com", "carol")
    assert removed is not None and removed.action == "allow"
    assert cache.remove_vetted("example.com", "carol") is None
    log = cache.vetted_log()
    assert [(e["name"], e["before"], e["after"], e["by"]) for e in log] == [
        ("example.com", "allow", "", "carol"),
        ("example.com", "block", "allow", "bob"),
        ("example.com", "", "block", "alice"),
    ]
    assert log[2]["note"] == "phishing" and isinstance(log[0]["at"], int)


def test_vetted_change_waits_for_a_replica_and_stands_without_one(cache: VerdictCache) -> None:
    """``redis.vetted_replicas``: each vetted change WAITs on its own connection, bounded; with no
    replica (this single server) the change still stands, counted ``unreplicated``, no retry loop.
    (With a replica, tests/cluster/test_faults.py checks it is acknowledged and survives a failover.)"""
    waiting = VerdictCache(cache.client, prefix=cache.prefix, vetted_replicas=1, vetted_wait_ms=50)
    assert waiting.set_vetted("wait.example", "block", "alice") is None
    assert waiting.set_vetted_many(["bulk1.example", "bulk2.example"], "allow", "bob")["added"] == 2
    assert waiting.remove_vetted("wait.example", "carol") is not None
    assert waiting.counts["unreplicated"] == 3
    assert set(waiting.list_vetted()) == {"bulk1.example", "bulk2.example"}
    assert [e["after"] for e in waiting.vetted_log()] == ["", "allow", "block"]
    assert cache.set_vetted("nowait.example", "block", "alice") is None and not cache.counts["unreplicated"]


@pytest.mark.parametrize("args, error", [
    (("a b.com", "block", "alice"), InvalidName),
    (("example.com", "drop", "alice"), ValueError),
    (("example.com", "block", " "), ValueError),
    (("example.com", "block", "alice", "x" * 513), ValueError),
])
def test_set_vetted_rejects_bad_input(cache: VerdictCache, args, error) -> None:
    with pytest.raises(error):
        cache.set_vetted(*args)
    assert cache.list_vetted() == {}


def test_bulk_set_counts_keeps_conflicts_and_announces_once(cache: VerdictCache, redis_client) -> None:
    cache.set_vetted("a.com", "block", "alice")
    cache.set_vetted("b.com", "allow", "alice")
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(cache.channel)
    counts = cache.set_vetted_many(["a.com", "b.com", "c.com", "c.com"], "block", "importer", note="list",
                                   source="list.txt")
    assert counts == {"added": 1, "changed": 0, "unchanged": 1, "conflicts": 1}
    assert set(cache.list_vetted("block")) == {"a.com", "c.com"}
    assert cache.list_vetted("allow")["b.com"].by == "alice"  # the analyst's allow survives the list
    messages = []
    deadline = time.time() + 3
    while time.time() < deadline and not messages:
        msg = pubsub.get_message(timeout=0.5)
        if msg:
            messages.append(msg["data"])
    assert messages == [b"vetted *"]
    pubsub.close()
    log = cache.vetted_log(10)
    assert len(log) == 3  # 2 singles + 1 bulk summary
    assert {k: log[0][k] for k in ("name", "after", "by", "count", "source", "note")} == {
        "name": "(bulk)", "after": "block", "by": "importer", "count": "1", "source": "list.txt", "note": "list"}
    counts = cache.set_vetted_many(["b.com"], "block", "importer", replace=True)
    assert counts["changed"] == 1 and cache.list_vetted()["b.com"].action == "block"


def test_change_reaches_a_subscriber_within_one_second(cache: VerdictCache, redis_client) -> None:
    seen: list[tuple[str, str]] = []
    got = threading.Event()

    def on_change(kind: str, name: str) -> None:
        seen.append((kind, name))
        got.set()

    other = VerdictCache(redis_client, prefix=cache.prefix)
    cancel = other.subscribe_changes(on_change, poll_s=0.1)
    try:
        time.sleep(0.5)  # the subscription is in place
        start = time.monotonic()
        cache.set_vetted("*.example.org", "block", "alice")
        assert got.wait(1.0), "no change announcement within one second"
        assert time.monotonic() - start < 1.0
        assert seen == [("vetted", "*.example.org")]
    finally:
        cancel()


def test_iter_verdicts_scans_every_key(cache: VerdictCache) -> None:
    now = int(time.time())
    cache.put_verdicts(Verdict(f"n{i}.example.com", "malicious" if i % 2 else "benign", 0.5, "m", now)
                       for i in range(2500))
    assert sum(1 for _ in cache.iter_verdicts()) == 2500
    assert sum(1 for _ in cache.iter_verdicts("malicious")) == 1250


def test_from_settings_uses_the_configured_redis(vc_settings) -> None:
    c = VerdictCache.from_settings(vc_settings)
    try:
        assert c.client.ping()
        assert c.prefix == vc_settings.redis.key_prefix
        assert c.ttls["malicious"] == vc_settings.redis.ttl_malicious_s
    finally:
        c.close()
