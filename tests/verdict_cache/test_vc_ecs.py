"""Elasticsearch documents use ECS names and types wherever ECS defines the field (issue 15).

``verdict_cache/ecs_fields.csv.xz`` keeps ECS's field list (name and type only); every field of
an ECS family's mapping is either an ECS field with ECS's type, or dnsentinel's own under
``dnsentinel.``, and the documents the code builds use only mapped fields.
"""

from __future__ import annotations

import csv
import lzma
from pathlib import Path

import pytest

from dnsentinel.verdict_cache import es_schema
from dnsentinel.verdict_cache.alerts import Alert

ECS_FILE = Path(es_schema.__file__).with_name("ecs_fields.csv.xz")
ECS_FAMILIES = ("alerts", "domains", "verdicts", "activity", "vetting", "events", "audit", "hourly")
"""Index families in ECS: all of them."""
SAME_TYPE = {"match_only_text": "text", "constant_keyword": "keyword", "wildcard": "keyword"}


def _ecs() -> dict[str, str]:
    with lzma.open(ECS_FILE, "rt") as fh:
        rows = csv.DictReader(line for line in fh if not line.startswith("#"))
        return {r["field"]: SAME_TYPE.get(r["type"], r["type"]) for r in rows}


ECS = _ecs()


def test_the_ecs_list_is_the_real_one() -> None:
    assert len(ECS) > 2000
    assert ECS["dns.question.registered_domain"] == "keyword" and ECS["client.ip"] == "ip"
    assert ECS["event.severity"] == "long" and ECS["@timestamp"] == "date"


@pytest.mark.parametrize("family", ECS_FAMILIES)
def test_mapping_uses_ecs_types_and_keeps_its_own_fields_in_one_namespace(family: str) -> None:
    wrong = []
    for field, spec in es_schema.MAPPINGS[family].items():
        if field.startswith("dnsentinel."):
            assert field.split(".")[1] not in ("", None)
            continue
        if field not in ECS:
            wrong.append(f"{field}: not an ECS field (own fields go under dnsentinel.)")
        elif SAME_TYPE.get(spec["type"], spec["type"]) != ECS[field]:
            wrong.append(f"{field}: {spec['type']}, ECS says {ECS[field]}")
    assert not wrong, "\n".join(wrong)


def test_every_family_is_in_ecs() -> None:
    assert set(ECS_FAMILIES) == set(es_schema.FAMILIES) == set(es_schema.MAPPINGS)
    assert set(es_schema.EVENT_KINDS) <= set(es_schema.FAMILIES)
    assert set(es_schema.EVENT_KINDS.values()) <= {"alert", "enrichment", "event", "metric", "state"}


def test_audit_documents_use_only_mapped_fields_and_read_back() -> None:
    entry = {"at": 5, "who": "alice", "role": "analyst", "address": "192.0.2.1", "action": "vet", "name": "x.example",
             "before": "none", "after": "block", "note": "odd"}
    doc = es_schema.audit_document(entry)
    assert set(doc) <= set(es_schema.MAPPINGS["audit"])
    assert doc[es_schema.USER_NAME] == "alice" and doc[es_schema.EVENT_ACTION] == "vet"
    assert es_schema.audit_entry(doc) == entry
    assert es_schema.audit_entry({})["who"] == ""


def test_question_parts_follow_ecs() -> None:
    q = es_schema.question
    assert q("a.b.example.co.uk", "example.co.uk") == {
        es_schema.Q_NAME: "a.b.example.co.uk", es_schema.Q_REGISTERED: "example.co.uk",
        es_schema.Q_TLD: "co.uk", es_schema.Q_SUBDOMAIN: "a.b"}
    assert es_schema.Q_SUBDOMAIN not in q("example.com", "example.com")
    assert q("nas.lan", None) == {es_schema.Q_NAME: "nas.lan"}


def test_alert_documents_use_only_mapped_fields() -> None:
    alert = Alert("id1", "tunnel", "high", "s", 1, 2, 3, ["a.pirate.sea"], 4, client="10.0.0.1",
                  domain="pirate.sea", clients=["10.0.0.1"], details={"unique": 200.0})
    doc = alert.to_es(observer="worker-1")
    assert set(doc) <= set(es_schema.ALERT_FIELDS)
    assert doc["event.kind"] == "alert" and doc["client.ip"] == "10.0.0.1" and doc["event.severity"] == 73
    not_ip = Alert("id2", "ip_echo", "medium", "s", 1, 2, 3, [], 4, client="laptop.lan").to_es()
    assert "client.ip" not in not_ip and not_ip["client.address"] == "laptop.lan"


def test_dotted_fields_nest_into_properties() -> None:
    props = es_schema.properties({"a.b.c": {"type": "keyword"}, "a.d": {"type": "long"}, "e": {"type": "ip"}})
    assert props == {"a": {"properties": {"b": {"properties": {"c": {"type": "keyword"}}}, "d": {"type": "long"}}},
                     "e": {"type": "ip"}}


def test_long_natural_keys_get_a_hashed_id_within_elasticsearchs_limit() -> None:
    short = "www.example.com|10.0.0.1|1795392000000"
    assert es_schema.doc_id(short) == short
    long_name = ".".join(["a" * 63] * 8) + "|10.0.0.1|1795392000000"
    hashed = es_schema.doc_id(long_name)
    assert hashed.startswith("sha256:") and len(hashed) <= es_schema.MAX_ID_BYTES
    assert hashed == es_schema.doc_id(long_name) != es_schema.doc_id(long_name + "0")
