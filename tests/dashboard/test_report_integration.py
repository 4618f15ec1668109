"""``dnsentinel report``'s aggregation against the real Elasticsearch (a unique index prefix)."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.integration


def test_report_against_elasticsearch(stack):
    from elasticsearch import Elasticsearch

    from dnsentinel.dashboard.report import report_rows
    from dnsentinel.verdict_cache.es_schema import (
        BLOCKED, CLIENT_ADDRESS, COUNT, LABEL, Q_NAME, TIMESTAMP, index_name, template_body, template_name,
    )

    # a generous timeout: the shared 2-core machine is sometimes very busy
    es = Elasticsearch(**{**stack.elasticsearch.client_kwargs(), "request_timeout": 60})
    prefix = f"test-report-{uuid.uuid4().hex[:8]}"
    es.indices.put_index_template(name=template_name("activity", prefix=prefix), **template_body("activity", prefix=prefix))
    try:
        day1, day2 = 1763629200000, 1763629200000 + 86_400_000
        docs = [
            (day1, "10.0.0.1", "bad.example", 3, 1, "malicious"),
            (day2, "10.0.0.1", "bad.example", 2, 2, "malicious"),
            (day1, "10.0.0.2", "maybe.example", 1, 0, "uncertain"),
            (day1, "10.0.0.3", "fine.example", 7, 0, "benign"),
        ]
        for minute, client, name, count, blocked, label in docs:
            es.index(index=index_name("activity", minute, prefix=prefix), id=f"{name}|{client}|{minute}",
                     document={Q_NAME: name, CLIENT_ADDRESS: client, TIMESTAMP: minute, COUNT: count,
                               BLOCKED: blocked, LABEL: label}, refresh=True)
        rows = {(r.client, r.name): r for r in report_rows(es, index_name("activity", prefix=prefix))}
        assert set(rows) == {("10.0.0.1", "bad.example"), ("10.0.0.2", "maybe.example")}
        bad = rows[("10.0.0.1", "bad.example")]
        assert (bad.first_seen, bad.last_seen, bad.count, bad.blocked, bad.label) == (day1, day2, 5, 3, "malicious")
        only_day2 = list(report_rows(es, index_name("activity", prefix=prefix), since_ms=day2 - 1000))
        assert [(r.name, r.count) for r in only_day2] == [("bad.example", 2)]
    finally:
        es.options(ignore_status=404).indices.delete(index=f"{prefix}-*")
        es.options(ignore_status=404).indices.delete_index_template(name=template_name("activity", prefix=prefix))
