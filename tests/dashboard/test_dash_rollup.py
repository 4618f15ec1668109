"""The hourly roll-up (stream_processor/rollup.py) and the dashboard answers it gives (dashboard/store.py).

The unit tests cover which hours are read from the roll-up and which are rolled again; the
integration tests roll a small synthetic data set in the real Elasticsearch (unique prefix,
removed afterwards) and check that every store answer is the one the minute documents give,
that rolling again changes nothing, and that late or relabelled data re-rolls its hour.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from dnsentinel.dashboard import sample_data, timerange
from dnsentinel.dashboard.store import ALLOWED_DECISIONS, BLOCKED_DECISIONS, Store, client_filter, rollup_span
from dnsentinel.stream_processor import rollup
from dnsentinel.stream_processor.rollup import HOUR_MS, rollup_id
from dnsentinel.verdict_cache import es_schema as S

H0 = 1_764_547_200_000  # 2025-12-01 00:00 UTC


def _rng(start_ms: int, end_ms: int) -> timerange.TimeRange:
    return timerange.TimeRange(datetime.fromtimestamp(start_ms / 1000, UTC), datetime.fromtimestamp(end_ms / 1000, UTC))


def test_the_rollup_answers_for_whole_rolled_hours_only() -> None:
    rng = _rng(H0 + 10 * 60_000, H0 + 5 * HOUR_MS + 30 * 60_000)
    assert rollup_span(rng, H0 + 10 * HOUR_MS, "hour") == (H0 + HOUR_MS, H0 + 5 * HOUR_MS)
    assert rollup_span(rng, H0 + 3 * HOUR_MS, None) == (H0 + HOUR_MS, H0 + 3 * HOUR_MS)  # capped by the watermark
    assert rollup_span(rng, H0 + HOUR_MS, "day") is None  # nothing rolled inside the range
    assert rollup_span(rng, None, "hour") is None  # nothing rolled at all
    assert rollup_span(rng, H0 + 10 * HOUR_MS, "minute") is None  # a roll-up document is a whole hour
    assert rollup_span(_rng(H0 + 60_000, H0 + 50 * 60_000), H0 + 10 * HOUR_MS, "hour") is None
    assert rollup_span(_rng(H0, H0 + HOUR_MS), H0 + 10 * HOUR_MS, "hour") == (H0, H0 + HOUR_MS)


def test_rollup_ids_are_deterministic_and_tell_keys_apart() -> None:
    assert rollup_id("a.example", "10.0.0.1", H0, "unknown", "benign") == rollup_id("a.example", "10.0.0.1", H0, "unknown", "benign")
    ids = {rollup_id("a.example", "10.0.0.1", H0, d, lab) for d in (None, "unknown") for lab in (None, "benign")}
    assert len(ids) == 4
    assert rollup_id("a" * 600, "c", H0, None, None).startswith("sha256:")


def test_hours_are_rolled_again_when_their_totals_differ(monkeypatch) -> None:
    raw = {H0: (10, 50), H0 + HOUR_MS: (4, 9), H0 + 2 * HOUR_MS: (3, 3)}
    rolled = {H0: (10, 50), H0 + HOUR_MS: (3, 8), H0 - HOUR_MS: (2, 2)}  # H0 - 1h: its minute documents are gone

    def totals(es: Any, index: str, before_ms: int) -> dict[int, tuple[int, int]]:
        return rolled if "-hourly-" in index else raw

    monkeypatch.setattr(rollup, "hour_totals", totals)
    assert rollup.dirty_hours(None, "p", H0 + 3 * HOUR_MS) == [
        (H0 - HOUR_MS, True), (H0 + HOUR_MS, True), (H0 + 2 * HOUR_MS, False)]


def test_one_request_reads_rolled_hours_from_the_rollup_and_the_rest_from_minutes() -> None:
    class RecordingES:
        def __init__(self) -> None:
            self.requests: list[dict] = []

        def search(self, **kw: Any) -> dict:
            self.requests.append(kw)
            return {"aggregations": {"w": {"value": H0 + 3 * HOUR_MS + 59 * 60_000}}}

    es = RecordingES()
    s = Store(es, "t")
    s.top_clients(_rng(H0 + 30 * 60_000, H0 + 6 * HOUR_MS))
    s.timeline(_rng(H0 + 30 * 60_000, H0 + 6 * HOUR_MS), "minute")
    watermark, clients, minutes = es.requests
    assert watermark["index"] == "t-hourly-*"
    assert clients["index"] == "t-activity-*,t-hourly-*"
    split = clients["query"]["bool"]["filter"][-1]["bool"]["should"]
    hours = {"range": {S.TIMESTAMP: {"gte": H0 + HOUR_MS, "lt": H0 + 3 * HOUR_MS, "format": "epoch_millis"}}}
    assert split == [{"bool": {"filter": [{"prefix": {"_index": "t-activity-"}}], "must_not": [hours]}},
                     {"bool": {"filter": [{"prefix": {"_index": "t-hourly-"}}, hours]}}]
    assert minutes["index"] == "t-activity-*"  # minute buckets: the roll-up cannot answer


def test_consecutive_dirty_hours_of_a_day_are_rolled_together() -> None:
    day = 86_400_000
    hours = [(H0 + 22 * HOUR_MS, False), (H0 + 23 * HOUR_MS, True), (H0 + day, False), (H0 + day + HOUR_MS, False),
             (H0 + day + 5 * HOUR_MS, False)]
    assert rollup.batches(hours) == [(H0 + 22 * HOUR_MS, H0 + day, True), (H0 + day, H0 + day + 2 * HOUR_MS, False),
                                     (H0 + day + 5 * HOUR_MS, H0 + day + 6 * HOUR_MS, False)]


def test_the_rollup_ages_out_with_the_activity_it_rolls() -> None:
    import datetime as dt

    names = ["p-hourly-2026.01.01", "p-activity-2026.01.01", "p-hourly-2026.01.20"]
    assert S.expired_indices(names, 10, dt.date(2026, 1, 21), prefix="p") == ["p-activity-2026.01.01", "p-hourly-2026.01.01"]
    body = S.template_body("hourly", prefix="p")
    assert body["index_patterns"] == ["p-hourly-*"] and body["template"]["mappings"]["dynamic"] == "strict"
    assert S.index_name("hourly", H0, prefix="p") == "p-hourly-2025.12.01"
    assert not "p-hourly-2025.12.01".startswith(S.index_name("activity", prefix="p").rstrip("*"))  # never read as minutes


# -- against the real Elasticsearch ---------------------------------------------------------------
SHAPE = sample_data.Shape(docs=4000, names=30, clients=12, minutes=6 * 60)
"""Few names and clients: every terms bucket fits each shard's list, so top-N answers are exact either way."""


