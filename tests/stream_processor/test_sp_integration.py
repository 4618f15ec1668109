"""The worker against the real Kafka, Redis and Elasticsearch (a table-driven model stands in for TF)."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from dnsentinel.verdict_cache import es_schema as f
from dnsentinel.verdict_cache.keys import parse_verdict, verdict_key, vetted_key
from dnsentinel.verdict_cache.names import routing_key

pytestmark = pytest.mark.integration

BAD = "xjwqkzptvbn.com"
GOOD = "www.example.org"
MEH = "maybe-phish.net"
POPULAR = "www.popular-site.org"  # on the table model's popularity ranking (conftest.PRIOR_DOMAINS)
SCORES = {"table-1": {BAD: 0.99, GOOD: 0.01, MEH: 0.5, "late.example.net": 0.95, POPULAR: 0.99},
          "table-2": {BAD: 0.99, GOOD: 0.01, MEH: 0.5, "late.example.net": 0.05}}


def ev(name: str, client: str = "10.1.2.3", **extra) -> tuple[bytes, bytes]:
    obj = {"v": 1, "ts": int(time.time() * 1000), "name": name, "qtype": "A", "client": client,
           "source": "loadgen", **extra}
    return routing_key(name), json.dumps(obj).encode()


MALFORMED = [
    (b"k", b"{not json"),                                                          # not_json
    (b"k", json.dumps({"v": 1, "ts": 1795392000000, "qtype": "A", "client": "", "source": "live"}).encode()),
    (b"k", json.dumps({"v": 1, "ts": "now", "name": "a.com", "qtype": "A", "client": "", "source": "live"}).encode()),
    (b"k", json.dumps({"v": 1, "ts": 1795392000000, "name": "a" * 5000, "qtype": "A", "client": "",
                       "source": "live"}).encode()),                                # too large
    (b"k", b"\xff\xfe\x00garbage"),                                               # not UTF-8
]


def _label(env, name):
    raw = env.redis.get(verdict_key(env.redis_prefix, name))
    return None if raw is None else parse_verdict(name, raw)


def _es_docs(env, family):
    env.es.indices.refresh(index=f"{env.es_prefix}-{family}*")
    hits = env.es.search(index=f"{env.es_prefix}-{family}*", size=1000)["hits"]["hits"]
    return {h["_id"]: h["_source"] for h in hits}


def test_events_become_verdicts_in_redis_kafka_and_es_and_bad_events_are_dead_lettered(worker_env):
    env = worker_env(SCORES)
    vetted = "vetted-ok.com"
    env.redis.hset(vetted_key(env.redis_prefix), vetted, json.dumps({"action": "allow", "by": "test", "at": 1}))
    not_public = ["_airplay._tcp.local", "nas.lan", "q1w2e3.pirate.sea"]  # SPEC §1.5: never scored
    popular = POPULAR  # the model would block it (0.99); the prior decides first
    good = [ev(BAD), ev(BAD, "10.9.9.9"), ev(GOOD), ev(GOOD), ev(GOOD), ev(MEH), ev(vetted),
            ev("4.3.2.1.in-addr.arpa"), ev("localhost"), *[ev(n) for n in not_public], ev(popular)]
    env.produce(good + MALFORMED)
    env.start()

    def verdicts_in_redis():
        got = {n: _label(env, n) for n in (BAD, GOOD, MEH, popular)}
        return got if all(got.values()) else None

    got = env.wait_for(verdicts_in_redis, what="verdicts in Redis")
    assert {n: v.label for n, v in got.items()} == {BAD: "malicious", GOOD: "benign", MEH: "uncertain",
                                                     popular: "benign"}
    assert {v.model for v in got.values()} == {"table-1"}
    assert _label(env, vetted) is None  # a vetted name is never scored
    assert _label(env, "localhost") is None and _label(env, "4.3.2.1.in-addr.arpa") is None
    assert all(_label(env, n) is None for n in not_public)  # unscored: no verdict, no vetting

    published = {k.decode(): json.loads(v) for k, v in env.consume_all(env.verdicts, 4)}
    assert {n: o["label"] for n, o in published.items()} == {BAD: "malicious", GOOD: "benign", MEH: "uncertain",
                                                             popular: "benign"}

    dead = [json.loads(v) for _, v in env.consume_all(env.dlq, len(MALFORMED))]
    reasons = sorted(d["reason"] for d in dead)
    assert reasons == sorted(["not_json", "missing_field:name", "bad_type:ts", "too_large", "not_json"]), reasons
    assert any(d.get("payload_b64") for d in dead)

    def es_counts():
        docs = _es_docs(env, "verdicts")
        if docs.get(GOOD, {}).get(f.QUERY_COUNT) == 3 and docs.get(BAD, {}).get(f.QUERY_COUNT) == 2:
            return docs
        return None

    docs = env.wait_for(es_counts, what="verdict docs with query counts in ES")
    assert docs[BAD][f.LABEL] == "malicious" and docs[BAD][f.MODEL] == "table-1" and docs[BAD][f.REASON] == "model"
    assert docs[popular][f.LABEL] == "benign" and docs[popular][f.REASON] == "prior"
    assert docs[GOOD][f.EVENT_START] <= docs[GOOD][f.EVENT_END]
    vetting = env.wait_for(lambda: _es_docs(env, "vetting").get(MEH), what="vetting doc")
    assert vetting[f.STATUS] == "pending" and vetting[f.SCORE] == pytest.approx(0.5)

    def activity_total():
        total = sum(d[f.COUNT] for d in _es_docs(env, "activity").values())
        return total if total == len(good) else None

    env.wait_for(activity_total, what="activity counts adding up to the valid events")
    activity = _es_docs(env, "activity").values()
    by_client = {(d[f.Q_NAME], d[f.CLIENT_ADDRESS]): d[f.COUNT] for d in activity}
    assert by_client[(BAD, "10.9.9.9")] == 1 and by_client[(GOOD, "10.1.2.3")] == 3
    labels = {d[f.Q_NAME]: d.get(f.LABEL) for d in activity}
    assert all(labels[n] == "unscored" for n in not_public) and labels[BAD] == "malicious"
    assert not set(not_public) & set(_es_docs(env, "verdicts")) and not set(not_public) & set(_es_docs(env, "vetting"))


def test_promotion_switches_model_live(worker_env):
    env = worker_env(SCORES)
    env.start()
    env.produce([ev(BAD)])
    env.wait_for(lambda: _label(env, BAD), what="first verdict")
    env.version_file.write_text("table-2")
    port = env.env["DNSENTINEL_WORKER__WEB_PORT"]

    def serving(version: str) -> bool:  # the worker reloads in place at its next poll, no restart
        return json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30))["model"] == version

    env.wait_for(lambda: serving("table-2"), what="the worker serving table-2")
    env.produce([ev("late.example.net")])
    v = env.wait_for(lambda: _label(env, "late.example.net"), what="verdict after promotion")
    assert v.model == "table-2" and v.label == "benign"
    assert env.proc is not None and env.proc.poll() is None
    port = env.env["DNSENTINEL_WORKER__WEB_PORT"]
    health = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30))
    assert health["ok"] and health["model"] == "table-2"
    req = urllib.request.Request(f"http://127.0.0.1:{port}/score", data=json.dumps({"domains": [BAD, GOOD]}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    scored = json.load(urllib.request.urlopen(req, timeout=30))
    assert [(r["name"], r["label"], r["model"]) for r in scored["results"]] == [
        (BAD, "malicious", "table-2"), (GOOD, "benign", "table-2")]
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
    assert 'dnsentinel_worker_model_info{version="table-2"} 1.0' in text


def test_kill_and_restart_loses_and_duplicates_nothing(worker_env):
    env = worker_env(SCORES)
    names = [f"n{i}.site{i % 40}.com" for i in range(400)]
    batch1 = [ev(n, f"10.0.0.{i % 7}") for i, n in enumerate(names)]
    env.produce(batch1)
    env.start()
    env.wait_for(lambda: _label(env, names[-1]), what="first pass")
    env.stop(kill=True)  # SIGKILL: no clean shutdown, buffered counts are lost in the process
    batch2 = [ev(n, "10.0.1.1") for n in names[:100]]
    env.produce(batch2)
    env.start()

    def drained():
        total = sum(d[f.COUNT] for d in _es_docs(env, "activity").values())
        return total if total >= len(batch1) + len(batch2) else None

    env.wait_for(drained, timeout=120, what="activity after restart")
    time.sleep(3)  # let any replayed duplicates land before the exact check
    total = sum(d[f.COUNT] for d in _es_docs(env, "activity").values())
    assert total == len(batch1) + len(batch2)
    counts = {k: d[f.QUERY_COUNT] for k, d in _es_docs(env, "verdicts").items()}
    assert counts[names[0]] == 2 and counts[names[-1]] == 1


def _metric(env, name):
    port = env.env["DNSENTINEL_WORKER__METRICS_PORT"]
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


def test_a_clean_stop_writes_the_last_counts_and_commits_them(worker_env):
    """SIGTERM: the app drains the worker (``WorkerApp.on_stop``) while Faust's producer still runs,
    so the counts it still holds (flushes are 30 s apart here) reach Elasticsearch before it exits,
    and their offsets are committed: the next worker does not consume those events again."""
    env = worker_env(SCORES)
    env.env["DNSENTINEL_WORKER__ES_FLUSH_INTERVAL_S"] = "30"
    names = [f"stop{i}.example.com" for i in range(60)]
    env.produce([ev(n) for n in names])
    env.start()
    env.wait_for(lambda: all(_label(env, n) for n in names), what="a verdict for every name")
    env.stop()
    assert sum(d[f.COUNT] for d in _es_docs(env, "activity").values()) == len(names)
    env.start()
    env.produce([ev(GOOD)])
    env.wait_for(lambda: _label(env, GOOD), what="a verdict from the restarted worker")
    assert _metric(env, "dnsentinel_worker_events_in_total") == 1


def test_templates_and_retention_on_the_real_cluster(services):
    import datetime as dt
    import uuid

    from elasticsearch import Elasticsearch

    from dnsentinel.settings import get_settings
    from dnsentinel.verdict_cache.es_schema import apply_retention, drop_prefix, ensure_templates, index_name

    s = get_settings().elasticsearch
    es = Elasticsearch(**s.client_kwargs())
    prefix = f"sptest-ret-{uuid.uuid4().hex[:8]}"
    try:
        ensure_templates(es, prefix=prefix)
        today = dt.datetime.now(dt.timezone.utc).date()
        old = index_name("activity", today - dt.timedelta(days=400), prefix=prefix)  # last year's log, replayed now
        recent = index_name("events", today + dt.timedelta(days=100), prefix=prefix)
        for name in (old, recent):
            es.indices.create(index=name)
        mapping = es.indices.get_mapping(index=old)[old]["mappings"]
        assert mapping["dynamic"] == "strict"
        assert mapping["properties"]["dnsentinel"]["properties"]["activity"]["properties"]["count"]["type"] == "long"
        assert mapping["properties"]["client"]["properties"]["ip"]["type"] == "ip"
        assert apply_retention(es, 30, prefix=prefix, today=today) == []  # retention counts from arrival: kept
        later = today + dt.timedelta(days=100)  # 100 days after it arrived, it goes; a day in range stays
        assert apply_retention(es, 30, prefix=prefix, today=later) == [old]
        assert not es.indices.exists(index=old) and es.indices.exists(index=recent)
        assert es.indices.exists(index=index_name("verdicts", prefix=prefix))  # undated indices are never touched
    finally:
        drop_prefix(es, prefix=prefix)


def _lags(env) -> dict[tuple[str, str], float]:
    """The worker's consumer-lag gauges of the queries topic: (partition, of) -> messages behind."""
    from prometheus_client.parser import text_string_to_metric_families

    port = env.env["DNSENTINEL_WORKER__METRICS_PORT"]
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {(s.labels["partition"], s.labels["of"]): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples
            if s.name == "dnsentinel_worker_consumer_lag" and s.labels["topic"] == env.queries}


