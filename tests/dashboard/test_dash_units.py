"""Unit tests of the dashboard's Streamlit-free modules."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from dash_fakes import FakeCache, FakeStore

from dnsentinel.dashboard import model_reports, store, timerange, training, vetting, whois_lookup
from dnsentinel.verdict_cache.es_schema import Q_NAME


def test_auto_granularity_and_snapping():
    assert timerange.auto_granularity(timedelta(minutes=15)) == "minute"
    assert timerange.auto_granularity(timedelta(days=1)) == "hour"
    assert timerange.auto_granularity(timedelta(days=30)) == "day"
    rng = timerange.last(timedelta(hours=1), now=datetime(2026, 11, 22, 10, 0, 3, tzinfo=UTC))
    assert rng.end == datetime(2026, 11, 22, 10, 0, 10, tzinfo=UTC)
    assert rng == timerange.last(timedelta(hours=1), now=datetime(2026, 11, 22, 10, 0, 7, tzinfo=UTC))
    with pytest.raises(ValueError, match="before it starts"):
        timerange.TimeRange(rng.end, rng.start)


def test_effective_decision_and_filter():
    assert store.effective("unknown", "malicious") == "malicious"
    assert store.effective(None, None) == "unknown"
    assert store.effective("allow", "malicious") == "allow"
    f = store.decision_filter(("allow",))
    assert len(f["bool"]["should"]) == 1


class RecordingES:
    """Captures search requests and answers with canned aggregations."""

    def __init__(self, aggregations=None, hits=None):
        self.requests: list[dict] = []
        self.aggregations = aggregations or {}
        self.hits = hits or []

    def search(self, **kw):
        self.requests.append(kw)
        return {"aggregations": self.aggregations, "hits": {"hits": self.hits, "total": {"value": len(self.hits)}}}


def test_store_names_table_pages_in_python_and_never_fetches_rows():
    buckets = [{"key": f"n{i}.example", "queries": {"value": 10 - i}, "blocked": {"value": 0}, "last": {"value": 0},
                "d": {"buckets": [{"key": "unknown"}]}, "l": {"buckets": [{"key": "uncertain"}]}} for i in range(6)]
    es = RecordingES({"n": {"buckets": buckets}, "total": {"value": 6}})
    s = store.Store(es, "t")
    page = s.names_table(timerange.last(timedelta(hours=1)), store.ALLOWED_DECISIONS, search="N", page=1, page_size=4)
    assert page.total == 6 and page.rows["name"].tolist() == ["n4.example", "n5.example"]
    assert set(page.rows["decision"]) == {"uncertain"}
    assert es.requests[0]["index"] == "t-hourly-*"  # the roll-up's watermark (none here: minutes only)
    req = es.requests[1]
    assert req["size"] == 0 and req["index"] == "t-activity-*"
    assert req["aggs"]["n"]["terms"]["size"] == 8
    assert {"wildcard": {Q_NAME: {"value": "*n*", "case_insensitive": True}}} in req["query"]["bool"]["filter"]


def test_sample_data_documents_use_only_mapped_fields():
    from dnsentinel.dashboard import sample_data
    from dnsentinel.verdict_cache.es_schema import EVENT_KIND, EVENT_KINDS, MAPPINGS

    shape = sample_data.Shape(docs=50, names=40, clients=5, minutes=10, uncertain_share=0.3)
    actions = [*sample_data.activity(shape, "t"), *sample_data.verdicts_and_queue(shape, "t")]
    families = {a["_index"].split("-")[1] for a in actions}
    assert families == {"activity", "verdicts", "vetting"}
    for a in actions:
        family = a["_index"].split("-")[1]
        assert set(a["_source"]) <= set(MAPPINGS[family]) and a["_source"][EVENT_KIND] == EVENT_KINDS[family]


def test_store_reads_verdicts_and_vetting_by_their_ecs_fields():
    from dnsentinel.verdict_cache import es_schema as f

    class OneDoc(RecordingES):
        def options(self, **_kw):
            return self

        def get(self, index, id):
            return {"found": True, "_source": {f.Q_NAME: id, f.LABEL: "malicious", f.SCORE: 0.9, f.MODEL: "m-1"}}

    hit = {"_id": "maybe.example", "_source": {f.Q_NAME: "maybe.example", f.SCORE: 0.5, f.QUERY_COUNT: 3,
                                              f.EVENT_START: 60_000, f.EVENT_END: 120_000, f.MODEL: "m-1"}}
    s = store.Store(OneDoc(hits=[hit]), "t")
    assert s.verdict("x.example") == {"name": "x.example", "label": "malicious", "score": 0.9, "model": "m-1"}
    row = s.vetting_queue("query count").rows.iloc[0]
    assert (row["name"], row["score"], row["query count"], row["model"]) == ("maybe.example", 0.5, 3, "m-1")
    req = s.es.requests[-1]
    assert req["sort"] == [{f.QUERY_COUNT: {"order": "desc", "unmapped_type": "long"}}]
    assert req["query"]["bool"]["must_not"][0] == {"terms": {f.STATUS: list(store.VETTED_STATUSES)}}


def test_store_client_names_sorts_malicious_then_uncertain():
    def b(name, d, n):
        return {"key": name, "queries": {"value": n}, "blocked": {"value": 0}, "first": {"value": 0}, "last": {"value": 0},
                "d": {"buckets": [{"key": d}]}, "l": {"buckets": []}}
    es = RecordingES({"n": {"buckets": [b("a", "benign", 100), b("b", "uncertain", 1), b("c", "malicious", 2)]},
                      "total": {"value": 3}})
    rows = store.Store(es, "t").client_names("10.0.0.1", timerange.last(timedelta(hours=1))).rows
    assert rows["name"].tolist() == ["c", "b", "a"]


def test_vetting_undo_restores_previous_records():
    cache, st = FakeCache(), FakeStore()
    cache.set_vetted("a.example", "allow", "carol", "known good")
    done = vetting.apply(cache, st, ["a.example", "b.example", "a.example"], "block", "alice")
    assert list(done.before) == ["a.example", "b.example"]
    assert st.audit[0]["before"] == "allow" and st.audit[1]["before"] == "none"
    assert vetting.undo(cache, st, done, "alice") == {}
    assert cache.vetted["a.example"].action == "allow" and cache.vetted["a.example"].note == "known good"
    assert "b.example" not in cache.vetted
    with pytest.raises(ValueError, match="unknown action"):
        vetting.apply(cache, st, ["x"], "delete", "alice")
    with pytest.raises(ValueError, match="at most 512"):
        vetting.apply(cache, st, ["x"], "allow", "alice", "n" * 513)


def test_whois_timeout_and_failure_never_raise():
    slow = whois_lookup.lookup("example.com", 0.05, query=lambda d: time.sleep(1) or {})
    assert not slow.ok and "timed out after 0.05 s" in slow.error
    broken = whois_lookup.lookup("example.com", 1, query=lambda d: 1 / 0)
    assert not broken.ok and "ZeroDivisionError" in broken.error
    ok = whois_lookup.lookup("example.com", 1, query=lambda d: {"registrar": "R", "name_servers": ["b", "a"]})
    assert ok.ok and ok.fields == {"registrar": "R", "name_servers": "a, b"}


def test_training_job_runs_detached_and_reports_progress(tmp_path, monkeypatch):
    """A stand-in trainer writes the same files as ``dnsentinel train``; the job survives as files."""
    script = ("import json,sys,time,pathlib; d=pathlib.Path(sys.argv[1]); d.mkdir(parents=True);"
              "[(d.joinpath('history.jsonl').open('a').write(json.dumps({'epoch':i,'loss':1/(i+1)})+'\\n'),time.sleep(0.05)) for i in range(3)];"
              "d.joinpath('status.json').write_text(json.dumps({'state':'done'}))")
    monkeypatch.setattr(training.JobRequest, "argv", lambda self: [sys.executable, "-c", script, str(tmp_path / self.name)])
    job = training.start(tmp_path, training.JobRequest("tiny-1", epochs=3), "alice")
    with pytest.raises(ValueError, match="already exists"):
        training.start(tmp_path, training.JobRequest("tiny-1"), "alice")
    deadline = time.time() + 20
    while training.progress(tmp_path, job).state != "done" and time.time() < deadline:
        time.sleep(0.1)
    prog = training.progress(tmp_path, training.jobs(tmp_path)[0])
    assert prog.state == "done" and [h["epoch"] for h in prog.history] == [0, 1, 2]
    loss, acc = model_reports.curves(prog.history)
    assert loss["series"].unique().tolist() == ["loss"] and acc.empty


def test_training_argv_and_validation():
    argv = training.JobRequest("m-1", arch="mlbridge-cnn", epochs=2, batch_size=64, sample_size=1000, include_vetted=False).argv()
    assert argv[3:] == ["train", "--arch", "mlbridge-cnn", "--epochs", "2", "--batch-size", "64", "--sample-size", "1000",
                        "--no-include-vetted", "--holdout", "none", "--name", "m-1"]
    evaluation = training.JobRequest("m-2", hold_out_families=True).argv()
    assert evaluation[evaluation.index("--holdout") + 1] == "default"
    with pytest.raises(ValueError, match="epochs 0"):
        training.JobRequest("m", epochs=0)


def test_training_job_that_dies_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(training.JobRequest, "argv", lambda self: [sys.executable, "-c", "print('boom'); raise SystemExit(3)"])
    job = training.start(tmp_path, training.JobRequest("dies"), "alice")
    deadline = time.time() + 20
    while training.progress(tmp_path, job).state not in ("died",) and time.time() < deadline:
        time.sleep(0.1)
    prog = training.progress(tmp_path, job)
    assert prog.state == "died" and "boom" in prog.log_tail


def test_model_reports_tolerate_shapes(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({"splits": {"val": {"f1": 0.5, "confusion_matrix": {"tn": 1, "fp": 2, "fn": 3, "tp": 4}}}}))
    report = model_reports.load(tmp_path)
    assert model_reports.scalar_table(report).loc["val", "f1"] == 0.5
    assert model_reports.confusion(report["metrics"]["splits"]["val"]).values.tolist() == [[1, 2], [3, 4]]
    assert model_reports.load(tmp_path / "missing") == {}
    assert model_reports.version_of({"name": "x"}) == "x"


def test_model_reports_read_the_trainers_layout(tmp_path):
    """metrics.json as models/training.evaluate_splits writes it."""
    at_block = {"threshold": 0.9, "confusion": [[90, 1], [2, 80]], "accuracy": 0.98, "precision": 0.99, "recall": 0.97, "f1": 0.98}
    overall = {"roc_auc": 0.999, "tpr_at_fpr_1e-3": 0.95, "at_block": at_block, "at_0.5": at_block,
               "roc": {"fpr": [0, 1], "tpr": [0, 1], "threshold": [1, 0]}}
    (tmp_path / "metrics.json").write_text(json.dumps({"thresholds": {"block": 0.9, "allow": 0.1},
                                                       "splits": {"test": {"overall": overall, "slices": {}}}}))
    report = model_reports.load(tmp_path)
    table = model_reports.scalar_table(report)
    assert table.loc["test", "roc_auc"] == 0.999 and table.loc["test", "f1"] == 0.98
    split = model_reports.splits(report)["test"]
    assert model_reports.confusion(split).values.tolist() == [[90, 1], [2, 80]]
    assert model_reports.roc(split) is not None
    assert model_reports.thresholds(report) == {"block": 0.9, "allow": 0.1}


def test_cli_runs_streamlit_headless_without_telemetry(monkeypatch):
    from typer.testing import CliRunner

    from dnsentinel.cli.main import app
    from dnsentinel.dashboard import cli

    calls = []
    # The CLI execs Streamlit (the supervised process is the server): record instead of replacing the test.
    monkeypatch.setattr(cli.os, "execve", lambda path, argv, env: calls.append((argv, env)))
    monkeypatch.setattr(cli, "_accounts", lambda: None)  # the start-up Redis check (tests/test_redis_client.py)
    result = CliRunner().invoke(app, ["dashboard", "--port", "8765", "--address", "127.0.0.1"])
    assert result.exit_code == 0, result.output
    argv, env = calls[0]
    assert argv[1:4] == ["-m", "streamlit", "run"] and argv[4].endswith("dashboard/app.py")
    flags = dict(zip(argv[5::2], argv[6::2]))
    assert flags["--server.headless"] == "true" and flags["--browser.gatherUsageStats"] == "false"
    assert flags["--server.port"] == "8765" and flags["--server.address"] == "127.0.0.1"