@pytest.fixture(scope="module")
def es_data(stack):
    from elasticsearch import Elasticsearch

    es = Elasticsearch(**stack.elasticsearch.client_kwargs())
    prefix = f"dashtest-rollup-{uuid.uuid4().hex[:8]}"
    sample_data.load(es, prefix, SHAPE)
    yield es, prefix
    sample_data.drop(es, prefix)


def _same(a: Any, b: Any, where: str = "") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False, obj=where)
    elif hasattr(a, "rows"):  # Page
        _same(a.rows, b.rows, where + ".rows")
        assert a.total == b.total, where
    else:
        assert a == b, where


def _answers(s: Store, rng: timerange.TimeRange, granularity: str) -> dict[str, Any]:
    top = s.top_names(rng, BLOCKED_DECISIONS)
    name = top.iloc[0]["name"]
    client = s.top_clients(rng, BLOCKED_DECISIONS).iloc[0]["client"]
    registrable = ".".join(str(s.top_names(rng, ALLOWED_DECISIONS).iloc[0]["name"]).split(".")[-3:])
    return {
        "overview": s.overview(rng, granularity),
        "timeline": s.timeline(rng, granularity, client_filter(client)),
        "top malicious": top,
        "top allowed": s.top_names(rng, ALLOWED_DECISIONS),
        "names table": s.names_table(rng, ALLOWED_DECISIONS, "site", "queries", True, 0, 10),
        "names table by name": s.names_table(rng, BLOCKED_DECISIONS, "", "name", False, 0, 5),
        "clients": s.top_clients(rng),
        "domain": s.domain_activity(name, False, rng, granularity),
        "domain with subdomains": s.domain_activity(registrable, True, rng, granularity),
        "client names": s.client_names(client, rng),
    }


