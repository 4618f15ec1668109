"""Unit tests of the worker's pipeline (triage → limits → decide → activity) and service, with fakes."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dnsentinel.settings import Settings, WorkerSettings
from dnsentinel.verdict_cache import es_schema
from dnsentinel.verdict_cache.keys import Verdict
from dnsentinel.stream_processor.activity import Aggregator
from dnsentinel.stream_processor.app import WorkerService
from dnsentinel.stream_processor.es_sink import Chunk, EsSink, aggregate_docs, apply_counts, raw_event_actions
from dnsentinel.stream_processor.limits import FloodLimiter
from dnsentinel.stream_processor.metrics import Metrics
from dnsentinel.models.serving import Thresholds
from dnsentinel.stream_processor.scorer import ModelHolder
from dnsentinel.stream_processor.triage import NameNormalizer, triage
from dnsentinel.stream_processor.worker import BatchProcessor, Topics

from .fakes import FakeCache, FakeModel, FakePublisher, event, records

TOPICS = Topics("q", "verdicts", "dlq")


def holding(model: FakeModel) -> ModelHolder:
    holder = ModelHolder(lambda _v: model, None)
    holder.use(model)
    return holder


def make_proc(model: FakeModel, cache: FakeCache | None = None, **knobs) -> tuple[BatchProcessor, FakePublisher, list]:
    """A batch processor over fakes; ``knobs`` are :class:`WorkerSettings` fields."""
    acked: list = []
    pub = FakePublisher()
    proc = BatchProcessor(cache=cache or FakeCache(), scorer=holding(model), publish=pub, sink=None,
                          metrics=Metrics(), topics=TOPICS, es_prefix="t", settings=WorkerSettings(**knobs),
                          ack=acked.extend)
    return proc, pub, acked


def sample(metrics: Metrics, name: str, **labels) -> float:
    return metrics.registry.get_sample_value(name, labels or None) or 0.0


def test_labels_use_both_thresholds():
    t = Thresholds(block=0.8, allow=0.2)
    assert [t.label(s) for s in (0.9, 0.8, 0.2, 0.5)] == ["malicious", "malicious", "benign", "uncertain"]
    assert t.labels([0.9, 0.8, 0.2, 0.5]).tolist() == ["malicious", "malicious", "benign", "uncertain"]


def test_triage_splits_invalid_unscorable_and_dedups():
    vals = [event("a.example.com"), b"{not json", event("A.Example.COM."), event("1.0.0.10.in-addr.arpa"),
            event("localhost"), event("bad name!.com"), json.dumps({"v": 1}).encode(), b"\xff\xfe"]
    t = triage(records(vals), NameNormalizer())
    assert [r for _, r, _ in t.invalid] == ["not_json", "missing_field:ts", "not_json"]
    assert list(t.domains) == ["a.example.com"]
    assert t.unscorable == {"reverse": 1, "bare": 1, "bad_char": 1}
    assert len(t.parsed) == 5


def test_triage_leaves_names_that_are_not_public_dns_names_unscored():
    names = ["_airplay._tcp.local", "nas.lan", "router.home.arpa", "q1w2e3.pirate.sea", "www.example.com",
             "_dmarc.example.com", "10.0.0.1"]
    t = triage(records([event(n) for n in names]), NameNormalizer())
    assert list(t.domains) == ["www.example.com"]
    assert t.unscorable == {"service": 2, "special_use": 2, "no_public_suffix": 1, "ip": 1}
    # still events: the behaviour detections and the activity documents see them
    assert len(t.parsed) == len(names)
    agg = Aggregator()
    agg.add_many(t.parsed, {})
    activity, verdicts, vetting, _ = agg.drain()
    labels = {name: act.fields.get(es_schema.LABEL) for (name, _c, _m), act in activity.items()}
    assert labels["nas.lan"] == "unscored" and labels["www.example.com"] is None
    assert "nas.lan" not in verdicts and not vetting


def test_batch_scores_each_unseen_name_once_and_labels_by_threshold():
    model = FakeModel({"evil.com": 0.99, "good.com": 0.01, "meh.com": 0.5})
    proc, pub, acked = make_proc(model)
    vals = [event(n) for n in ["evil.com", "good.com", "meh.com", "evil.com", "good.com"]] + [b"[]"]
    verdicts = asyncio.run(proc.process(records(vals), token={0: 5}))
    assert model.calls == [["evil.com", "good.com", "meh.com"]]  # one predict call, deduplicated
    assert {v.name: v.label for v in verdicts} == {"evil.com": "malicious", "good.com": "benign", "meh.com": "uncertain"}
    assert all(v.model == "fake-1" for v in verdicts)
    assert proc.cache.verdicts["evil.com"].label == "malicious"
    out = pub.on("verdicts")
    assert {(o["name"], o["label"], o["model"]) for o in out} == {
        ("evil.com", "malicious", "fake-1"), ("good.com", "benign", "fake-1"), ("meh.com", "uncertain", "fake-1")}
    dlq = pub.on("dlq")
    assert [d["reason"] for d in dlq] == ["not_object"] and dlq[0]["offset"] == 5
    m = proc.metrics
    assert sample(m, "dnsentinel_worker_invalid_events_total", reason="not_object") == 1
    assert sample(m, "dnsentinel_worker_verdicts_total", label="uncertain") == 1
    assert sample(m, "dnsentinel_worker_events_in_total") == 6
    # nothing is acked before the flush hands the batch over
    assert acked == []
    proc.flush()
    assert acked == [{0: 5}]


def test_known_and_vetted_names_are_never_rescored():
    model = FakeModel({"new.com": 0.99})
    cache = FakeCache(vetted={"vetted.com": "allow", "blocked.org": "block"})
    proc, _, _ = make_proc(model, cache)
    asyncio.run(proc.process(records([event("vetted.com"), event("blocked.org"), event("new.com")])))
    assert model.calls == [["new.com"]]
    asyncio.run(proc.process(records([event("new.com"), event("vetted.com")], start=3)))
    assert model.calls == [["new.com"]]  # second time: LRU hits, not even a Redis lookup
    assert cache.lookups == [["vetted.com", "blocked.org", "new.com"]]
    assert sample(proc.metrics, "dnsentinel_worker_cache_hits_total", where="lru") == 2
    proc.on_change("vetted new.com")  # a vetted change clears the LRU: next sighting asks Redis again
    asyncio.run(proc.process(records([event("new.com")], start=5)))
    assert cache.lookups[-1] == ["new.com"] and model.calls == [["new.com"]]


def test_flood_limit_caps_new_names_per_registrable_domain():
    model = FakeModel()
    proc, _, _ = make_proc(model, max_new_names_per_domain_per_min=5)
    names = [f"r{i}.victim.com" for i in range(20)] + ["other.net"]
    asyncio.run(proc.process(records([event(n) for n in names])))
    assert len(model.calls[0]) == 6 and "other.net" in model.calls[0]
    assert sample(proc.metrics, "dnsentinel_worker_flood_limited_names_total") == 15


def test_flood_limiter_resets_each_minute():
    now = [0.0]
    f = FloodLimiter(2, clock=lambda: now[0])
    assert [f.admit("x.com") for _ in range(3)] == [True, True, False]
    now[0] = 61.0
    assert f.admit("x.com")


def test_large_batches_are_split_per_model_call():
    model = FakeModel()
    proc, _, _ = make_proc(model, batch_max=4)
    asyncio.run(proc.process(records([event(f"n{i}.com") for i in range(10)])))
    assert [len(c) for c in model.calls] == [4, 4, 2]


def test_activity_aggregates_per_name_client_minute_with_offsets():
    agg = Aggregator(60)
    ts = 1_795_000_020_000 - 1_795_000_020_000 % 60_000
    vals = [event("x.com", "1.1.1.1", ts), event("x.com", "1.1.1.1", ts + 5000, action="nxdomain"),
            event("x.com", "2.2.2.2", ts), event("x.com", "1.1.1.1", ts + 60_000)]
    agg.add_many(triage(records(vals, partition=3, start=10), NameNormalizer()).parsed, {"x.com": "malicious"})
    activity, verdicts, vetting, n = agg.drain()
    assert n == 4 and len(activity) == 3
    c = activity[("x.com", "1.1.1.1", ts)]
    assert c.offsets == {3: [10, 11]} and c.blocked == {3: [11]} and c.fields[es_schema.LABEL] == "malicious"
    assert verdicts["x.com"].events == 4 and not vetting
    docs = aggregate_docs("t", activity, verdicts, vetting)
    ids = sorted(d[2] for d in docs)
    assert f"x.com|1.1.1.1|{ts}" in ids and "x.com" in ids
    assert {d[1] for d in docs} == {es_schema.index_name("activity", ts, prefix="t"), "t-verdicts"}
    doc, version = apply_counts("activity", None, -1, c)
    assert (doc[es_schema.COUNT], doc[es_schema.BLOCKED], doc[es_schema.QTYPES], version) == (2, 1, ["A"], 11)
    assert (doc[es_schema.TIMESTAMP], doc[es_schema.CLIENT_ADDRESS], doc[es_schema.CLIENT_IP]) == (ts, "1.1.1.1", "1.1.1.1")


def test_replayed_offsets_are_not_counted_twice():
    agg = Aggregator(60)
    vals = [event("x.com", ts=1_795_000_000_000)] * 4
    agg.add_many(triage(records(vals, partition=1, start=100), NameNormalizer()).parsed, {"x.com": "benign"})
    c = agg.drain()[1]["x.com"]
    doc, version = apply_counts("verdicts", None, -1, c)
    assert doc[es_schema.QUERY_COUNT] == 4 and version == 103 and doc[es_schema.LABEL] == "benign"
    assert doc[es_schema.EVENT_START] == doc[es_schema.EVENT_END] == 1_795_000_000_000
    assert apply_counts("verdicts", doc, version, c) is None  # the same events again: nothing to add
    agg2 = Aggregator(60)  # a replay from offset 102 plus two new events
    replay = triage(records([event("x.com", ts=1_795_000_000_000)] * 4, partition=1, start=102), NameNormalizer())
    agg2.add_many(replay.parsed, {"x.com": "benign"})
    doc2, version2 = apply_counts("verdicts", doc, version, agg2.drain()[1]["x.com"])
    assert doc2[es_schema.QUERY_COUNT] == 6 and version2 == 105


def test_events_delivered_twice_within_one_window_count_once():
    """A rebalance replays from the last commit while the first delivery's counts are still unflushed."""
    agg = Aggregator(60)
    vals = [event("x.com", "1.1.1.1", ts=1_795_000_000_000, action="nxdomain")] * 3
    agg.add_many(triage(records(vals, partition=2, start=50), NameNormalizer()).parsed, {"x.com": "benign"})
    again = [event("x.com", "1.1.1.1", ts=1_795_000_000_000, action="nxdomain")] * 4  # 50-52 again, then 53
    agg.add_many(triage(records(again, partition=2, start=50), NameNormalizer()).parsed, {"x.com": "benign"})
    activity, verdicts, _, _ = agg.drain()
    assert len(activity) == 1
    act = next(iter(activity.values()))
    assert act.offsets == {2: [50, 51, 52, 53]} and act.blocked == {2: [50, 51, 52, 53]} and act.events == 4
    doc, version = apply_counts("activity", None, -1, act)
    assert (doc[es_schema.COUNT], doc[es_schema.BLOCKED], version) == (4, 4, 53)
    assert apply_counts("verdicts", None, -1, verdicts["x.com"])[0][es_schema.QUERY_COUNT] == 4


