"""The shared contract vectors (verdict_cache/vectors.json), Python side.

The Go plugin's tests load the same file; both must pass it unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from vc_murmur2 import murmur2, partition

from dnsentinel.verdict_cache import keys, policy
from dnsentinel.verdict_cache.events import InvalidEvent, parse_event
from dnsentinel.verdict_cache.names import InvalidName, display_name, normalize, routing_key

VECTORS = json.loads((Path(__file__).resolve().parents[2] / "verdict_cache" / "vectors.json").read_text("utf-8"))


def _input(vec: dict, field: str = "input") -> str | bytes:
    return bytes.fromhex(vec[field + "_hex"]) if field + "_hex" in vec else vec[field]


def _id(vec: dict) -> str:
    return vec.get("note") or str(vec.get("input", vec.get("value", vec.get("key", ""))))[:40]


@pytest.mark.parametrize("vec", VECTORS["names"], ids=_id)
def test_names(vec: dict) -> None:
    raw = _input(vec)
    if "error" in vec:
        with pytest.raises(InvalidName) as info:
            normalize(raw)
        assert info.value.reason == vec["error"]
        return
    name = normalize(raw)
    assert (name.name, name.kind, name.registrable) == (vec["normalized"], vec["kind"], vec["registrable"])
    assert display_name(name.name) == vec["display"]
    assert normalize(name.name) == name  # idempotent
    if isinstance(raw, str):
        assert normalize(raw.encode("utf-8")) == name  # bytes and text agree


@pytest.mark.parametrize("vec", VECTORS["routing"], ids=_id)
def test_routing(vec: dict) -> None:
    expected = bytes.fromhex(vec["key_hex"]) if "key_hex" in vec else vec["key"].encode("utf-8")
    assert routing_key(_input(vec)) == expected


def test_murmur2_matches_kafka_reference_values() -> None:
    # Values from Kafka's own Utils.murmur2 unit test.
    assert murmur2(b"21") == -973932308
    assert murmur2(b"foobar") == -790332482
    assert murmur2(b"a-little-bit-longer-string") == -1486304829


@pytest.mark.parametrize("vec", VECTORS["partitions"], ids=lambda v: f"{v['key']}/{v['partitions']}")
def test_partitions(vec: dict) -> None:
    assert partition(vec["key"].encode("utf-8"), vec["partitions"]) == vec["partition"]


@pytest.mark.parametrize("vec", VECTORS["candidates"], ids=lambda v: v["name"])
def test_candidates(vec: dict) -> None:
    assert policy.candidates(vec["name"]) == vec["candidates"]


@pytest.mark.parametrize("vec", VECTORS["decisions"], ids=_id)
def test_decisions(vec: dict) -> None:
    label = None
    if vec["verdict"] is not None:
        try:
            label = keys.parse_verdict(vec["name"], vec["verdict"]).label
        except keys.BadValue:
            label = None
    cands = set(policy.candidates(vec["name"]))
    vetted = {k: v for k, v in vec["vetted"].items() if k in cands}  # what HMGET would return
    assert policy.effective_decision(vec["name"], vetted, label) == vec["decision"]


@pytest.mark.parametrize("vec", VECTORS["verdict_values"], ids=lambda v: v["value"] or "<empty>")
def test_verdict_values(vec: dict) -> None:
    if "format" in vec:
        f = vec["format"]
        assert keys.format_verdict(keys.Verdict("x.com", f["label"], f["score"], f["model"], f["time"])) == vec["value"]
        return
    if "error" in vec:
        with pytest.raises(keys.BadValue):
            keys.parse_verdict("x.com", vec["value"])
        return
    v = keys.parse_verdict("x.com", vec["value"])
    assert (v.label, v.score, v.model, v.ts) == (vec["label"], vec["score"], vec["model"], vec["time"])


@pytest.mark.parametrize("vec", VECTORS["keys"], ids=lambda v: f"{v['kind']}/{v['prefix']}")
def test_keys(vec: dict) -> None:
    prefix = vec["prefix"]
    actual = {
        "verdict": lambda: keys.verdict_key(prefix, vec.get("name", "")),
        "vetted": lambda: keys.vetted_key(prefix),
        "vetted_log": lambda: keys.vetted_log_key(prefix),
        "changes": lambda: keys.changes_channel(prefix),
    }[vec["kind"]]()
    assert actual == vec["key"]


@pytest.mark.parametrize("vec", VECTORS["events"], ids=_id)
def test_events(vec: dict) -> None:
    raw = bytes.fromhex(vec["raw_hex"]) if "raw_hex" in vec else vec["raw"].encode("utf-8")
    if "error" in vec:
        with pytest.raises(InvalidEvent) as info:
            parse_event(raw, now_ms=VECTORS["now_ms"])
        assert info.value.reason == vec["error"]
    else:
        assert parse_event(raw, now_ms=VECTORS["now_ms"]).v == 1


@pytest.mark.parametrize("name, registrable", [
    ("x.y.futurecms.at", "x.y.futurecms.at"),  # *.futurecms.at
    ("ex.futurecms.at", None),  # matched by *.futurecms.at although *.ex.futurecms.at exists
    ("a.x.ex.futurecms.at", "a.x.ex.futurecms.at"),  # *.ex.futurecms.at
    ("www.city.kobe.jp", "city.kobe.jp"),  # exception
    ("a.b.c.d.e.f.g.example.com", "example.com"),
])
def test_suffix_rules_follow_the_psl_algorithm(name: str, registrable: str | None) -> None:
    from dnsentinel.verdict_cache.names import registrable_domain

    assert registrable_domain(name) == registrable


def test_suffix_rules_agree_with_tldextract_on_plain_names() -> None:
    """Our matcher reads tldextract's rules; on ordinary names it must return what tldextract does."""
    from dnsentinel.verdict_cache.names import _extractor, registrable_domain

    for suffix in ["com", "co.uk", "blogspot.com", "github.io", "kawasaki.jp", "ck", "s3.amazonaws.com",
                   "xn--p1ai", "appspot.com", "herokuapp.com", "com.au", "pvt.k12.ma.us"]:
        for prefix in ["x.", "a.b.", "q.w.e.r."]:
            name = prefix + suffix
            res = _extractor(name)
            assert registrable_domain(name) == (res.top_domain_under_public_suffix or None), name


def test_vectors_file_is_what_make_vectors_writes() -> None:
    """A vector added by hand would vanish at the next regeneration: add it to make_vectors.py instead."""
    import make_vectors

    committed = (Path(__file__).resolve().parents[2] / "verdict_cache" / "vectors.json").read_text("utf-8")
    assert make_vectors.render(make_vectors.build()) == committed, (
        "verdict_cache/vectors.json differs from tests/verdict_cache/make_vectors.py's output: "
        "put new inputs into make_vectors.py, run it, review the diff")