def _roll(es: Any, prefix: str) -> rollup.RollupReport:
    return rollup.roll_up(es, prefix, settle_s=0, now_ms=int(time.time() * 1000))


def _compare(es: Any, prefix: str) -> None:
    rolled, raw = Store(es, prefix, watermark_ttl_s=0), Store(es, prefix, rollups=False)
    for span, granularity in ((timedelta(hours=6), "hour"), (timedelta(hours=7), "day"), (timedelta(hours=3), "minute")):
        rng = timerange.last(span)
        _same(_answers(rolled, rng, granularity), _answers(raw, rng, granularity), f"{span} by {granularity}")


@pytest.mark.integration
def test_store_answers_from_the_rollup_equal_those_from_minutes_and_rolling_is_idempotent(es_data) -> None:
    es, prefix = es_data
    first = _roll(es, prefix)
    assert first.hours >= 5 and first.minute_docs > 0 and first.written < first.minute_docs
    rolled_until = Store(es, prefix).rolled_until()
    assert rolled_until is not None and rollup_span(timerange.last(timedelta(hours=6)), rolled_until, "hour")
    _compare(es, prefix)
    hourly = es.count(index=S.index_name("hourly", prefix=prefix))["count"]
    again = _roll(es, prefix)
    assert (again.hours, again.written, again.deleted) == (0, 0, 0)
    assert es.count(index=S.index_name("hourly", prefix=prefix))["count"] == hourly


@pytest.mark.integration
def test_late_and_relabelled_data_rolls_its_hour_again(es_data) -> None:
    es, prefix = es_data
    _roll(es, prefix)
    hour = rollup.floor_hour(int(time.time() * 1000)) - 3 * HOUR_MS
    minute = hour + 17 * 60_000
    index = S.index_name("activity", minute, prefix=prefix)

    def minute_doc(label: str, count: int) -> dict:
        return {S.EVENT_KIND: "metric", S.TIMESTAMP: minute, S.Q_NAME: "late.relabel.example", S.Q_REGISTERED: "relabel.example",
                S.CLIENT_ADDRESS: "10.9.9.9", S.CLIENT_IP: "10.9.9.9", S.NAME_KIND: "domain", S.COUNT: count,
                S.BLOCKED: 0, S.DECISION: "unknown", S.LABEL: label}

    es.index(index=index, id="late|10.9.9.9", document=minute_doc("benign", 2), refresh=True)
    late = _roll(es, prefix)
    assert (late.hours, late.written) == (1, late.written) and late.deleted == 0
    _compare(es, prefix)
    # The worker rewrites a minute document with more queries and the name's new label: the old key goes.
    es.index(index=index, id="late|10.9.9.9", document=minute_doc("malicious", 3), refresh=True)
    relabelled = _roll(es, prefix)
    assert relabelled.hours == 1 and relabelled.deleted == 1
    _compare(es, prefix)
    assert not es.exists(index=S.index_name("hourly", hour, prefix=prefix),
                         id=rollup_id("late.relabel.example", "10.9.9.9", hour, "unknown", "benign"))