def _deliveries(offsets: list[int], replay_from: int, more: int, blocked: set[int]) -> list[tuple[int, bool]]:
    """One document's events as a consumer sees them: its offsets in order, then a replay from a
    committed offset at or below the first uncounted one, with ``more`` events after them."""
    first = sorted(set(offsets))
    again = [o for o in first if o >= replay_from]
    top = first[-1] if first else replay_from
    return [(o, o in blocked) for o in first + again + list(range(top + 1, top + 1 + more))]


_doc_events = st.builds(_deliveries, st.lists(st.integers(0, 40), max_size=20), st.integers(0, 40),
                        st.integers(0, 3), st.sets(st.integers(0, 45)))


@settings(max_examples=300, deadline=None)
@given(_doc_events.filter(bool), _doc_events, st.integers(-1, 45))
def test_counts_above_a_version_equal_a_count_of_the_distinct_offsets(
        own: list[tuple[int, bool]], merged: list[tuple[int, bool]], version: int) -> None:
    """Whether the sink takes the counted totals (no offset above ``version`` is old) or walks the
    offsets (a replay overlaps the stored document), a document gains each distinct event above
    ``version`` once, replayed or not, merged or not."""
    from dnsentinel.stream_processor.activity import Counted

    def counted(adds: list[tuple[int, bool]]) -> Counted:
        c = Counted({})
        for offset, blocked in adds:
            c.add(0, offset, 1_795_000_000_000 + offset, blocked)
        return c

    def expected(adds: list[tuple[int, bool]]) -> tuple[int, int, int]:
        new = {o: b for o, b in adds if o > version}
        return len(new), sum(new.values()), max(new, default=version)

    act = counted(own)
    n, blocked, hi = expected(own)
    result = apply_counts("activity", None, version, act)
    if n == 0:
        assert result is None
    else:
        assert result is not None
        assert (result[0][es_schema.COUNT], result[0][es_schema.BLOCKED], result[1]) == (n, blocked, hi)
    per_name = Counted({})
    per_name.merge(act)
    per_name.merge(counted(merged))
    n_merged, _, hi_merged = expected(merged)
    result = apply_counts("verdicts", None, version, per_name)
    if n + n_merged == 0:
        assert result is None
    else:
        assert result is not None
        assert (result[0][es_schema.QUERY_COUNT], result[1]) == (n + n_merged, max(hi, hi_merged))


