"""``dnsentinel report``: the aggregation against a fake Elasticsearch, and the command's three outputs."""

from __future__ import annotations

import json
import time

import pytest

from dnsentinel.dashboard.output import parse_when
from dnsentinel.dashboard.report import FLAGGED_DECISIONS, build_query, report_rows
from dnsentinel.verdict_cache.es_schema import BLOCKED, CLIENT_ADDRESS, COUNT, DECISION, LABEL, Q_NAME, TIMESTAMP
from dnsentinel.verdict_cache.vocabulary import FLAGGED_LABELS

FIELDS = {"client": CLIENT_ADDRESS, "name": Q_NAME, "minute": TIMESTAMP, "count": COUNT, "blocked": BLOCKED,
          "label": LABEL, "decision": DECISION}
"""The test rows' short keys -> the activity documents' fields."""


def _docs(*rows: dict) -> list[dict]:
    return [{FIELDS[k]: v for k, v in row.items()} for row in rows]


def _matches(doc: dict, query: dict) -> bool:
    """Evaluates the two kinds of filter build_query writes: flagged terms and the minute range."""
    for f in query["bool"]["filter"]:
        if "bool" in f:
            terms = [t["terms"] for t in f["bool"]["should"]]
            if not any(doc.get(field) in values for t in terms for field, values in t.items()):
                return False
        else:
            rng, at = f["range"][TIMESTAMP], doc[TIMESTAMP]
            if at < rng.get("gte", at) or at > rng.get("lte", at):
                return False
    return True


class FakeES:
    """Answers composite aggregations from an in-memory list of activity docs, page by page."""

    def __init__(self, docs, page=2):
        self.docs = docs
        self.page = page
        self.calls = []

    def search(self, index, size, query, aggs, **kw):
        self.calls.append((index, query, aggs))
        comp = aggs["pairs"]["composite"]
        groups = {}
        for d in self.docs:
            if _matches(d, query):
                groups.setdefault((d[CLIENT_ADDRESS], d[Q_NAME]), []).append(d)
        keys = sorted(groups)
        after = comp.get("after")
        if after:
            keys = [k for k in keys if k > (after["client"], after["name"])]
        keys = keys[: self.page]
        buckets = []
        for k in keys:
            ds = groups[k]
            buckets.append({
                "key": {"client": k[0], "name": k[1]},
                "first": {"value": min(d[TIMESTAMP] for d in ds)}, "last": {"value": max(d[TIMESTAMP] for d in ds)},
                "count": {"value": sum(d[COUNT] for d in ds)}, "blocked": {"value": sum(d[BLOCKED] for d in ds)},
                "label": {"buckets": [{"key": ds[0][LABEL]}] if ds[0].get(LABEL) else []},
                "decision": {"buckets": [{"key": ds[0][DECISION]}] if ds[0].get(DECISION) else []},
            })
        resp = {"aggregations": {"pairs": {"buckets": buckets}}}
        if buckets:
            resp["aggregations"]["pairs"]["after_key"] = buckets[-1]["key"]
        return resp


def test_flagged_decisions_come_from_the_vocabulary():
    assert FLAGGED_DECISIONS == (*FLAGGED_LABELS, "block", "honeypot")


def test_report_pages_through_composite_buckets():
    docs = _docs(
        {"client": "10.0.0.1", "name": "bad.example", "minute": 60_000, "count": 3, "blocked": 1, "label": "malicious"},
        {"client": "10.0.0.1", "name": "bad.example", "minute": 180_000, "count": 2, "blocked": 2, "label": "malicious"},
        {"client": "10.0.0.2", "name": "maybe.example", "minute": 120_000, "count": 1, "blocked": 0, "label": "uncertain"},
        {"client": "10.0.0.3", "name": "ok.example", "minute": 120_000, "count": 9, "blocked": 0, "label": "benign"},
        {"client": "10.0.0.4", "name": "vetted.example", "minute": 60_000, "count": 4, "blocked": 4, "decision": "block"},
        {"client": "10.0.0.5", "name": "allowed.example", "minute": 60_000, "count": 2, "blocked": 0, "decision": "allow"},
    )
    es = FakeES(docs)
    rows = list(report_rows(es, "dnsentinel-activity-*"))
    assert [(r.client, r.name, r.label, r.first_seen, r.last_seen, r.count, r.blocked) for r in rows] == [
        ("10.0.0.1", "bad.example", "malicious", 60_000, 180_000, 5, 3),
        ("10.0.0.2", "maybe.example", "uncertain", 120_000, 120_000, 1, 0),
        ("10.0.0.4", "vetted.example", "block", 60_000, 60_000, 4, 4),
    ]
    assert len(es.calls) == 3  # two pages of 2, then the empty page
    assert all(call[2]["pairs"]["composite"]["size"] > 0 for call in es.calls)


