"""Load generator mix, the report aggregation (against a fake ES) and --wait-verdicts (fake cache)."""

from __future__ import annotations

from collections import Counter

import pytest

from dnsentinel.producers import loadgen
from dnsentinel.producers.encode import EventEncoder
from dnsentinel.producers.loadgen import Mix, TrafficModel, generate
from dnsentinel.producers.report import build_query, parse_when, report_rows
from dnsentinel.producers.wait import wait_for_verdicts
from dnsentinel.verdict_cache.events import parse_event


@pytest.mark.parametrize("names", ["synthetic", "auto"])
def test_mix_shares_and_valid_events(names):
    model = TrafficModel(Mix(dga=0.1, phishing=0.05, flood=0.05), clients=200, names=names, seed=1)
    drawn = list(model.draw(20_000))
    victims = set(model.victims)
    flood = sum(1 for n, _, _ in drawn if any(n.endswith("." + v) for v in victims) and n.count(".") >= 2
                and len(n.split(".")[0]) == 12)
    assert 0.03 < flood / len(drawn) < 0.08
    top = Counter(n for n, _, _ in drawn).most_common(1)[0][1]
    assert top / len(drawn) > 0.02  # Zipf head: the most popular name is far above uniform
    assert len({c for _, _, c in drawn}) > 100
    infected = set(model.infected)
    enc = EventEncoder("loadgen")
    for q in [loadgen.Query(1763629200000, n, t, c, None, "udp", None) for n, t, c in drawn[:2000]]:
        out = enc.encode(q)
        assert type(out) is not str, (q, out)
        assert parse_event(out.value.encode()).source == "loadgen"
    assert infected <= set(model.clients)


def test_synthetic_names_need_no_corpus(monkeypatch, tmp_path):
    monkeypatch.setattr(loadgen, "DATA_DIR", tmp_path)
    model = TrafficModel(Mix(), names="auto", seed=2)
    assert model.source == "synthetic"
    with pytest.raises(FileNotFoundError):
        TrafficModel(Mix(), names="corpus")


def test_bad_shares():
    with pytest.raises(ValueError):
        Mix(dga=0.7, phishing=0.5).check()
    with pytest.raises(ValueError):
        Mix(dga=-0.1).check()


def test_generate_keeps_the_rate():
    model = TrafficModel(Mix(), clients=10, names="synthetic", seed=3)
    got = []
    sent = generate(model, rate=2000, duration_s=0.5, emit=got.append)
    assert sent == len(got) == 1000


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
            if d.get("label") not in ("malicious", "uncertain") and d.get("decision") not in ("block", "malicious"):
                continue
            groups.setdefault((d["client"], d["name"]), []).append(d)
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
                "first": {"value": min(d["minute"] for d in ds)}, "last": {"value": max(d["minute"] for d in ds)},
                "count": {"value": sum(d["count"] for d in ds)}, "blocked": {"value": sum(d["blocked"] for d in ds)},
                "label": {"buckets": [{"key": ds[0]["label"]}] if ds[0].get("label") else []},
                "decision": {"buckets": [{"key": ds[0]["decision"]}] if ds[0].get("decision") else []},
            })
        resp = {"aggregations": {"pairs": {"buckets": buckets}}}
        if buckets:
            resp["aggregations"]["pairs"]["after_key"] = buckets[-1]["key"]
        return resp


def test_report_pages_through_composite_buckets():
    docs = [
        {"client": "10.0.0.1", "name": "bad.example", "minute": 60_000, "count": 3, "blocked": 1, "label": "malicious"},
        {"client": "10.0.0.1", "name": "bad.example", "minute": 180_000, "count": 2, "blocked": 2, "label": "malicious"},
        {"client": "10.0.0.2", "name": "maybe.example", "minute": 120_000, "count": 1, "blocked": 0, "label": "uncertain"},
        {"client": "10.0.0.3", "name": "ok.example", "minute": 120_000, "count": 9, "blocked": 0, "label": "benign"},
        {"client": "10.0.0.4", "name": "vetted.example", "minute": 60_000, "count": 4, "blocked": 4, "decision": "block"},
    ]
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
    assert {"range": {"minute": {"format": "epoch_millis", "gte": 1000, "lte": 2000}}} in q["bool"]["filter"]
    assert len(build_query(None, None)["bool"]["filter"]) == 1


def test_parse_when():
    import time

    assert parse_when("2025-11-20T09:00:00Z") == 1763629200000
    assert parse_when("1763629200") == 1763629200000
    assert abs(parse_when("2h") - (time.time() - 7200) * 1000) < 5000
    assert parse_when(None) is None
    with pytest.raises(ValueError):
        parse_when("last tuesday")


class FakeCache:
    def __init__(self, arrivals):
        self.arrivals = arrivals  # call number -> names that have a verdict from then on
        self.calls = 0
        self.known: set[str] = set()

    def get_verdicts(self, names):
        self.calls += 1
        self.known |= self.arrivals.get(self.calls, set())
        return {n: object() for n in names if n in self.known}


def test_wait_until_all_verdicts_arrive():
    cache = FakeCache({1: {"a.com"}, 3: {"b.com", "c.com"}})
    seen = []
    missing = wait_for_verdicts({"a.com", "b.com", "c.com"}, cache, timeout_s=5, poll_s=0.01,
                                on_progress=lambda done, total: seen.append((done, total)))
    assert missing == set() and seen[-1] == (3, 3) and seen[0] == (1, 3)


def test_wait_times_out_with_the_missing_names():
    missing = wait_for_verdicts({"a.com", "never.com"}, FakeCache({1: {"a.com"}}), timeout_s=0.1, poll_s=0.02)
    assert missing == {"never.com"}


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_report_cli_formats(monkeypatch, fmt):
    import json as _json

    import elasticsearch
    from typer.testing import CliRunner

    from dnsentinel.cli.main import app

    docs = [{"client": "10.0.0.1", "name": "bad.example", "minute": 1763629200000, "count": 3, "blocked": 1,
             "label": "malicious"}]
    monkeypatch.setattr(elasticsearch, "Elasticsearch", lambda **kw: FakeES(docs))
    result = CliRunner().invoke(app, ["report", "--format", fmt, "--since", "2025-11-20"])
    assert result.exit_code == 0, result.output
    if fmt == "json":
        assert _json.loads(result.stdout) == [{"client": "10.0.0.1", "name": "bad.example", "label": "malicious",
                                               "first_seen": "2025-11-20T09:00:00+00:00",
                                               "last_seen": "2025-11-20T09:00:00+00:00", "count": 3, "blocked": 1}]
    elif fmt == "csv":
        assert result.stdout.splitlines()[1].startswith("10.0.0.1,bad.example,malicious,")
    else:
        assert "bad.exa" in result.stdout and "3" in result.stdout


def test_report_cli_bad_time(monkeypatch):
    from typer.testing import CliRunner

    from dnsentinel.cli.main import app

    result = CliRunner().invoke(app, ["report", "--since", "last tuesday"])
    assert result.exit_code != 0