def test_index_names_and_retention_selection():
    assert es_schema.index_name("verdicts", prefix="p") == "p-verdicts"
    assert es_schema.index_name("activity", dt.date(2026, 1, 2), prefix="p") == "p-activity-2026.01.02"
    assert es_schema.index_name("activity", prefix="p") == "p-activity-*"
    with pytest.raises(ValueError):
        es_schema.index_name("nope", prefix="p")
    names = ["p-activity-2026.01.01", "p-activity-2026.01.20", "p-events-2025.12.01", "p-verdicts", "q-activity-2020.01.01"]
    assert es_schema.expired_indices(names, 10, dt.date(2026, 1, 21), prefix="p") == [
        "p-activity-2026.01.01", "p-events-2025.12.01"]
    # retention counts from arrival: an old day replayed five days ago stays, one that came 20 days ago goes
    created = {"p-activity-2026.01.01": dt.date(2026, 1, 16), "p-events-2025.12.01": dt.date(2026, 1, 1)}
    assert es_schema.expired_indices(names, 10, dt.date(2026, 1, 21), prefix="p", created=created) == [
        "p-events-2025.12.01"]
    body = es_schema.template_body("activity", prefix="p")
    assert body["index_patterns"] == ["p-activity-*"] and body["template"]["mappings"]["dynamic"] == "strict"


