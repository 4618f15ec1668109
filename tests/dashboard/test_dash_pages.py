"""AppTest runs of every page against fakes: page logic, not services."""

from __future__ import annotations

import json

from conftest import APP_DIR, logged_in, page
from streamlit.testing.v1 import AppTest


def _texts(elements) -> list[str]:
    return [str(e.value) for e in elements]


def test_login_required_everywhere(fakes):
    at = AppTest.from_file(str(APP_DIR / "app.py"), default_timeout=30).run()
    assert _texts(at.title) == ["dnsentinel — analyst login"]
    for name in ("overview", "domain", "client", "vetting", "models"):
        p = page(name).run()
        assert any("log in" in w for w in _texts(p.warning)), name
        assert not p.title


def test_demo_login_and_wrong_password(fakes):
    at = AppTest.from_file(str(APP_DIR / "app.py"), default_timeout=30).run()
    at.text_input[0].set_value("analyst")
    at.text_input[1].set_value("wrong")
    at.button[0].click().run()
    assert any("wrong password" in e for e in _texts(at.error))
    at.text_input[1].set_value("dnsentinel")
    at.button[0].click().run()
    assert not at.exception
    assert "Logged in as **analyst**" in _texts(at.sidebar.markdown)
    assert _texts(at.title) == ["Overview"]


def test_overview_shows_totals_and_tables(fakes):
    at = logged_in(page("overview")).run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Queries"] == "171" and metrics["Blocked"] == "15" and metrics["Uncertain"] == "6"
    assert len(at.dataframe) == 2  # top clients, likely infected hosts
    at.toggle(key="mal_full").set_value(True).run()
    assert any("2 names match" in c for c in _texts(at.caption))


def test_overview_granularity_override(fakes):
    at = logged_in(page("overview")).run()
    assert at.selectbox(key="ov_gran").value.startswith("auto (hour)")
    at.selectbox(key="ov_gran").set_value("minute").run()
    assert any("Queries per minute" in s for s in _texts(at.subheader))
    at.selectbox(key="ov_preset").set_value("Last 30 days").run()
    at.selectbox(key="ov_gran").set_value("minute").run()  # 43,201 bars: refused
    assert any("using day" in w for w in _texts(at.warning))


def test_overview_reports_a_dead_service(fakes, monkeypatch):
    store, _ = fakes
    monkeypatch.setattr(store, "timeline", lambda *a, **k: (_ for _ in ()).throw(ConnectionError("ES down")))
    at = logged_in(page("overview")).run()
    assert not at.exception
    assert any("ES down" in e for e in _texts(at.error))


def test_domain_page(fakes):
    at = logged_in(page("domain")).run()
    at.text_input(key="dom_name").set_value("XJWQKZPT.com.").run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Queries"] == "52" and metrics["Label"] == "malicious" and metrics["Score"] == "0.9981"
    assert metrics["Family guess"] == "necurs (70%)"
    assert any("decides **malicious**" in c for c in _texts(at.caption))


def test_domain_rejects_bad_name(fakes):
    at = logged_in(page("domain")).run()
    at.text_input(key="dom_name").set_value("bad name!").run()
    assert not at.exception
    assert any("not a valid DNS name" in e for e in _texts(at.error))


def test_domain_whois_failure_is_plain(fakes, monkeypatch):
    from dnsentinel.dashboard import data
    from dnsentinel.dashboard.whois_lookup import WhoisResult

    monkeypatch.setattr(data, "whois", lambda d: WhoisResult(False, {}, f"WHOIS for {d} timed out after 5 s"))
    at = logged_in(page("domain")).run()
    at.text_input(key="dom_name").set_value("www.example.com").run()
    at.button(key="dom_whois").click().run()
    assert not at.exception
    assert any("WHOIS for example.com timed out" in w for w in _texts(at.warning))


def test_client_page_orders_malicious_first(fakes):
    at = logged_in(page("client")).run()
    at.text_input(key="cl_addr").set_value("10.0.0.7").run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Malicious names"] == "1"
    at.text_input(key="cl_addr").set_value("10.0.0.999").run()
    assert any("not an IPv4 or IPv6" in e for e in _texts(at.error))


