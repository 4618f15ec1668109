"""Roles, users, logins, sessions, audited actions and search escaping, without services.

The accounts run over the in-memory Redis of dash_fakes (tests/dashboard/test_dash_access_integration.py
runs the same classes on the real one).
"""

from __future__ import annotations

import os
import re
import stat
import time
import types

import pytest
from dash_fakes import FakeCache, FakeStore, MemoryRedis
from hypothesis import given
from hypothesis import strategies as st

from dnsentinel.dashboard import actions, audit, auth, store, training
from dnsentinel.dashboard.access import ROLES, Actor, Forbidden, allows, is_loopback, require
from dnsentinel.dashboard.sessions import SessionStore, load_secret
from dnsentinel.dashboard.users import UserError, UserStore
from dnsentinel.settings import DashboardSettings, Settings, TrainingCap
from dnsentinel.verdict_cache import es_schema

PASSWORD = "correct horse battery"
CAPS = {"admin": TrainingCap(max_epochs=10, max_sample_size=10_000, max_concurrent_jobs=1)}


def actor(role: str, name: str | None = None) -> Actor:
    return Actor(name or f"{role}-user", role, "192.0.2.7")


# -- roles ----------------------------------------------------------------------------------
def test_each_role_has_the_rights_of_the_ones_below():
    assert ROLES == ("viewer", "analyst", "admin")
    assert [allows(r, "read") for r in ROLES] == [True, True, True]
    assert [allows(r, "vet") for r in ROLES] == [False, True, True]
    assert [allows(r, "alert_status") for r in ROLES] == [False, True, True]
    for action in ("train", "promote", "rollback", "manage_users", "read_audit"):
        assert [allows(r, action) for r in ROLES] == [False, False, True], action
    assert not allows("root", "read")  # an unknown role has no right at all
    with pytest.raises(Forbidden, match=r"^bob \(viewer\) may not vet: that needs the analyst role$"):
        require(actor("viewer", "bob"), "vet")
    with pytest.raises(ValueError, match="role 'root'"):
        Actor("x", "root", "::1")  # type: ignore[arg-type]


def test_loopback_addresses():
    assert all(is_loopback(a) for a in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(a) for a in ("0.0.0.0", "::", "", None, "10.0.0.5", "dash.example"))


# -- every protected action refuses every role below it, changes nothing, audits the refusal --
@pytest.fixture
def world(tmp_path):
    redis = MemoryRedis()
    acc = auth.Accounts(UserStore(redis, "t", rounds=4), auth.LoginLimiter(redis, "t", DashboardSettings()),
                        SessionStore(redis, "t", b"k" * 32, 3600))
    acc.users.add("carol", PASSWORD, "viewer", "setup")
    promoted, rolled = [], []
    gate = types.SimpleNamespace(promote=lambda v, force=False: promoted.append(v))
    registry = types.SimpleNamespace(rollback=lambda: rolled.append(1) or "m0", current_version=lambda: "m0")
    return types.SimpleNamespace(store=FakeStore(), cache=FakeCache(), acc=acc, gate=gate, registry=registry,
                                 promoted=promoted, rolled=rolled, dir=tmp_path)


PROTECTED = {
    "vet": lambda w, a: actions.vet(a, w.cache, w.store, ["x.example"], "block", None),
    "vet_undo": lambda w, a: actions.undo_vet(a, w.cache, w.store, _bulk()),
    "alert_status": lambda w, a: actions.set_alert_status(a, w.store, "alert-1", "acknowledged"),
    "train": lambda w, a: actions.start_training(a, w.store, w.dir, training.JobRequest("m1", epochs=1), CAPS),
    "promote": lambda w, a: actions.promote(a, w.store, w.gate, "m1", "m0", False),
    "rollback": lambda w, a: actions.rollback(a, w.store, w.registry, "m1"),
    "add_user": lambda w, a: actions.add_user(a, w.store, w.acc, "dave", PASSWORD, "admin"),
    "remove_user": lambda w, a: actions.remove_user(a, w.store, w.acc, "carol"),
    "set_password": lambda w, a: actions.set_password(a, w.store, w.acc, "carol", "another long password"),
    "set_role": lambda w, a: actions.set_role(a, w.store, w.acc, "carol", "admin"),
}
NEEDS = {"vet": "analyst", "vet_undo": "analyst", "alert_status": "analyst"}


def _bulk():
    from dnsentinel.dashboard.vetting import BulkAction

    return BulkAction("block", "alice", None, before={"x.example": None})