def test_raw_event_documents_fit_the_strict_events_mapping():
    t = triage(records([event("a.example.com", action="pass"), event("bad name!.com")], partition=2), NameNormalizer())
    actions = raw_event_actions(t.parsed, "t")
    assert [a["_id"] for a in actions] == ["q|2|0", "q|2|1"]
    assert all(set(a["_source"]) <= set(es_schema.MAPPINGS["events"]) for a in actions)
    good, bad = (a["_source"] for a in actions)
    assert bad[es_schema.NAME_KIND] == "invalid" and bad[es_schema.INVALID_REASON] == "bad_char"
    assert (good[es_schema.Q_NAME], good[es_schema.Q_REGISTERED], good[es_schema.Q_SUBDOMAIN], good[es_schema.Q_TLD],
            good[es_schema.EVENT_ACTION], good[es_schema.EVENT_KIND]) == ("a.example.com", "example.com", "a", "com", "pass", "event")
    assert es_schema.INVALID_REASON not in good


def test_sink_bound_drops_oldest_counts_it_and_acks():
    async def run():
        m = Metrics()
        sink = EsSink(None, m, max_pending_actions=5)
        acked = []
        sink.submit([], [{}] * 3, 10, lambda: acked.append("a"))
        sink.submit([], [{}] * 3, 10, lambda: acked.append("b"))
        assert acked == ["a"] and sink.dropped_actions == 3 and sink.pending_actions == 3
        assert sample(m, "dnsentinel_worker_es_dropped_actions_total") == 3

    asyncio.run(run())


