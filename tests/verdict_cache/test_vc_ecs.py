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
ECS_FAMILIES = ("alerts", "domains")
"""Index families already in ECS (the others move over in the rest of issue 15)."""
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