def _state(w) -> tuple:
    return (dict(w.cache.vetted), list(w.store.queue), list(w.promoted), list(w.rolled),
            [u.public() for u in w.acc.users.all()], sorted(p.name for p in w.dir.iterdir()))


@pytest.mark.parametrize("name", PROTECTED)
def test_a_lower_role_is_refused_and_nothing_changes(world, name):
    needed = NEEDS.get(name, "admin")
    for role in ROLES[: ROLES.index(needed)]:
        before = _state(world)
        with pytest.raises(Forbidden, match=f"needs the {needed} role"):
            PROTECTED[name](world, actor(role))
        assert _state(world) == before
        denied = world.store.audit[-1]
        assert (denied["action"], denied["who"], denied["role"], denied["address"]) == ("denied", f"{role}-user", role, "192.0.2.7")


@pytest.mark.parametrize("name", [n for n in PROTECTED if n not in ("train", "alert_status")])  # tested on their own
def test_the_role_that_may_do_it_does_it_and_it_is_audited(world, name):
    PROTECTED[name](world, actor(NEEDS.get(name, "admin")))
    last = world.store.audit[-1]
    assert last["action"] == {"add_user": "user_add", "remove_user": "user_remove", "set_password": "user_passwd",
                              "set_role": "user_role"}.get(name, name)
    assert (last["role"], last["address"]) == (NEEDS.get(name, "admin"), "192.0.2.7")


def test_vetting_audit_entries_say_who_from_where(world):
    actions.vet(actor("analyst", "alice"), world.cache, world.store, ["a.example", "b.example"], "allow", "ok")
    assert [(e["who"], e["role"], e["address"], e["action"], e["name"], e["before"], e["after"]) for e in world.store.audit] == [
        ("alice", "analyst", "192.0.2.7", "vet", n, "none", "allow") for n in ("a.example", "b.example")]


def test_user_changes_end_sessions_and_audit_before_and_after(world):
    token, _ = world.acc.sessions.open("carol", "192.0.2.9")
    actions.set_role(actor("admin"), world.store, world.acc, "carol", "analyst")
    assert world.acc.sessions.resolve(token)[0] == "carol"  # a new role applies without logging out
    actions.set_password(actor("admin"), world.store, world.acc, "carol", "another long password")
    assert world.acc.sessions.resolve(token) is None
    actions.remove_user(actor("admin"), world.store, world.acc, "carol")
    assert [(e["action"], e["before"], e["after"]) for e in world.store.audit] == [
        ("user_role", "viewer", "analyst"), ("user_passwd", "analyst", "analyst"), ("user_remove", "analyst", "none")]
    assert world.acc.users.get("carol") is None


def test_an_analyst_acknowledges_an_alert(world, monkeypatch):
    from dnsentinel.dashboard import alerts

    calls = []
    monkeypatch.setattr(alerts, "set_status", lambda *args: calls.append(args) or "open")
    assert actions.set_alert_status(actor("analyst", "ann"), world.store, "alert-1", "acknowledged", "seen") == "open"
    assert calls == [(world.store.es, "fake-alerts", "alert-1", "acknowledged", "ann", "seen")]
    [entry] = [e for e in world.store.audit if e["action"] == "alert_status"]
    assert (entry["who"], entry["role"], entry["name"], entry["before"], entry["after"], entry["note"]) == (
        "ann", "analyst", "alert-1", "open", "acknowledged", "seen")


# -- training caps ------------------------------------------------------------------------------
def test_training_caps(world, monkeypatch):
    cap = CAPS["admin"]
    training.check_cap(training.JobRequest("ok", epochs=10, sample_size=10_000), cap, 0)
    with pytest.raises(ValueError, match="epochs 11 is over your role's cap of 10"):
        training.check_cap(training.JobRequest("m", epochs=11, sample_size=100), cap, 0)
    with pytest.raises(ValueError, match="sample size 50,000 is over your role's cap of 10,000"):
        training.check_cap(training.JobRequest("m", epochs=1, sample_size=50_000), cap, 0)
    with pytest.raises(ValueError, match="1 training job\\(s\\) already running"):
        training.check_cap(training.JobRequest("m", epochs=1, sample_size=100), cap, 1)
    monkeypatch.setattr(training, "running", lambda registry: ["busy"])
    with pytest.raises(ValueError, match="already running"):  # enforced by start itself, not only the form
        training.start(world.dir, training.JobRequest("m", epochs=1, sample_size=100), "root", cap=cap)
    with pytest.raises(ValueError, match="has no training cap"):
        actions.start_training(actor("admin"), world.store, world.dir, training.JobRequest("m"), {})
    assert not list(world.dir.iterdir())


