"""The cluster profile's Elasticsearch: 3 nodes, TLS on HTTP and transport, file-realm users.

Runs against the nodes deploy/cluster/elasticsearch.sh starts (it starts them when they are not
running, and leaves them running, like the rest of the profile). Each component talks to the
cluster as its own user, through its own code: the worker's user installs the index templates
(verdict_cache/es_schema.py) with one replica and writes; the dashboard's user reads and makes
the writes an analyst makes (audit, vetting status, alert status), and nothing more. Expected
failures (wrong password, untrusted CA) come back as one-line ServiceUnavailable errors.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from dnsentinel.cli.cluster import es as ces
from dnsentinel.errors import ServiceUnavailable
from dnsentinel.settings import REPO_ROOT, ElasticsearchSettings, Settings, get_settings
from dnsentinel.verdict_cache import es_schema as S

pytestmark = [pytest.mark.cluster, pytest.mark.integration]

ES_SH = REPO_ROOT / "deploy" / "cluster" / "elasticsearch.sh"


@pytest.fixture(scope="module")
def base() -> Settings:
    """Settings as the scripts see them (state dir, hence the cluster dir), with the nodes up."""
    run = subprocess.run([str(ES_SH), "start"], capture_output=True, text=True, timeout=1500)
    if run.returncode != 0:
        errors = [line for line in run.stderr.splitlines() if "error:" in line or "hint:" in line]
        pytest.fail("deploy/cluster/elasticsearch.sh start failed: " + " | ".join(errors or [run.stderr[-800:]]))
    return get_settings()


def _as(base: Settings, user: str) -> ElasticsearchSettings:
    return ces.es_settings(base, user)


@pytest.fixture(scope="module")
def prefix(base: Settings, monkeypatch_module: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh index prefix under ``dnsentinel`` (the roles' patterns), templates with one replica."""
    p = f"dnsentinel-estest{uuid.uuid4().hex[:6]}"
    monkeypatch_module.setenv("DNSENTINEL_ELASTICSEARCH__REPLICAS", str(ces.REPLICAS))
    get_settings.cache_clear()
    yield p
    with ces.client(_as(base, "admin"), request_timeout=60) as admin:
        S.drop_prefix(admin, prefix=p)
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_three_nodes_green_and_status_lines(base: Settings) -> None:
    found = ces.health(_as(base, "admin"), wait_for="green", timeout_s=120)
    assert found["status"] == "green" and found["number_of_nodes"] == 3
    run = subprocess.run([str(ES_SH), "status"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = [line.split() for line in run.stdout.splitlines()]
    assert [r[0] for r in rows] == ["es-1", "es-2", "es-3"]
    assert [r[1] for r in rows] == ["127.0.0.1:19200", "127.0.0.1:19201", "127.0.0.1:19202"]
    assert all(r[2] == "healthy" and "heap" in r and "green" in " ".join(r) for r in rows)


def test_each_user_logs_in_with_its_role(base: Settings) -> None:
    lines = ces.check(base)
    assert lines[0].endswith("green, 3 nodes")
    assert {line.split()[1].rstrip(":") for line in lines[1:]} == set(ces.USERS)


def test_worker_installs_templates_and_writes_replicated_indices(base: Settings, prefix: str) -> None:
    day = int(time.time() * 1000)
    with ces.client(_as(base, "worker"), request_timeout=60) as worker:
        S.ensure_templates(worker, prefix=prefix)
        template = worker.indices.get_index_template(name=S.template_name("verdicts", prefix=prefix))
        settings = template["index_templates"][0]["index_template"]["template"]["settings"]["index"]
        assert settings["number_of_replicas"] == str(ces.REPLICAS)
        # An undated index (made by ensure_templates) and a dated one (made on the first write).
        worker.index(index=S.index_name("verdicts", prefix=prefix), id="evil.example",
                     document={S.EVENT_KIND: "enrichment", S.Q_NAME: "evil.example", S.SCORE: 0.99}, refresh="wait_for")
        dated = S.index_name("activity", day, prefix=prefix)
        worker.index(index=dated, document={S.EVENT_KIND: "metric", S.TIMESTAMP: day, S.Q_NAME: "evil.example",
                                            S.COUNT: 3}, refresh="wait_for")
        for index in (S.index_name("verdicts", prefix=prefix), dated):
            assert worker.cluster.health(index=index, wait_for_status="green", timeout="120s")["status"] == "green"
            copies = ces.shard_copies(worker, index)[0]
            assert sorted(kind for _, kind in copies) == ["p", "r"]
            assert len({node for node, _ in copies}) == 2  # primary and replica on two different nodes


def test_dashboard_reads_and_writes_only_what_an_analyst_writes(base: Settings, prefix: str) -> None:
    from elasticsearch import AuthorizationException

    from dnsentinel.dashboard import alerts, audit
    from dnsentinel.dashboard.store import Store

    with ces.client(_as(base, "worker"), request_timeout=60) as worker:
        S.ensure_templates(worker, prefix=prefix)
        worker.index(index=S.index_name("vetting", prefix=prefix), id="odd.example",
                     document={S.EVENT_KIND: "state", S.Q_NAME: "odd.example", S.STATUS: "pending"}, refresh="wait_for")
        worker.index(index=S.index_name("alerts", prefix=prefix), id="a1",
                     document={S.ALERT_ID: "a1", S.ALERT_STATUS: "open", S.TIMESTAMP: int(time.time() * 1000)},
                     refresh="wait_for")
    dash_settings = _as(base, "dashboard")
    with ces.client(dash_settings, request_timeout=60) as dash:
        assert dash.search(index=f"{prefix}-*", query={"match_all": {}})["hits"]["total"]["value"] >= 2
        # The dashboard's own writes, through its own code.
        audit.ensure_index(dash, prefix)
        store = Store(dash, prefix)
        store.write_audit([audit.entry("vet", "odd.example", "alice", "127.0.0.1", role="analyst",
                                       before="pending", after="benign")])
        store.mark_vetting(["odd.example"], "benign")
        assert alerts.set_status(dash, S.index_name("alerts", prefix=prefix), "a1", "acknowledged", "alice") == "open"
        assert dash.get(index=S.index_name("vetting", prefix=prefix), id="odd.example")["_source"][S.STATUS] == "benign"
        # ...and nothing else: no templates, no worker documents, no deletes.
        refused = [
            lambda: dash.indices.put_index_template(name=f"{prefix}-evil", index_patterns=[f"{prefix}-evil"]),
            lambda: dash.index(index=S.index_name("verdicts", prefix=prefix), id="x.example",
                               document={S.Q_NAME: "x.example"}),
            lambda: dash.delete(index=S.index_name("alerts", prefix=prefix), id="a1"),
            lambda: dash.indices.delete(index=S.index_name("audit", prefix=prefix)),
        ]
        for call in refused:
            with pytest.raises(AuthorizationException) as caught:
                call()
            message = str(dash_settings.unavailable(caught.value))
            assert message.startswith("elasticsearch at https://127.0.0.1:1920")
            assert "user dashboard is not allowed to do this: action [" in message


def test_wrong_password_is_one_clear_line(base: Settings) -> None:
    wrong = _as(base, "worker").model_copy(update={"password": SecretStr("not-the-password"), "url": "https://127.0.0.1:19200"})
    with pytest.raises(ServiceUnavailable) as caught:
        ces.health(wrong)
    assert str(caught.value) == ("elasticsearch at https://127.0.0.1:19200: authentication failed for user worker "
                                 "(check the password or API key)")


def test_untrusted_ca_is_one_clear_line(base: Settings, tmp_path: Path) -> None:
    other_ca = tmp_path / "other-ca.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=not ours",
                    "-keyout", str(tmp_path / "other-ca.key"), "-out", str(other_ca)], check=True, capture_output=True)
    untrusted = _as(base, "worker").model_copy(update={"ca_certs": other_ca, "url": "https://127.0.0.1:19201"})
    with pytest.raises(ServiceUnavailable) as caught:
        ces.health(untrusted)
    message = str(caught.value)
    assert message.startswith("elasticsearch at https://127.0.0.1:19201: TLS failed (certificate verify failed")
    assert str(other_ca) in message and "\n" not in message


def test_plain_http_to_a_tls_node_says_https(base: Settings) -> None:
    plain = _as(base, "worker").model_copy(update={"url": "http://127.0.0.1:19202", "ca_certs": None})
    with pytest.raises(ServiceUnavailable, match=r"^elasticsearch at http://127.0.0.1:19202: .*needs https://"):
        ces.health(plain)
