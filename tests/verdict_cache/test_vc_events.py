"""Event encoding, dead letters and verdict events (unit)."""

from __future__ import annotations

import base64
import json

import pytest

from dnsentinel.verdict_cache.events import (
    InvalidEvent,
    QueryEvent,
    VerdictEvent,
    dead_letter,
    encode_event,
    parse_event,
)

NOW_MS = 1_795_392_000_000


def test_encode_leaves_out_absent_fields_and_round_trips() -> None:
    ev = QueryEvent(NOW_MS, "bücher.de", "AAAA", "::1", "replay", origin="q.log", latency_us=0)
    data = encode_event(ev)
    assert json.loads(data) == {"v": 1, "ts": NOW_MS, "name": "bücher.de", "qtype": "AAAA", "client": "::1",
                                "source": "replay", "origin": "q.log", "latency_us": 0}
    assert "bücher".encode() in data  # UTF-8, not \\u escapes
    assert parse_event(data, now_ms=NOW_MS) == ev


def test_encode_refuses_an_event_over_the_size_limit() -> None:
    with pytest.raises(InvalidEvent) as info:
        encode_event(QueryEvent(NOW_MS, "a.com", "A", "", "live", origin="x" * 5000))
    assert info.value.reason == "too_large"


def test_dead_letter_keeps_text_payloads_readable_and_binary_ones_intact() -> None:
    text = json.loads(dead_letter(b'{"v":2}', "bad_version", "v=2", "dns.queries", 3, 1234, now_ms=NOW_MS))
    assert text == {"v": 1, "reason": "bad_version", "detail": "v=2", "topic": "dns.queries", "partition": 3,
                    "offset": 1234, "ts": NOW_MS, "payload": '{"v":2}'}
    raw = b"\xff\x00binary"
    binary = json.loads(dead_letter(raw, "not_json", "x", "dns.queries", 0, 1))
    assert binary["payload_b64"] is True and base64.b64decode(binary["payload"]) == raw
    big = json.loads(dead_letter(b"a" * 100_000, "too_large", "x", "dns.queries", 0, 2))
    assert big["truncated"] is True and len(big["payload"]) == 65536
    assert json.loads(dead_letter(None, "not_json", "empty", "dns.queries", 0, 3))["payload"] == ""


def test_verdict_event_round_trip_and_key() -> None:
    ev = VerdictEvent("xjwqkzpt.com", "malicious", 0.998149, "charcnn-20261122-1", NOW_MS, "necurs", 0.71234)
    data = ev.encode()
    assert json.loads(data) == {"v": 1, "name": "xjwqkzpt.com", "label": "malicious", "score": 0.9981,
                                "model": "charcnn-20261122-1", "ts": NOW_MS, "family": "necurs", "family_p": 0.7123}
    assert ev.key() == b"xjwqkzpt.com"
    back = VerdictEvent.parse(data)
    assert (back.name, back.label, back.score, back.family) == ("xjwqkzpt.com", "malicious", 0.9981, "necurs")
    with pytest.raises(ValueError):
        VerdictEvent("x.com", "evil", 1.0, "m", NOW_MS).encode()


@pytest.mark.parametrize("value, reason", [
    (b"nope", "not_json"),
    (b"[]", "not_object"),
    (b'{"v":2}', "bad_version"),
    (b'{"v":1,"label":"malicious","score":1,"model":"m","ts":1}', "missing_field:name"),
    (b'{"v":1,"name":"x","label":"evil","score":1,"model":"m","ts":1}', "bad_value:label"),
    (b'{"v":1,"name":"x","label":"benign","score":"1","model":"m","ts":1}', "bad_type:score"),
])
def test_verdict_event_parse_rejects(value: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        VerdictEvent.parse(value)
    assert info.value.reason == reason