def test_an_admin_starts_a_run_within_the_cap_and_it_is_audited(world, monkeypatch):
    import sys

    monkeypatch.setattr(training.JobRequest, "argv", lambda self: [sys.executable, "-c", "import time; time.sleep(30)"])
    job = actions.start_training(actor("admin", "root"), world.store, world.dir,
                                 training.JobRequest("m1", epochs=10, sample_size=10_000), CAPS)
    try:
        assert [j.name for j in training.running(world.dir)] == ["m1"]
        with pytest.raises(ValueError, match="already running; your role's cap is 1 at a time"):
            actions.start_training(actor("admin", "root"), world.store, world.dir,
                                   training.JobRequest("m2", epochs=1, sample_size=100), CAPS)
    finally:
        os.kill(job.pid, 15)
    assert [(e["who"], e["action"], e["name"], e["after"]) for e in world.store.audit] == [
        ("root", "train", "model:m1", "training")]


# -- users ----------------------------------------------------------------------------------------
def test_user_store_validates_and_keeps_bootstrap_admins_read_only():
    import bcrypt

    users = UserStore(MemoryRedis(), "t", {"root": bcrypt.hashpw(b"x" * 12, bcrypt.gensalt(4)).decode()}, rounds=4)
    assert users.any() and users.get("root").role == "admin" and users.get("root").source == "settings"
    for bad, needle in ((("-x", PASSWORD, "viewer"), "user name"), (("a b", PASSWORD, "viewer"), "user name"),
                        (("bob", "short", "viewer"), "at least 12"), (("bob", "é" * 40, "viewer"), "over 72 bytes"),
                        (("bob", PASSWORD, "root"), "role 'root'")):
        with pytest.raises(UserError, match=needle):
            users.add(*bad, by="t")
    bob = users.add("bob", PASSWORD, "analyst", "t")
    with pytest.raises(UserError, match="already exists"):
        users.add("bob", PASSWORD, "viewer", "t")
    assert "hash" not in bob.public() and PASSWORD not in repr(bob) and bob.hash not in repr(bob)
    assert [u.name for u in users.all()] == ["bob", "root"]
    for change in (lambda: users.remove("root", "t"), lambda: users.set_role("root", "viewer", "t")):
        with pytest.raises(UserError, match="bootstrap admin from the settings"):
            change()
    with pytest.raises(UserError, match="no user 'nobody'"):
        users.set_password("nobody", PASSWORD, "t")


# -- logging in -------------------------------------------------------------------------------------
def _accounts(tmp_path, **dashboard) -> auth.Accounts:
    settings = Settings(dashboard={"session_secret": "s" * 32, **dashboard}, stack={"state_dir": tmp_path})
    acc = auth.Accounts.from_settings(settings, MemoryRedis())
    acc.users.rounds = 4
    return acc


def test_demo_login_only_without_users_and_on_loopback(tmp_path):
    acc = _accounts(tmp_path)
    assert acc.authenticate(auth.DEMO_USER, auth.DEMO_PASSWORD, "127.0.0.1", "127.0.0.1").outcome == "ok"
    assert acc.authenticate(auth.DEMO_USER, auth.DEMO_PASSWORD, "10.0.0.9", "0.0.0.0").outcome == "wrong"
    assert acc.authenticate(auth.DEMO_USER, auth.DEMO_PASSWORD, "10.0.0.9", None).outcome == "wrong"
    acc.users.add("alice", PASSWORD, "viewer", "t")
    assert acc.authenticate(auth.DEMO_USER, auth.DEMO_PASSWORD, "127.0.0.1", "127.0.0.1").outcome == "wrong"
    ok = acc.authenticate(" alice ", PASSWORD, "127.0.0.1", "127.0.0.1")
    assert ok.outcome == "ok" and ok.user.role == "viewer"


