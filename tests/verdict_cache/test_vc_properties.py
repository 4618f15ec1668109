"""Property tests: normalization and event parsing never fail in any other way than their own errors."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from dnsentinel.verdict_cache.events import InvalidEvent, encode_event, parse_event
from dnsentinel.verdict_cache.names import InvalidName, normalize
from dnsentinel.verdict_cache.policy import candidates, effective_decision

NOW_MS = 1_795_392_000_000

# Names built from DNS-ish pieces find the interesting paths far more often than random text.
_piece = st.one_of(
    st.text(alphabet="abcXYZ019-_*.\\ ", min_size=0, max_size=12),
    st.sampled_from(["\\046", "\\255", "\\0", "\\", "..", "xn--", "ü", "ß", "。", "\u200d", "例", "\x00", "a" * 64]),
    st.text(max_size=6),
)
names_text = st.lists(_piece, max_size=8).map("".join)
names_bytes = st.binary(max_size=80)


@settings(max_examples=300, deadline=None)
@given(st.one_of(names_text, names_bytes))
def test_normalize_raises_only_invalid_name_and_is_idempotent(raw: str | bytes) -> None:
    try:
        name = normalize(raw)
    except InvalidName as exc:
        assert exc.reason in {"empty", "bad_escape", "empty_label", "bad_idn", "bad_char", "label_too_long",
                              "name_too_long"}
        return
    assert normalize(name.name) == name
    assert name.name.isascii() and name.name == name.name.lower() and not name.name.endswith(".")
    assert len(name.name) <= 253 and all(0 < len(label) <= 63 for label in name.name.split("."))
    if name.registrable is not None:
        assert name.name == name.registrable or name.name.endswith("." + name.registrable)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_fields = st.fixed_dictionaries(
    {},
    optional={
        "v": st.one_of(st.just(1), _json_values),
        "ts": st.one_of(st.integers(min_value=946684800000, max_value=NOW_MS), _json_values),
        "name": st.one_of(names_text, _json_values),
        "qtype": st.one_of(st.sampled_from(["A", "AAAA", "TXT"]), _json_values),
        "client": st.one_of(st.sampled_from(["", "192.0.2.1", "::1", "x"]), _json_values),
        "source": st.one_of(st.sampled_from(["live", "replay", "loadgen"]), _json_values),
        "action": _json_values,
        "latency_us": _json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), _fields.map(lambda d: json.dumps(d).encode())))
def test_parse_event_raises_only_invalid_event(value: bytes) -> None:
    try:
        event = parse_event(value, now_ms=NOW_MS)
    except InvalidEvent as exc:
        assert exc.reason
        return
    assert parse_event(encode_event(event), now_ms=NOW_MS) == event


_entries = st.lists(st.sampled_from(["example.com", "*.example.com", "www.example.com", "*.www.example.com", "com",
                                     "*.com", "a.www.example.com"]), max_size=5, unique=True)


@settings(max_examples=300, deadline=None)
@given(_entries, st.lists(st.sampled_from(["allow", "block", "honeypot"]), min_size=5, max_size=5),
       st.sampled_from(["example.com", "www.example.com", "a.www.example.com", "b.a.www.example.com", "other.org"]),
       st.sampled_from([None, "malicious", "benign", "uncertain"]))
def test_decide_properties(entries: list[str], actions: list[str], name: str, label: str | None) -> None:
    vetted = dict(zip(entries, actions))
    decision = effective_decision(name, vetted, label)
    covering = {e: a for e, a in vetted.items() if e in candidates(name)}
    if not covering:
        assert decision == (label or "unknown")
    if decision == "allow":
        assert any(a == "allow" for a in covering.values())
    if any(a == "allow" and (e == name or e.startswith("*.")) for e, a in covering.items()):
        assert decision == "allow"


@settings(max_examples=300, deadline=None)
@given(st.one_of(_fields.map(json.dumps), st.text(max_size=40).map(lambda t: '{"v":1,"name":"' + t + '"}')))
def test_event_fast_path_agrees_with_the_ordered_checks(text: str) -> None:
    from dnsentinel.verdict_cache.events import _checked, _fast

    upper = NOW_MS + 86_400_000
    value = text.encode("utf-8", "surrogatepass")
    fast = _fast(value, upper)
    try:
        obj = json.loads(text)
        if type(obj) is not dict:
            raise InvalidEvent("not_object", "")
        slow = _checked(obj, upper)
    except (InvalidEvent, ValueError):
        assert fast is None
        return
    assert fast is None or fast == slow