def test_vetting_bulk_action_audit_and_undo(fakes):
    store, cache = fakes
    at = logged_in(page("vetting"), user="alice").run()
    assert not at.exception
    at.multiselect[0].set_value(["odd-name.example", "qwzxv.example"]).run()
    at.radio(key="vet_action").set_value("block")
    at.text_input(key="vet_note").set_value("DGA-looking")
    at.button[0].click().run()
    assert not at.exception
    assert {n: r.action for n, r in cache.vetted.items()} == {"odd-name.example": "block", "qwzxv.example": "block"}
    assert cache.vetted["qwzxv.example"].by == "alice"
    assert [(e["who"], e["name"], e["before"], e["after"], e["note"]) for e in store.audit] == [
        ("alice", "odd-name.example", "none", "block", "DGA-looking"),
        ("alice", "qwzxv.example", "none", "block", "DGA-looking")]
    assert store.queue == ["maybe.example"]
    assert any("block applied to 2" in s for s in _texts(at.success))
    at.button(key="vet_undo").click().run()
    assert not at.exception
    assert cache.vetted == {}
    assert sorted(store.queue) == ["maybe.example", "odd-name.example", "qwzxv.example"]
    assert [e["after"] for e in store.audit[2:]] == ["none", "none"]


def test_vetting_failure_per_name_goes_on(fakes):
    store, cache = fakes
    at = logged_in(page("vetting")).run()
    at.multiselect[0].set_value(["maybe.example"]).run()
    at.text_input(key="vet_extra").set_value("bad.example").run()
    at.button[0].click().run()
    assert not at.exception
    assert "maybe.example" in cache.vetted
    assert any("bad.example: not vetted" in e for e in _texts(at.error))


def test_models_page_lists_job_curves_and_report(fakes, monkeypatch, tmp_path):
    import types

    from dnsentinel.dashboard import data, training
    from dnsentinel.settings import get_settings

    registry = get_settings().model.registry_dir
    mdir = registry / "m1"
    mdir.mkdir(parents=True)
    (mdir / "history.jsonl").write_text("\n".join(json.dumps({"epoch": i, "loss": 1 / (i + 1), "val_loss": 1.1 / (i + 1),
                                                               "accuracy": 0.9, "val_accuracy": 0.88}) for i in range(3)) + "\n{\"epo")
    (mdir / "status.json").write_text(json.dumps({"state": "done", "epoch": 3, "epochs": 3}))
    (mdir / "metrics.json").write_text(json.dumps({"test": {"accuracy": 0.99, "precision": 0.98, "recall": 0.97, "f1": 0.975,
                                                            "confusion": [[90, 1], [2, 80]], "roc": {"fpr": [0, 0.1, 1], "tpr": [0, 0.9, 1]}},
                                                   "thresholds": {"block": 0.9, "allow": 0.2}}))
    (registry / training.JOBS_DIR).mkdir()
    (registry / training.JOBS_DIR / "m1.json").write_text(json.dumps(
        {"name": "m1", "pid": 999999, "by": "alice", "started_at": 1.0, "argv": [], "log": str(tmp_path / "none.log")}))
    promoted = []

    class Refused(Exception):
        pass

    def promote(version, force=False):
        if version == "worse" and not force:
            raise Refused("worse is worse than the current m0 on the quality gate: dga: malicious: 10.00% vs 50.00%")
        promoted.append(version)

    fake_reg = types.SimpleNamespace(list_models=lambda: [{"version": "m1"}, {"version": "m0"}, {"version": "worse"}],
                                     current_version=lambda: "m0", rollback=lambda: "m0")
    monkeypatch.setattr(data, "registry", lambda: fake_reg)
    monkeypatch.setattr(data, "gate", lambda: types.SimpleNamespace(promote=promote, GateRefused=Refused))
    at = logged_in(page("models"), user="bob").run()
    assert not at.exception
    assert any("state **done**" in m for m in _texts(at.markdown))
    assert len(at.get("vega_lite_chart")) >= 3  # loss, accuracy, ROC
    at.selectbox(key="cmp_a").set_value("m1").run()
    at.button(key="promote").click().run()
    assert promoted == ["m1"]
    store, _ = fakes
    assert store.audit[-1] | {"at": 0} == {"who": "bob", "name": "model:current", "before": "m0", "after": "m1",
                                           "note": "promote", "at": 0}
    audits = len(store.audit)
    at.selectbox(key="cmp_a").set_value("worse").run()
    at.button(key="promote").click().run()
    assert promoted == ["m1"] and len(store.audit) == audits  # refused by the gate: nothing changed
    assert any("quality gate" in e for e in _texts(at.error))
    at.checkbox(key="promote_force").check().run()
    at.button(key="promote").click().run()
    assert promoted == ["m1", "worse"] and store.audit[-1]["note"] == "promote (forced past the quality gate)"


def test_models_start_training_validates_name(fakes, monkeypatch):
    import types

    from dnsentinel.dashboard import data

    monkeypatch.setattr(data, "registry", lambda: types.SimpleNamespace(list_models=lambda: [], current_version=lambda: None))
    at = logged_in(page("models")).run()
    at.text_input(key="tr_name").set_value("../escape")
    at.button[0].click().run()
    assert not at.exception
    assert any("model name" in e for e in _texts(at.error))
