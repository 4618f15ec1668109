"""The dashboard's store and vetting against the real Elasticsearch and Redis.

Each test writes its own small data set under a unique index prefix and Redis
key prefix, and removes it afterwards.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from dnsentinel.dashboard import sample_data, timerange, vetting
from dnsentinel.dashboard.store import ALLOWED_DECISIONS, BLOCKED_DECISIONS, Store

pytestmark = pytest.mark.integration
SHAPE = sample_data.Shape(docs=3000, names=300, clients=40, minutes=120)


@pytest.fixture(scope="module")
def es_data(stack):
    from elasticsearch import Elasticsearch

    es = Elasticsearch(**stack.elasticsearch.client_kwargs())
    prefix = f"dashtest-{uuid.uuid4().hex[:8]}"
    sample_data.load(es, prefix, SHAPE)
    yield es, prefix
    sample_data.drop(es, prefix)


@pytest.fixture
def cache(stack):
    import redis

    from dnsentinel.verdict_cache.cache import VerdictCache

    client = redis.Redis.from_url(stack.redis.url, **stack.redis.client_kwargs())
    prefix = f"dashtest-{uuid.uuid4().hex[:8]}"
    yield VerdictCache(client, prefix=prefix)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)


def test_overview_aggregations_add_up(es_data):
    es, prefix = es_data
    s = Store(es, prefix)
    rng = timerange.last(timedelta(hours=3))
    timeline = s.timeline(rng, "minute")
    totals = timeline.groupby("category")["queries"].sum()
    assert set(totals.index) == {"blocked", "allowed", "uncertain"} and totals["blocked"] > 0
    top = s.top_names(rng, BLOCKED_DECISIONS)
    assert 0 < len(top) <= 20 and set(top["decision"]) == {"malicious"}
    assert top["queries"].is_monotonic_decreasing
    benign = s.top_names(rng, ALLOWED_DECISIONS)
    assert set(benign["decision"]) <= {"benign", "uncertain"} and len(benign) == 20
    assert sum(s.top_names(rng, (d,))["queries"].sum() > 0 for d in ("unknown",)) == 0  # every doc has a label
    allowed = s.names_table(rng, ALLOWED_DECISIONS, search="CDN", page=0, page_size=10)
    assert allowed.total > 0 and all("cdn" in n for n in allowed.rows["name"])
    infected = s.top_clients(rng, BLOCKED_DECISIONS)
    assert infected["queries"].sum() == totals["blocked"]  # malicious names are queried by the infected few
    ov = s.overview(rng, "minute")
    assert ov["clients"]["queries"].sum() >= ov["infected"]["queries"].sum() > 0


def test_domain_and_client(es_data):
    es, prefix = es_data
    s = Store(es, prefix)
    rng = timerange.last(timedelta(hours=3))
    name = s.top_names(rng, BLOCKED_DECISIONS).iloc[0]["name"]
    act = s.domain_activity(name, False, rng, "minute")
    assert act["queries"] == act["blocked"] > 0 and act["series"]["queries"].sum() == act["queries"]
    client = act["clients"].iloc[0]["client"]
    names = s.client_names(client, rng).rows
    assert names.iloc[0]["decision"] == "malicious"
    assert s.verdict(name)["label"] == "malicious"
    assert s.verdict("never-seen.example") is None


def test_vetting_reaches_redis_and_audit_and_undoes(es_data, cache):
    es, prefix = es_data
    s = Store(es, prefix)
    queue = s.vetting_queue("query count", page_size=5)
    picked = queue.rows["name"].tolist()[:2]
    cache.set_vetted(picked[0], "allow", "carol")
    done = vetting.apply(cache, s, picked, "honeypot", "alice", "looks odd")
    assert cache.decide_many(picked) == {n: "honeypot" for n in picked}
    assert s.vetting_queue().total == queue.total - 2
    audit = s.audit_for(picked[0])
    assert audit.iloc[0][["who", "before", "after", "note"]].tolist() == ["alice", "allow", "honeypot", "looks odd"]
    assert vetting.undo(cache, s, done, "alice") == {}
    assert cache.decide_many(picked)[picked[0]] == "allow"
    assert cache.decide_many(picked)[picked[1]] != "honeypot"
    assert s.vetting_queue().total == queue.total - 1  # the one restored to "allow" stays decided
    assert [e["after"] for e in cache.vetted_log(10)][:2] == ["", "allow"]


def test_overview_in_one_request_matches_the_parts(es_data):
    es, prefix = es_data
    s = Store(es, prefix)
    rng = timerange.last(timedelta(hours=3))
    ov = s.overview(rng, "minute")
    assert ov["malicious"].equals(s.top_names(rng, BLOCKED_DECISIONS))
    assert ov["benign"].equals(s.top_names(rng, ALLOWED_DECISIONS))
    assert ov["infected"].equals(s.top_clients(rng, BLOCKED_DECISIONS))
    assert ov["timeline"].equals(s.timeline(rng, "minute"))


def test_search_text_is_literal_in_elasticsearch(es_data):
    es, prefix = es_data
    s = Store(es, prefix)
    rng = timerange.last(timedelta(hours=3))
    everything = s.names_table(rng, ALLOWED_DECISIONS, page_size=10).total
    assert everything > 0 and s.names_table(rng, ALLOWED_DECISIONS, search="cdn", page_size=10).total > 0
    for typed in ("*", "?", "c*n", "\\", "cdn\\", '"', "["):  # no name holds these: nothing, and no error
        assert s.names_table(rng, ALLOWED_DECISIONS, search=typed, page_size=10).total == 0, typed