def test_sink_retries_until_the_cluster_is_back_then_acks_in_order():
    async def run():
        sink = EsSink(None, Metrics(), backoff_s=0.01)
        fails = [2]
        written = []

        async def write(chunk):
            if fails[0]:
                fails[0] -= 1
                raise ConnectionError("down")
            written.append(chunk.actions)

        sink._write = write
        acked = []
        task = asyncio.ensure_future(sink.run())
        sink.submit([], [{"a": 1}], 1, lambda: acked.append(1))
        sink.submit([], [{"b": 2}], 1, lambda: acked.append(2))
        assert await sink.drain(5)
        assert written == [[{"a": 1}], [{"b": 2}]] and acked == [1, 2]
        await sink.stop(1)
        await asyncio.wait_for(task, 1)

    asyncio.run(run())


def test_hot_reload_swaps_models_between_batches():
    models = {"v1": FakeModel({"x.com": 0.99}, version="v1"), "v2": FakeModel({"x.com": 0.01}, version="v2")}
    current = ["v1"]

    async def run():
        holder = ModelHolder(lambda v: models[v or current[0]], lambda: current[0])
        await holder.start()
        assert (await holder.score(["x.com"])).labels == ["malicious"]
        assert not await holder.maybe_reload()
        current[0] = "v2"
        assert await holder.maybe_reload()
        s = await holder.score(["x.com"])
        assert s.version == "v2" and s.labels == ["benign"]
        holder.close()

    asyncio.run(run())


def test_a_flush_during_a_batch_keeps_its_activity():
    """The flush timer may run while a batch awaits its verdict deliveries (after its counts are
    aggregated, before its ack token is pending); those counts must still reach the sink."""
    model = FakeModel({})
    gate: asyncio.Future | None = None

    class SlowPublisher(FakePublisher):
        async def __call__(self, topic: str, key: bytes | None, value: bytes):
            self.sent.append((topic, key, value))
            return gate

    class Sink:
        def __init__(self) -> None:
            self.chunks: list = []

        def submit(self, docs, actions=None, events=0, on_done=None) -> None:
            self.chunks.append(docs)
            if on_done is not None:
                on_done()

    proc, _, acked = make_proc(model)
    proc.publish = SlowPublisher()
    proc.sink = sink = Sink()

    async def run() -> None:
        nonlocal gate
        gate = asyncio.get_running_loop().create_future()
        batch = asyncio.ensure_future(proc.process(records([event(f"x{i}.flood.com") for i in range(5)]), {0: 4}))
        for _ in range(500):
            if proc.agg.events:
                break
            await asyncio.sleep(0.01)
        assert proc.agg.events == 5 and not batch.done()  # aggregated, waiting on its verdict deliveries
        proc.flush()  # the timer's flush, mid-batch
        gate.set_result(None)
        await batch
        proc.flush()

    asyncio.run(run())
    counted = sum(c.events for chunk in sink.chunks for fam, _, _, c in chunk if fam == "activity")
    assert counted == 5
    assert acked == [{0: 4}]


def test_handle_processes_a_batch_and_flushes_when_due():
    model = FakeModel({"evil.com": 0.99})
    proc, _, acked = make_proc(model, es_flush_interval_s=0.001)

    async def run() -> None:
        await proc.handle(records([event("evil.com")]), {0: 0})
        await asyncio.sleep(0.01)
        await proc.handle([], None)  # an empty poll still flushes what is due

    asyncio.run(run())
    assert model.calls == [["evil.com"]] and acked == [{0: 0}]


def test_service_score_and_health_without_the_stack():
    """The web views' logic on the service object, with a fake model and nothing started."""
    model = FakeModel({"evil.com": 0.99, "good.com": 0.01})
    service = WorkerService(app=None, settings=Settings(), models=holding(model), metrics=Metrics())
    assert service.health() == {"ok": False, "model": "fake-1", "es_backlog": None, "es_dropped": None}
    body, status = asyncio.run(service.score({"domains": ["evil.com", "good.com"]}))
    assert status == 200 and body["model"] == "fake-1"
    assert [(r["name"], r["label"]) for r in body["results"]] == [("evil.com", "malicious"), ("good.com", "benign")]
    for bad in (None, {"domains": "evil.com"}, {"domains": [1]}, {"domains": ["a.com"] * 10_001}):
        assert asyncio.run(service.score(bad))[1] == 400
    service.models.model = None
    assert asyncio.run(service.score({"domains": ["evil.com"]}))[1] == 503