def test_lag_per_partition_and_time_to_verdict_are_on_metrics_and_follow_the_traffic(worker_env):
    """/metrics has the consumer lag of every partition the worker consumed from (librdkafka
    statistics, every 5 s) and the first-event-to-verdict histogram; with flushes 20 s apart, events
    consumed but not yet committed show as committed lag until the flush after them commits them."""
    env = worker_env(SCORES)
    env.env["DNSENTINEL_WORKER__ES_FLUSH_INTERVAL_S"] = "20"
    first = [f"a.lag{i}.com" for i in range(60)]  # 60 registrable domains: spread over the partitions
    env.produce([ev(n) for n in first])
    env.start()
    env.wait_for(lambda: all(_label(env, n) for n in first), what="a verdict for every name")
    hist = "dnsentinel_worker_first_event_to_verdict_seconds_count"
    assert env.wait_for(lambda: _metric(env, hist) == len(first), what="one latency observation per new name")

    def committed() -> float | None:
        per = {p: v for (p, of), v in _lags(env).items() if of == "committed"}
        return sum(per.values()) if per else None  # a partition's committed lag exists once it has a commit

    env.wait_for(lambda: committed() == 0, timeout=60, what="committed lag 0 after the first flush")
    lags = _lags(env)
    assert {of for _, of in lags} == {"committed", "consumed"}
    assert 1 < len({p for p, _ in lags}) <= 6 and {p for p, _ in lags} <= {str(i) for i in range(6)}
    second = [f"b.lag{i}.com" for i in range(40)]  # new names on partitions that already have commits
    env.produce([ev(n) for n in second])
    env.wait_for(lambda: committed() == len(second), timeout=40, what="the new events as committed lag")
    env.wait_for(lambda: committed() == 0, timeout=60, what="committed lag back to 0 after the next flush")
    assert _metric(env, hist) == len(first) + len(second)