def test_failed_logins_lock_the_name_then_the_address(tmp_path):
    acc = _accounts(tmp_path, login_max_failures=3, login_max_failures_per_address=5, login_lockout_s=600)
    acc.users.add("alice", PASSWORD, "analyst", "t")
    results = [acc.authenticate("alice", "nope", "192.0.2.1", "127.0.0.1") for _ in range(3)]
    assert [r.outcome for r in results] == ["wrong", "wrong", "locked"] and results[-1].tripped == ("user",)
    locked = acc.authenticate("alice", PASSWORD, "192.0.2.2", "127.0.0.1")  # the right password, from elsewhere
    assert locked.outcome == "locked" and 590 <= locked.retry_in_s <= 600 and locked.tripped == ()
    # one address guessing many names: locked after 5 failures in all, whatever the names
    outcomes = [acc.authenticate(f"user{i}", "nope", "192.0.2.1", "127.0.0.1") for i in range(2)]
    assert [o.tripped for o in outcomes] == [(), ("addr",)]
    acc.users.add("bob", PASSWORD, "viewer", "t")
    assert acc.authenticate("bob", PASSWORD, "192.0.2.1", "127.0.0.1").outcome == "locked"
    assert acc.authenticate("bob", PASSWORD, "192.0.2.3", "127.0.0.1").outcome == "ok"


def test_a_success_clears_the_count_and_a_lockout_ends(tmp_path):
    acc = _accounts(tmp_path, login_max_failures=2, login_lockout_s=1)
    acc.users.add("alice", PASSWORD, "analyst", "t")
    for _ in range(3):  # wrong, right, wrong: never two failures in a row
        assert acc.authenticate("alice", "nope", "192.0.2.1", "::1").outcome == "wrong"
        assert acc.authenticate("alice", PASSWORD, "192.0.2.1", "::1").outcome == "ok"
    acc.authenticate("alice", "nope", "192.0.2.1", "::1")
    assert acc.authenticate("alice", "nope", "192.0.2.1", "::1").outcome == "locked"
    time.sleep(1.1)
    assert acc.authenticate("alice", PASSWORD, "192.0.2.1", "::1").outcome == "ok"


def test_login_audits_failures_lockouts_and_successes(tmp_path):
    acc, store_ = _accounts(tmp_path, login_max_failures=2), FakeStore()
    acc.users.add("alice", PASSWORD, "analyst", "t")
    for password in ("nope", "nope", PASSWORD):
        result, token = actions.login(store_, acc, "alice", password, "192.0.2.1", "127.0.0.1")
        assert not token
    assert [(e["action"], e["name"], e["who"], e["address"]) for e in store_.audit] == [
        ("login_failed", "user:alice", "alice", "192.0.2.1"), ("login_failed", "user:alice", "alice", "192.0.2.1"),
        ("lockout", "user:alice", "alice", "192.0.2.1")]  # the attempt while locked is not audited
    acc.users.add("bob", PASSWORD, "analyst", "t")
    result, token = actions.login(store_, acc, "bob", PASSWORD, "192.0.2.1", "127.0.0.1")
    assert result.outcome == "ok" and acc.sessions.resolve(token)[0] == "bob"
    assert (store_.audit[-1]["action"], store_.audit[-1]["role"]) == ("login", "analyst")
    assert all(PASSWORD not in str(e) and "nope" not in str(e) for e in store_.audit)


def test_no_session_without_its_audit_entry(tmp_path):
    acc = _accounts(tmp_path)
    broken = types.SimpleNamespace(write_audit=lambda entries: (_ for _ in ()).throw(ConnectionError("ES down")))
    with pytest.raises(ConnectionError):
        actions.login(broken, acc, auth.DEMO_USER, auth.DEMO_PASSWORD, "127.0.0.1", "127.0.0.1")
    redis = acc.sessions.client
    assert [k for k in list(redis.data) if ":session:" in k and redis.get(k)] == []


# -- sessions -----------------------------------------------------------------------------------------
def test_session_tokens_are_signed_expire_and_end_everywhere():
    sessions = SessionStore(MemoryRedis(), "t", b"k" * 32, ttl_s=60)
    token, expires = sessions.open("alice", "192.0.2.1", now=1000.0)
    assert sessions.resolve(token, now=1001.0) == ("alice", expires) and expires == 1060
    sid, exp, sig = token.split(".")
    assert sessions.resolve(f"{sid}.{exp}.{'0' * len(sig)}", now=1001.0) is None  # forged signature
    assert sessions.resolve(f"{sid}.{int(exp) + 3600}.{sig}", now=1001.0) is None  # stretched expiry
    assert sessions.resolve(token, now=1061.0) is None
    other = SessionStore(sessions.client, "t", b"x" * 32, ttl_s=60)
    assert other.resolve(token, now=1001.0) is None  # another secret
    assert all(sessions.resolve(t) is None for t in ("", "a.b", "a.b.c.d", "x.notanumber.y"))
    sessions = SessionStore(MemoryRedis(), "t", b"k" * 32, ttl_s=60)
    live, _ = sessions.open("alice", "192.0.2.1")
    second, _ = sessions.open("alice", "192.0.2.2")
    assert sessions.close(live) == "alice" and sessions.resolve(live) is None and sessions.resolve(second)
    assert sessions.close_all("alice") == 1 and sessions.resolve(second) is None


