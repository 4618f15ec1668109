"""AppTest runs of every page against fakes: page logic, not services."""

from __future__ import annotations

import json

from conftest import APP_DIR, logged_in, page
from dnsentinel.dashboard import auth
from dnsentinel.settings import get_settings
from dnsentinel.verdict_cache.es_schema import AUDIT_TARGET
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
    assert _texts(at.error) == ["Unknown user or wrong password."]
    at.text_input[0].set_value("analyst")
    at.text_input[1].set_value("dnsentinel")
    at.button[0].click().run()
    assert not at.exception
    assert "Logged in as **analyst** (admin)" in _texts(at.sidebar.markdown)  # the demo login has every right
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


def _an_alert(store, kind="dga_host", client="10.0.0.7"):
    from dnsentinel.verdict_cache.alerts import Alert

    alert = Alert("a1", kind, "high", f"{client} resolved names under 20 suspicious domains", 1_795_392_000_000,
                  1_795_392_050_000, 20, ["q8c0x2h1vz3kd.com"], 1_795_392_070_000, client=client,
                  details={"distinct_domains": 20.0}, promoted=["q8c0x2h1vz3kd.com"])
    store.es.alerts["a1"] = alert.to_es()
    return alert


def test_alerts_page_lists_and_an_analyst_acknowledges(fakes):
    store, _ = fakes
    _an_alert(store)
    at = logged_in(page("alerts"), user="ann", role="analyst").run()
    assert not at.exception
    assert at.dataframe[0].value["kind"].tolist() == ["dga_host"]
    assert any("Made malicious by this alert" in w for w in _texts(at.warning))
    at.radio(key="al_new").set_value("acknowledged")
    at.text_input(key="al_note").set_value("looking")
    at.button(key="al_save").click().run()
    assert not at.exception
    assert store.es.alerts["a1"]["dnsentinel.alert.status"] == "acknowledged"
    assert [(e["action"], e["who"], e["before"], e["after"]) for e in store.audit] == [
        ("alert_status", "ann", "open", "acknowledged")]


def test_a_viewer_is_refused_an_alert_status_change(fakes):
    store, _ = fakes
    _an_alert(store)
    at = logged_in(page("alerts"), user="vic", role="viewer").run()
    at.radio(key="al_new").set_value("closed")
    at.button(key="al_save").click().run()
    assert any("Refused" in e for e in _texts(at.error))
    assert store.es.alerts["a1"]["dnsentinel.alert.status"] == "open"
    assert [e["action"] for e in store.audit] == ["denied"]


def test_client_page_shows_the_hosts_alerts(fakes):
    store, _ = fakes
    _an_alert(store)
    at = logged_in(page("client")).run()
    at.text_input(key="cl_addr").set_value("10.0.0.7").run()
    assert any("high dga_host" in w for w in _texts(at.warning))


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
    assert store.audit[-1] == {"who": "bob", "role": "admin", "address": "127.0.0.1", "action": "promote",
                               "name": "model:current", "before": "m0", "after": "m1", "note": "promote", "at": 0}
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


# -- roles on the pages -------------------------------------------------------------------------
PASSWORD = "correct horse battery"


def _app():
    return AppTest.from_file(str(APP_DIR / "app.py"), default_timeout=30)


def _log_in(at, user: str, password: str):
    at.text_input[0].set_value(user)
    at.text_input[1].set_value(password)
    at.button[0].click().run()
    return at


def test_a_viewer_reads_the_queue_and_is_refused_a_decision(fakes):
    store, cache = fakes
    at = logged_in(page("vetting"), user="vic", role="viewer").run()
    assert "Vet needs the analyst role; you are viewer." in _texts(at.info) and len(at.dataframe) == 1
    at.multiselect[0].set_value(["qwzxv.example"]).run()
    at.button(key="vet_apply").click().run()
    assert "Refused: vic (viewer) may not vet: that needs the analyst role" in _texts(at.error)
    assert cache.vetted == {} and [(e["who"], e["action"], e["name"]) for e in store.audit] == [("vic", "denied", "vet")]


def test_an_analyst_is_refused_training_promotion_and_rollback(fakes, monkeypatch):
    import types

    from dnsentinel.dashboard import data, training

    store, _ = fakes
    promoted, rolled = [], []
    monkeypatch.setattr(data, "registry", lambda: types.SimpleNamespace(
        list_models=lambda: [{"version": "m1"}, {"version": "m0"}], current_version=lambda: "m0",
        rollback=lambda: rolled.append(1)))
    monkeypatch.setattr(data, "gate", lambda: types.SimpleNamespace(promote=lambda v, force=False: promoted.append(v),
                                                                     GateRefused=RuntimeError))
    at = logged_in(page("models"), user="ann", role="analyst").run()
    assert {"Train needs the admin role; you are analyst.",
            "Promote needs the admin role; you are analyst. Rolling back too."} <= set(_texts(at.info))
    at.selectbox(key="cmp_a").set_value("m1").run()
    at.button(key="promote").click().run()
    at.button(key="rollback").click().run()
    at.button(key="FormSubmitter:train_form-Start training").click().run()
    assert not at.exception and promoted == [] and rolled == []
    assert not (get_settings().model.registry_dir / training.JOBS_DIR).exists()
    assert [(e["who"], e["action"], e["name"]) for e in store.audit] == [
        ("ann", "denied", "promote"), ("ann", "denied", "rollback"), ("ann", "denied", "train")]
    assert all("may not" in e for e in _texts(at.error))