def test_report_time_range_filter():
    q = build_query(1000, 2000)
    assert {"range": {TIMESTAMP: {"format": "epoch_millis", "gte": 1000, "lte": 2000}}} in q["bool"]["filter"]
    assert len(build_query(None, None)["bool"]["filter"]) == 1


def test_parse_when():
    assert parse_when("2025-11-20T09:00:00Z") == 1763629200000
    assert parse_when("1763629200") == 1763629200000
    assert abs(parse_when("2h") - (time.time() - 7200) * 1000) < 5000
    assert parse_when(None) is None
    with pytest.raises(ValueError):
        parse_when("last tuesday")


DOCS = _docs(
    {"client": "10.0.0.1", "name": "bad.example", "minute": 1763629200000, "count": 3, "blocked": 1, "label": "malicious"},
    {"client": "10.0.0.2", "name": "worse.example", "minute": 1763629260000, "count": 7, "blocked": 7,
     "decision": "honeypot"},
    {"client": "10.0.0.3", "name": "fine.example", "minute": 1763629260000, "count": 9, "blocked": 0, "label": "benign"},
)


def _report(monkeypatch, *args):
    import elasticsearch
    from typer.testing import CliRunner

    from dnsentinel.cli.main import app

    monkeypatch.setattr(elasticsearch, "Elasticsearch", lambda **kw: FakeES(DOCS))
    result = CliRunner().invoke(app, ["report", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_report_cli_json(monkeypatch):
    assert json.loads(_report(monkeypatch, "--format", "json", "--since", "2025-11-20")) == [
        {"client": "10.0.0.1", "name": "bad.example", "label": "malicious", "first_seen": "2025-11-20T09:00:00+00:00",
         "last_seen": "2025-11-20T09:00:00+00:00", "count": 3, "blocked": 1},
        {"client": "10.0.0.2", "name": "worse.example", "label": "honeypot", "first_seen": "2025-11-20T09:01:00+00:00",
         "last_seen": "2025-11-20T09:01:00+00:00", "count": 7, "blocked": 7},
    ]


def test_report_cli_csv(monkeypatch):
    assert _report(monkeypatch, "--format", "csv", "--since", "2025-11-20").splitlines() == [
        "client,name,label,first_seen,last_seen,count,blocked",
        "10.0.0.1,bad.example,malicious,2025-11-20T09:00:00+00:00,2025-11-20T09:00:00+00:00,3,1",
        "10.0.0.2,worse.example,honeypot,2025-11-20T09:01:00+00:00,2025-11-20T09:01:00+00:00,7,7",
    ]


def test_report_cli_table(monkeypatch):
    out = _report(monkeypatch, "--format", "table", "--since", "2025-11-20")
    assert "clients querying malicious or uncertain names (2 pairs)" in out
    rows = [[cell.strip() for cell in line.strip()[1:-1].split(line.strip()[0])] for line in out.splitlines()
            if line.strip()[:1] in ("┃", "│")]  # the header's rule, then the rows'
    assert rows == [
        ["client", "name", "label", "first seen (UTC)", "last seen (UTC)", "queries", "blocked"],
        ["10.0.0.2", "worse.example", "honeypot", "2025-11-20 09:01:00", "2025-11-20 09:01:00", "7", "7"],  # most first
        ["10.0.0.1", "bad.example", "malicious", "2025-11-20 09:00:00", "2025-11-20 09:00:00", "3", "1"],
    ]


def test_report_cli_bad_time(monkeypatch):
    from typer.testing import CliRunner

    from dnsentinel.cli.main import app

    result = CliRunner().invoke(app, ["report", "--since", "last tuesday"])
    assert result.exit_code != 0
