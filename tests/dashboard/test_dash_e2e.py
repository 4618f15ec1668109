"""End-to-end: the dashboard in headless Chromium against the real Elasticsearch and Redis.

The app runs as ``dnsentinel dashboard`` would run it (streamlit run, headless)
on a free port, with its own index prefix (a generated data set), its own Redis
key prefix and a temporary model registry, so it never touches the shared live
data. Screenshots go to test-artifacts/dashboard/.

Tests 1-4 (and 2b, the Alerts page) run with no user configured (the demo login, loopback only); test 5 adds a
viewer, an analyst and an admin to Redis, which ends the demo login at once, and shows
what each role may and may not do; 6 and 7 cover sessions across reloads and lockouts.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from dnsentinel.dashboard import auth, sample_data
from dnsentinel.dashboard.cli import streamlit_argv
from dnsentinel.dashboard.users import UserStore
from dnsentinel.settings import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "dashboard"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHAPE = sample_data.Shape(docs=4000, names=400, clients=50, minutes=600)
PASSWORD = "e2e password of 20c"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app(stack, tmp_path_factory):
    import redis
    from elasticsearch import Elasticsearch

    from dnsentinel.verdict_cache.cache import VerdictCache

    es = Elasticsearch(**stack.elasticsearch.client_kwargs())
    es_prefix, redis_prefix = f"dashe2e-{uuid.uuid4().hex[:8]}", f"dashe2e-{uuid.uuid4().hex[:8]}"
    sample_data.load(es, es_prefix, SHAPE)
    registry = tmp_path_factory.mktemp("registry")
    port = _free_port()
    env = {**os.environ, "DNSENTINEL_ELASTICSEARCH__INDEX_PREFIX": es_prefix, "DNSENTINEL_REDIS__KEY_PREFIX": redis_prefix,
           "DNSENTINEL_MODEL__REGISTRY_DIR": str(registry), "DNSENTINEL_DASHBOARD__USERS": "{}"}
    log = open(tmp_path_factory.mktemp("logs") / "streamlit.log", "wb")
    proc = subprocess.Popen(streamlit_argv(port, "127.0.0.1"), env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"streamlit did not come up on {url}: see {log.name}")
            time.sleep(0.5)
    client = redis.Redis.from_url(stack.redis.url, **stack.redis.client_kwargs())
    yield {"url": url, "es": es, "es_prefix": es_prefix, "cache": VerdictCache(client, prefix=redis_prefix),
           "registry": registry, "users": UserStore(client, redis_prefix, rounds=4)}
    proc.terminate()
    proc.wait(10)
    sample_data.drop(es, es_prefix)
    for key in client.scan_iter(f"{redis_prefix}:*"):
        client.delete(key)


@pytest.fixture(scope="module")
def browser(app):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _new_page(browser, cookies=()):
    context = browser.new_context(viewport={"width": 1500, "height": 1100})
    context.add_cookies(list(cookies))
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    return pg


@pytest.fixture(scope="module")
def page(browser):
    return _new_page(browser)


# Every text wait takes the first match: while Streamlit reruns a page, the old element can still be
# on screen beside the new one for a moment, and a strict locator then fails on two matches.
def _shot(page, name: str) -> None:
    page.wait_for_timeout(800)  # let charts finish drawing
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _goto(page, title: str) -> None:
    page.get_by_role("link", name=title).click()
    page.get_by_role("heading", name=title).first.wait_for()


def _top_malicious(app) -> str:
    from datetime import timedelta

    from dnsentinel.dashboard import timerange
    from dnsentinel.dashboard.store import BLOCKED_DECISIONS, Store

    return Store(app["es"], app["es_prefix"]).top_names(timerange.last(timedelta(days=1)), BLOCKED_DECISIONS).iloc[0]["name"]


def _login(page, user: str, password: str) -> None:
    page.get_by_label("User", exact=True).fill(user)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()


def _click_until(page, button, text: str, tries: int = 3) -> None:
    """Click ``button`` until ``text`` shows: on a loaded machine a Streamlit rerun can replace the
    button between finding it and the click, and that click is lost (nothing happens, no error)."""
    for attempt in range(tries):
        button.click()
        try:
            page.get_by_text(text).first.wait_for(timeout=20_000)
            return
        except Exception:
            if attempt == tries - 1:
                raise


def _logout(page) -> None:
    page.get_by_role("button", name="Log out", exact=True).click()
    page.get_by_role("heading", name="dnsentinel — analyst login").first.wait_for()


def test_1_login_and_overview(app, page):
    page.goto(app["url"])
    page.get_by_text("the demo login from the README works").first.wait_for()
    shown = page.get_by_test_id("stMain").inner_text()
    assert auth.DEMO_PASSWORD not in shown.replace("dnsentinel — analyst login", "").replace("dnsentinel users add", "")
    _login(page, "analyst", "wrong")
    page.get_by_text("Unknown user or wrong password").first.wait_for()
    _login(page, auth.DEMO_USER, auth.DEMO_PASSWORD)
    page.get_by_role("heading", name="Overview").first.wait_for()
    page.get_by_text("Logged in as analyst (admin)").first.wait_for()
    page.wait_for_timeout(500)  # the cookie is written by the first run after the login
    page.reload()  # the session survives a reload: no login form
    page.get_by_role("heading", name="Overview").first.wait_for()
    page.get_by_text("Top 20 malicious names").first.wait_for()
    page.locator(".vega-embed").first.wait_for()
    queries = page.get_by_test_id("stMetric").first.inner_text()
    assert int(re.sub(r"\D", "", queries.split("\n")[-1])) > 0
    assert page.locator(".vega-embed").count() >= 3  # timeline and the two top-20 charts
    _shot(page, "1-overview")


def test_2_domain(app, page):
    name = _top_malicious(app)
    _goto(page, "Domain investigation")
    page.get_by_label("Domain name", exact=True).fill(name)
    page.get_by_label("Domain name", exact=True).press("Enter")
    page.get_by_text("Clients that queried it").first.wait_for()
    assert page.get_by_test_id("stMetricValue").filter(has_text="malicious").count() == 1
    _shot(page, "2-domain")


def test_2b_alerts_page_shows_and_acknowledges_an_alert(app, page):
    from dnsentinel.verdict_cache.alerts import Alert
    from dnsentinel.verdict_cache.es_schema import index_name

    now = int(time.time() * 1000)
    alert = Alert("e2e-alert-1", "tunnel", "high", "187 unique names under pirate.sea in 60 s from 1 client(s)",
                  now - 120_000, now - 60_000, 187, ["paeachaa.pirate.sea", "laegpumiplhhpz12.pirate.sea"], now,
                  client="10.0.2.30", domain="pirate.sea", clients=["10.0.2.30"],
                  details={"unique_subdomains": 187.0, "payload_qtype_share": 1.0})
    index = index_name("alerts", prefix=app["es_prefix"])
    app["es"].index(index=index, id=alert.id, document=alert.to_es(), refresh="wait_for")
    _goto(page, "Alerts")
    page.get_by_text("187 unique names under pirate.sea").first.wait_for()
    _shot(page, "2b-alerts")
    form = page.get_by_test_id("stForm")
    form.get_by_text("acknowledged", exact=True).click()
    form.get_by_label("Note").fill("e2e: looking into it")
    form.get_by_role("button", name="Save").click()
    page.get_by_text("open → acknowledged").first.wait_for()
    doc = app["es"].get(index=index, id=alert.id)["_source"]
    assert (doc["dnsentinel.alert.status"], doc["dnsentinel.alert.note"]) == ("acknowledged", "e2e: looking into it")


def test_3_vet_a_name_reaches_redis(app, page):
    _goto(page, "Vetting")
    page.get_by_text("names awaiting a decision").first.wait_for()
    first = page.get_by_test_id("stDataFrame").first
    first.wait_for()
    from dnsentinel.dashboard.store import Store

    name = Store(app["es"], app["es_prefix"]).vetting_queue("score", True, 0, 50).rows.iloc[0]["name"]
    box = page.get_by_test_id("stMultiSelect")
    box.locator("input").fill(name)
    box.locator("input").press("Enter")
    page.get_by_text("block", exact=True).click()
    page.get_by_label("Note (optional)", exact=True).fill("e2e test")
    page.get_by_role("button", name="Apply to 1 selected").click()
    page.get_by_text("block applied to 1 name(s) by analyst").first.wait_for()
    deadline = time.time() + 1.0
    while app["cache"].decide_many([name])[name] != "block" and time.time() < deadline:
        time.sleep(0.05)
    assert app["cache"].decide_many([name])[name] == "block"
    assert app["cache"].list_vetted()[name].by == "analyst"
    _shot(page, "3-vetting")


def test_4_tiny_training_job_shows_curves(app, page):
    import json

    _goto(page, "Models")
    page.locator("summary", has_text="Start training").click()
    page.get_by_label("Model name", exact=True).fill("e2e-tiny")
    # Typed into the selectbox's search input, then Enter: with today's Debian Chromium a click on
    # the box focuses it without opening the option list, so "click the option" timed out.
    arch = page.get_by_test_id("stSelectbox").filter(has_text="Architecture")
    arch.locator("input").fill("mlbridge-cnn")
    page.keyboard.press("Enter")
    page.get_by_label("Epochs", exact=True).fill("2")
    page.get_by_label("Batch size", exact=True).fill("64")
    page.get_by_label("Sample size", exact=True).fill("2000")
    page.get_by_test_id("stBaseButton-secondaryFormSubmit").filter(has_text="Start training").click()
    page.get_by_text("Training e2e-tiny started").first.wait_for()
    status = Path(app["registry"]) / "e2e-tiny" / "status.json"
    deadline = time.time() + 400
    while page.get_by_text("Loss", exact=True).count() == 0:  # first epoch in history.jsonl, drawn live
        state = json.loads(status.read_text()) if status.exists() else {}
        if state.get("state") == "failed":
            _shot(page, "4-training-failed")
            pytest.fail(f"the training job failed: {state.get('error')}")
        assert time.time() < deadline, "no training curves within 400 s"
        time.sleep(2)
    _shot(page, "4-training-curves")
    assert (Path(app["registry"]) / "e2e-tiny" / "history.jsonl").read_text().strip()
    assert json.loads(status.read_text())["arch"] == "mlbridge-cnn"  # the architecture picked in the form


def _vet(page, name: str, expect: str) -> None:
    """Block ``name`` (typed, so it need not be in the queue) on the Vetting page; wait for ``expect``."""
    page.get_by_text("names awaiting a decision").first.wait_for()
    field = page.get_by_label("…or a name that is not in the queue", exact=True)
    field.fill(name)
    field.press("Enter")
    page.get_by_test_id("stRadioGroup").get_by_text("block", exact=True).click()
    page.get_by_role("button", name="Apply to 1 selected").click()
    page.get_by_text(expect).first.wait_for()


def test_5_each_role_may_do_what_it_may_and_no_more(app, page):
    users = app["users"]
    users.add("vic", PASSWORD, "viewer", "e2e")
    users.add("ann", PASSWORD, "analyst", "e2e")
    users.add("ada", PASSWORD, "admin", "e2e")
    page.reload()  # users exist now: the demo login, and its session, are gone
    page.get_by_role("heading", name="dnsentinel — analyst login").first.wait_for()
    assert page.get_by_text("demo login").count() == 0
    _login(page, auth.DEMO_USER, auth.DEMO_PASSWORD)
    page.get_by_text("Unknown user or wrong password").first.wait_for()

    _login(page, "vic", PASSWORD)  # viewer: reads everything, changes nothing
    page.get_by_text("Logged in as vic (viewer)").first.wait_for()
    assert page.get_by_role("link", name="Audit").count() == 0 and page.get_by_role("link", name="Users").count() == 0
    _goto(page, "Vetting")
    page.get_by_text("Vet needs the analyst role; you are viewer.").first.wait_for()
    _vet(page, "viewer-tried.example", "Refused: vic (viewer) may not vet")
    assert "viewer-tried.example" not in app["cache"].list_vetted()
    _shot(page, "5-viewer-refused-vetting")
    _logout(page)

    _login(page, "ann", PASSWORD)  # analyst: vets, but neither trains nor manages
    _goto(page, "Vetting")
    _vet(page, "analyst-did.example", "block applied to 1 name(s) by ann")
    assert app["cache"].list_vetted()["analyst-did.example"].by == "ann"
    _goto(page, "Models")
    page.locator("summary", has_text="Start training").click()
    page.get_by_text("Train needs the admin role; you are analyst.").first.wait_for()
    _click_until(page, page.get_by_test_id("stBaseButton-secondaryFormSubmit").filter(has_text="Start training"),
                 "ann (analyst) may not train: that needs the admin role")
    _shot(page, "5-analyst-refused-training")
    _goto(page, "Vetting")
    page.get_by_text("names awaiting a decision").first.wait_for()
    users.set_role("ann", "viewer", "e2e")  # demoted while the page is open: the server refuses the click
    _vet(page, "demoted-tried.example", "Refused: ann (viewer) may not vet")
    assert "demoted-tried.example" not in app["cache"].list_vetted()
    _shot(page, "5-analyst-demoted-refused")
    _logout(page)

    _login(page, "ada", PASSWORD)  # admin: the audit trail and the users
    _goto(page, "Users")
    page.get_by_text("Bootstrap admins from the settings").first.wait_for()
    _goto(page, "Audit")
    page.get_by_text("entries, newest first").first.wait_for()
    _shot(page, "5-admin-audit")
    from dnsentinel.dashboard import audit

    trail = audit.search(app["es"], app["es_prefix"])
    assert {("vic", "denied"), ("ann", "vet"), ("ann", "denied"), ("analyst", "login_failed"), ("ada", "login")} <= {
        (e["who"], e["action"]) for e in trail}
    assert all(e["address"] == "127.0.0.1" for e in trail if e["action"] != "user_add")


def test_6_a_session_survives_reloads_and_a_logout_ends_it_everywhere(app, page, browser):
    page.reload()
    page.get_by_text("Logged in as ada (admin)").first.wait_for()
    other = _new_page(browser, page.context.cookies())  # another window with the same session
    other.goto(app["url"])
    other.get_by_text("Logged in as ada (admin)").first.wait_for()
    _logout(page)
    other.reload()
    other.get_by_role("heading", name="dnsentinel — analyst login").first.wait_for()
    other.context.close()


def test_7_repeated_failures_lock_a_user_out(app, page):
    from dnsentinel.dashboard import audit

    def failures() -> int:
        return len(audit.search(app["es"], app["es_prefix"], who="ada", actions=("login_failed",)))

    for attempt in range(1, 6):
        _login(page, "ada", "not the password")
        deadline = time.time() + 30
        while failures() < attempt:  # one audited failure per attempt: the next one waits for it
            assert time.time() < deadline, f"attempt {attempt} was not audited"
            time.sleep(0.2)
    page.get_by_text("Too many failed logins").first.wait_for()
    _login(page, "ada", PASSWORD)  # even the right password, while locked
    page.get_by_text("Too many failed logins").first.wait_for()
    assert page.get_by_text("Logged in as").count() == 0
    _shot(page, "7-lockout")