def test_session_secret_is_generated_once_and_private(tmp_path):
    settings = Settings(stack={"state_dir": tmp_path})
    first = load_secret(settings)
    path = tmp_path / "dashboard" / "session.key"
    assert len(first) == 64 and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_secret(settings) == first
    assert load_secret(Settings(stack={"state_dir": tmp_path}, dashboard={"session_secret": "z" * 20})) == b"z" * 20


def test_current_drops_an_expired_session():
    from dnsentinel.dashboard.sessions import Session

    state = {auth.SESSION_KEY: Session("alice", time.time() + 60, "viewer")}
    assert auth.current(state).user == "alice"
    assert auth.current(state, now=time.time() + 61) is None and auth.SESSION_KEY not in state


# -- audit documents and searches ---------------------------------------------------------------------
def test_audit_entries_and_query():
    with pytest.raises(ValueError, match="audit action 'hack'"):
        audit.entry("hack", "x", "alice", "::1")
    q = audit.query(since_ms=5, who=" alice ", actions=("vet", "promote"), target="*.evil")
    assert q["bool"]["filter"] == [
        {"range": {es_schema.TIMESTAMP: {"gte": 5, "format": "epoch_millis"}}}, {"term": {es_schema.USER_NAME: "alice"}},
        {"terms": {es_schema.EVENT_ACTION: ["vet", "promote"]}},
        {"wildcard": {es_schema.AUDIT_TARGET: {"value": "*\\*.evil*", "case_insensitive": True}}}]
    assert audit.query() == {"bool": {"filter": []}}
    # an entry from before issue 17 (no action, role or address), in this version's field names
    row = audit.row({es_schema.TIMESTAMP: 1796140800000, es_schema.USER_NAME: "old", es_schema.AUDIT_TARGET: "x.example",
                     es_schema.AUDIT_BEFORE: "none", es_schema.AUDIT_AFTER: "block"})
    assert row["at"] == "2026-12-01T16:00:00+00:00" and row["action"] == "" and list(row) == list(audit.COLUMNS)


# -- search boxes: typed text is matched literally ---------------------------------------------------
def _es_wildcard(pattern: str) -> re.Pattern:
    """Elasticsearch's wildcard syntax (``\\`` escapes, ``*`` any run, ``?`` one character) as a regex."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "*" else "." if c == "?" else re.escape(c))
        i += 1
    return re.compile("".join(out), re.S)


@given(typed=st.text(alphabet=st.sampled_from("ab.*?\\-é "), max_size=12),
       names=st.lists(st.text(alphabet=st.sampled_from("ab.*?\\-é"), max_size=12), max_size=8))
def test_search_text_matches_names_containing_it_literally(typed, names):
    pattern = store.contains("name", typed)["wildcard"]["name"]["value"]
    matcher = _es_wildcard(pattern)
    for name in names:
        assert bool(matcher.fullmatch(name.lower())) == (typed.strip().lower() in name.lower())


@given(st.text())
def test_escaping_any_text_round_trips(text):
    escaped = store.escape_wildcard(text)
    assert re.sub(r"\\(.)", r"\1", escaped, flags=re.S) == text
    assert not re.search(r"(?<!\\)(?:\\\\)*[*?]", escaped)  # no unescaped wildcard survives


def test_user_commands_never_touch_the_session_secret(tmp_path):
    acc = auth.Accounts.from_settings(Settings(stack={"state_dir": tmp_path}), MemoryRedis())
    acc.users.rounds = 4
    acc.users.add("alice", PASSWORD, "viewer", "t")
    acc.users.all()
    assert not (tmp_path / "dashboard").exists()  # generated only when a session is first signed
    acc.sessions.open("alice", "::1")
    assert (tmp_path / "dashboard" / "session.key").exists()
    with pytest.raises(ValueError, match="at least 16 bytes"):
        SessionStore(MemoryRedis(), "t", b"short", 60).open("alice", "::1")