def test_worker_documents_use_only_mapped_fields():
    """Every document the worker writes (activity, verdicts, vetting, raw events) fits its strict ECS mapping."""
    agg = Aggregator(60)
    ts = 1_795_000_020_000
    vals = [event("www.evil.co.uk", "10.0.0.9", ts, action="nxdomain", decision="malicious", rcode="NXDOMAIN",
                  latency_us=120, proto="udp", server="coredns-1", origin="q.log"),
            event("meh.example.com", "", ts), event("nas.lan", "10.0.0.9", ts)]
    t = triage(records(vals, partition=1), NameNormalizer())
    agg.add_many(t.parsed, {"www.evil.co.uk": "malicious", "meh.example.com": "uncertain"})
    agg.note_verdict(Verdict("www.evil.co.uk", "malicious", 0.99, "m-1", ts, "necurs", 0.7, reason="model"), ts + 5)
    activity, verdicts, vetting, _ = agg.drain()
    refs = aggregate_docs("t", activity, verdicts, vetting)
    actions, _ = EsSink(None)._actions(Chunk(refs, [], 0, None))
    docs = {}
    for (family, _idx, doc_id, _c), action in zip(refs, actions, strict=True):
        doc = action.get("_source") or action["upsert"]
        assert set(doc) <= set(es_schema.MAPPINGS[family]), (family, set(doc) - set(es_schema.MAPPINGS[family]))
        assert doc[es_schema.EVENT_KIND] == es_schema.EVENT_KINDS[family]
        docs[family, doc_id] = doc
    assert docs["vetting", "meh.example.com"][es_schema.STATUS] == "pending"
    verdict = docs["verdicts", "www.evil.co.uk"]
    assert (verdict[es_schema.Q_REGISTERED], verdict[es_schema.Q_SUBDOMAIN], verdict[es_schema.Q_TLD]) == (
        "evil.co.uk", "www", "co.uk")
    assert (verdict[es_schema.SCORE], verdict[es_schema.MODEL], verdict[es_schema.EVENT_CREATED]) == (0.99, "m-1", ts + 5)
    no_client = docs["activity", f"meh.example.com||{ts - ts % 60_000}"]
    assert no_client[es_schema.CLIENT_ADDRESS] == "" and es_schema.CLIENT_IP not in no_client
    for action in raw_event_actions(t.parsed, "t"):
        assert set(action["_source"]) <= set(es_schema.MAPPINGS["events"])
    raw = raw_event_actions(t.parsed[:1], "t")[0]["_source"]
    assert (raw[es_schema.CLIENT_IP], raw[es_schema.SOURCE_IP], raw[es_schema.EVENT_DURATION], raw[es_schema.TRANSPORT],
            raw[es_schema.RESPONSE_CODE], raw[es_schema.OBSERVER], raw[es_schema.LOG_FILE]) == (
        "10.0.0.9", "10.0.0.9", 120_000, "udp", "NXDOMAIN", "coredns-1", "q.log")


def test_sink_forgets_cached_counts_when_partitions_move():
    """A partition that moved away and back was counted by another worker meanwhile: the sink must
    re-read its documents instead of writing from its old cached count (which would lose events)."""
    import asyncio

    from dnsentinel.stream_processor.es_sink import Chunk, DocStore, EsSink

    sink = EsSink.__new__(EsSink)  # only the cache bookkeeping is exercised here
    sink.store = DocStore(10)
    sink._generation = sink._store_generation = 0
    sink.store.put(("idx", "doc"), {"count": 3}, 7)
    loaded: list = []

    async def load(keys):
        loaded.extend(keys)

    sink._load = load
    sink._actions = lambda chunk: ([], {})
    sink.invalidate()  # the consumer's rebalance callback
    asyncio.run(sink._write(Chunk([(None, "idx", "doc", None)], [], 1, None)))
    assert loaded == [("idx", "doc")], "the cached document was reused after a rebalance"