def test_the_audit_page_is_for_admins(fakes):
    store, _ = fakes
    store.audit.append({"at": 1796140800000, "who": "alice", "role": "analyst", "address": "192.0.2.1", "action": "vet",
                        "name": "x.example", "before": "none", "after": "block", "note": ""})
    viewer = logged_in(page("audit"), role="analyst").run()
    assert _texts(viewer.error) == ["Read audit needs the admin role; you are analyst."] and not viewer.title
    admin = logged_in(page("audit")).run()
    assert not admin.exception
    shown = admin.dataframe[0].value
    assert shown.iloc[0][["who", "action", "name", "after"]].tolist() == ["alice", "vet", "x.example", "block"]
    admin.text_input(key="au_target").set_value("x*").run()
    assert store.es.requests[-1]["query"]["bool"]["filter"][-1] == {
        "wildcard": {AUDIT_TARGET: {"value": "*x\\**", "case_insensitive": True}}}


def test_admins_manage_users_on_the_users_page(fakes, accounts):
    store, _ = fakes
    assert _texts(logged_in(page("users"), role="analyst").run().error) == [
        "Manage users needs the admin role; you are analyst."]
    at = logged_in(page("users"), user="root").run()
    at.text_input(key="ua_name").set_value("dave")
    at.text_input(key="ua_pw").set_value(PASSWORD)
    at.text_input(key="ua_pw2").set_value(PASSWORD)
    at.selectbox(key="ua_role").set_value("analyst")
    at.button[0].click().run()
    assert not at.exception and accounts.users.get("dave").role == "analyst"
    at.selectbox(key="uc_role").set_value("viewer")
    at.button(key="uc_set_role").click().run()
    assert accounts.users.get("dave").role == "viewer"
    assert at.button(key="uc_remove").disabled  # until confirmed
    at.checkbox(key="uc_sure").check().run()
    at.button(key="uc_remove").click().run()
    assert accounts.users.get("dave") is None
    assert [(e["who"], e["action"], e["name"], e["before"], e["after"]) for e in store.audit] == [
        ("root", "user_add", "user:dave", "none", "analyst"), ("root", "user_role", "user:dave", "analyst", "viewer"),
        ("root", "user_remove", "user:dave", "viewer", "none")]


def test_login_page_shows_no_password_and_no_demo_beyond_loopback(fakes, monkeypatch):
    from dnsentinel.dashboard import guard

    at = _app().run()
    shown = " ".join(_texts(at.info) + _texts(at.markdown) + _texts(at.caption))
    assert "demo login" in shown and auth.DEMO_PASSWORD not in shown.replace("dnsentinel users add", "")
    monkeypatch.setattr(guard, "listen_address", lambda: "0.0.0.0")
    at = _log_in(_app().run(), auth.DEMO_USER, auth.DEMO_PASSWORD)
    assert any("nobody can log in" in e and "dnsentinel users add" in e for e in _texts(at.error))
    assert "Unknown user or wrong password." in _texts(at.error)


def test_repeated_failures_lock_the_login(fakes, accounts):
    store, _ = fakes
    accounts.users.add("alice", PASSWORD, "analyst", "t")
    at = _app().run()
    for _ in range(get_settings().dashboard.login_max_failures):
        _log_in(at, "alice", "wrong password!")
    assert _texts(at.error) == ["Too many failed logins: try again in 15 min."]
    _log_in(at, "alice", PASSWORD)
    assert _texts(at.title) == ["dnsentinel — analyst login"]
    assert [e["action"] for e in store.audit][-2:] == ["login_failed", "lockout"]


RESOLVE = """
import streamlit as st
from dnsentinel.dashboard import guard
session = guard.resolve()
st.markdown(f"{session.user} {session.role}" if session else "nobody")
"""


def test_each_run_reads_the_session_and_role_again(fakes, accounts):
    """What ``app.py`` does first on every run (AppTest runs a page of pages/ without its entry script)."""
    accounts.users.add("alice", PASSWORD, "analyst", "t")
    token, _ = accounts.sessions.open("alice", "127.0.0.1")
    at = AppTest.from_string(RESOLVE, default_timeout=30)
    at.session_state["dnsentinel_token"] = token
    assert _texts(at.run().markdown) == ["alice analyst"]
    accounts.users.set_role("alice", "viewer", "admin")
    assert _texts(at.run().markdown) == ["alice viewer"]
    accounts.sessions.close(token)  # a logout in another tab or instance
    assert _texts(at.run().markdown) == ["nobody"]
    at.session_state["dnsentinel_token"] = accounts.sessions.open("alice", "127.0.0.1")[0]
    accounts.users.remove("alice", "admin")
    assert _texts(at.run().markdown) == ["nobody"]  # a removed user's session ends
    at.session_state["dnsentinel_token"] = accounts.sessions.open(auth.DEMO_USER, "127.0.0.1")[0]
    assert _texts(at.run().markdown) == ["analyst admin"]  # the demo login, while no user exists
    accounts.users.add("bob", PASSWORD, "viewer", "t")
    assert _texts(at.run().markdown) == ["nobody"]  # … and not a moment longer
