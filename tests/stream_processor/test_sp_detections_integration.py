"""Behaviour detections end to end: a replayed 2018 log through the real worker, Kafka, Redis and ES.

The log holds a DNS tunnel (unique encoded labels under one domain, TXT queries), a DGA-infected
host (random names answered NXDOMAIN, scored uncertain), a host looking up its own address at
IP-echo services, and ordinary clients. Each detection must raise exactly its alert, stamped
with the log's own time, on ``dns.alerts`` and in the ``alerts`` index (read back through
``dnsentinel alerts``), and the DGA host's uncertain names must turn malicious.
"""

from __future__ import annotations

import json
import os
import random
import string
import subprocess
import sys

import pytest

from dnsentinel.verdict_cache.keys import parse_verdict, verdict_key
from dnsentinel.verdict_cache.names import routing_key

pytestmark = pytest.mark.integration

T0 = 1_525_000_000_000  # 2018-04-29: alerts must carry the log's time, not today's
TUNNEL = "exfil-test.net"
DGA_CLIENT, ECHO_CLIENT, TUNNEL_CLIENT = "10.66.0.5", "10.66.0.9", "10.66.0.7"


def _labels(n: int, length: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(length)) for _ in range(n)]


def _ev(ts: int, name: str, client: str, qtype: str = "A", rcode: str = "NOERROR") -> tuple[bytes, bytes]:
    obj = {"v": 1, "ts": ts, "name": name, "qtype": qtype, "client": client, "source": "replay", "rcode": rcode}
    return routing_key(name), json.dumps(obj).encode()


def _log() -> tuple[list[tuple[bytes, bytes]], list[str]]:
    dga = [f"{label}.com" for label in _labels(20, 13, 1)]
    events = [_ev(T0 + i * 500, f"{label}.{TUNNEL}", TUNNEL_CLIENT, "TXT") for i, label in enumerate(_labels(60, 40, 2))]
    events += [_ev(T0 + i * 700, name, DGA_CLIENT, rcode="NXDOMAIN") for i, name in enumerate(dga)]
    events += [_ev(T0 + i * 900, name, ECHO_CLIENT) for i, name in
               enumerate(["api.ipify.org", "icanhazip.com", "checkip.amazonaws.com", "ipinfo.io"])]
    for c in range(5):  # ordinary clients: a handful of ordinary names each, some twice
        events += [_ev(T0 + c * 100 + i * 1000, f"www.site{i % 7}.example.org", f"10.66.1.{c}") for i in range(20)]
    return events, dga


def test_a_replayed_log_raises_each_behaviour_alert_with_its_own_time(worker_env):
    events, dga = _log()
    env = worker_env({"table-1": {n: 0.6 for n in dga}})  # uncertain: between allow 0.2 and block 0.8
    env.produce(events)
    env.start()
    cli_env = {**os.environ, **env.env}

    def alerts():
        out = subprocess.run([sys.executable, "-m", "dnsentinel.cli.main", "alerts", "--format", "json"],
                             env=cli_env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        got = {a["kind"]: a for a in json.loads(out.stdout)}
        return got if {"tunnel", "dga_host", "ip_echo"} <= set(got) else None

    got = env.wait_for(alerts, timeout=120, what="three alerts in Elasticsearch")
    assert set(got) == {"tunnel", "dga_host", "ip_echo"}  # the ordinary clients raise nothing
    assert (got["tunnel"]["domain"], got["tunnel"]["client"]) == (TUNNEL, TUNNEL_CLIENT)
    assert got["dga_host"]["client"] == DGA_CLIENT and got["ip_echo"]["client"] == ECHO_CLIENT
    for alert in got.values():
        assert alert["first_seen"].startswith("2018-04-29") and alert["status"] == "open"
        assert {"kind", "severity", "client", "domain", "first_seen", "last_seen", "count", "evidence"} <= set(alert)
    assert set(got["dga_host"]["evidence"]) <= set(dga) and len(got["dga_host"]["evidence"]) == 20

    promoted = set(got["dga_host"]["promoted"])
    assert promoted == set(dga)
    for name in dga:
        v = parse_verdict(name, env.redis.get(verdict_key(env.redis_prefix, name)))
        assert v.label == "malicious"
    on_topic = {json.loads(v)["kind"] for _, v in env.consume_all(env.alerts, 3)}
    assert on_topic == {"tunnel", "dga_host", "ip_echo"}


def test_newly_observed_domains_are_recorded_once_with_their_first_client(worker_env):
    first = [_ev(T0, "www.nod-first.example.com", "10.66.2.1"), _ev(T0 + 5, "cdn.nod-first.example.com", "10.66.2.2")]
    env = worker_env({"table-1": {}})
    env.produce(first + [_ev(T0 + 10, "nas.lan", "10.66.2.3")])  # not a public name: never "newly observed"
    env.start()

    def recorded():
        env.es.indices.refresh(index=f"{env.es_prefix}-domains")
        hits = env.es.search(index=f"{env.es_prefix}-domains", size=10)["hits"]["hits"]
        return hits or None

    [hit] = env.wait_for(recorded, what="the newly observed domain in Elasticsearch")
    src = hit["_source"]
    assert src["dns.question.registered_domain"] == "example.com" and src["client.address"] == "10.66.2.1"
    assert src["@timestamp"] == T0 and src["dns.question.name"] == "www.nod-first.example.com"
    env.produce([_ev(T0 + 60_000, "mail.example.com", "10.66.2.9")])  # seen before: nothing new
    env.wait_for(lambda: env.redis.get(verdict_key(env.redis_prefix, "mail.example.com")), what="the next batch")
    env.es.indices.refresh(index=f"{env.es_prefix}-domains")
    assert env.es.count(index=f"{env.es_prefix}-domains")["count"] == 1
