"""Regenerate verdict_cache/vectors.json from the inputs below.

The expected outputs come from the Python implementation, so every change to
this file's output is reviewed by hand (``git diff verdict_cache/vectors.json``)
and checked against the Go side (coredns-plugin tests load the same file)
before it is committed: the JSON file, not this script, is the contract.

    .venv/bin/python tests/verdict_cache/make_vectors.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from vc_murmur2 import partition  # noqa: E402

from dnsentinel.verdict_cache import keys, policy, vocabulary  # noqa: E402
from dnsentinel.verdict_cache.events import InvalidEvent, parse_event  # noqa: E402
from dnsentinel.verdict_cache.names import InvalidName, display_name, normalize, routing_key  # noqa: E402

OUT = HERE.parent.parent / "verdict_cache" / "vectors.json"
NOW_MS = 1_795_392_000_000  # the "now" every event vector is judged against

L63 = "a" * 63
L64 = "a" * 64
N253 = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 63*3 + 61 + 3 dots = 253
N254 = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 62])

# (input, note); bytes inputs that are not UTF-8 are written as input_hex.
NAMES: list[tuple[str | bytes, str]] = [
    ("example.com", "already normalized"),
    ("WWW.Example.COM", "case folding"),
    ("www.example.com.", "one trailing dot removed"),
    ("www.example.com..", "two trailing dots: empty label"),
    ("", "empty"),
    (".", "root"),
    ("..", "root plus a dot"),
    ("a..b.com", "empty label inside"),
    (".a.com", "leading dot"),
    ("a\\065b.com", "\\DDD escape of a letter"),
    ("A\\066C.com", "escape then case folding"),
    ("\\097\\098c.example.com", "escapes at the start"),
    ("a\\-b.com", "\\X escape of an allowed character"),
    ("a\\.b.com", "escaped dot stays inside the label"),
    ("a\\046b.com", "\\046 is a dot inside the label"),
    ("a\\032b.com", "\\032 is a space"),
    ("a\\000b.com", "\\000 is a NUL byte"),
    ("com\\", "backslash at the end"),
    ("a\\25.com", "\\DD with two digits"),
    ("a\\2", "\\D at the end"),
    ("a\\256.com", "\\256 is over 255"),
    ("a\\999.com", "\\999 is over 255"),
    ("a b.com", "space"),
    (" example.com", "leading space"),
    ("example.com ", "trailing space"),
    ("a\tb.com", "tab"),
    ("a\x7fb.com", "DEL"),
    ("a/b.com", "slash"),
    ("a@b.com", "at sign"),
    ("a:b.com", "colon"),
    ("a\"b.com", "quote"),
    ("*.example.com", "wildcard leftmost"),
    ("*", "a lone wildcard is a bare name"),
    ("a.*.example.com", "wildcard not leftmost"),
    ("a*.example.com", "star inside a label"),
    ("_dmarc.example.com", "underscore label"),
    ("_sip._tcp.Example.COM", "service labels"),
    ("-a.example.com", "leading hyphen is allowed (no LDH check)"),
    ("a-.example.com", "trailing hyphen is allowed"),
    ("ab--cd.example.com", "double hyphen in ASCII labels is allowed"),
    ("123.example.com", "digit label"),
    (L63 + ".com", "63-octet label"),
    (L64 + ".com", "64-octet label"),
    ("\\" + "097" * 1 + "a" * 63 + ".com", "64 octets after an escape"),
    (N253, "253-octet name"),
    (N254, "254-octet name"),
    (N253 + ".", "253 octets plus the trailing dot"),
    (L64 + "." + N254, "label and name too long: label reported"),
    ("a b." + L64 + ".com", "bad char before long label: bad_char reported"),
    ("bücher.de", "IDN U-label"),
    ("BÜCHER.DE", "IDN upper case"),
    ("xn--bcher-kva.de", "A-label stays"),
    ("XN--BCHER-KVA.DE", "A-label upper case"),
    ("xn--zz.example.com", "an ASCII label that is not valid Punycode stays; display keeps it"),
    ("straße.de", "non-transitional: sharp s kept"),
    ("faß.de", "non-transitional sharp s"),
    ("münchen.example.com", "IDN subdomain"),
    ("例え.テスト", "Japanese"),
    ("пример.рф", "Cyrillic"),
    ("www.пример.рф", "ASCII and IDN labels mixed"),
    ("_dmarc.bücher.de", "underscore label beside an IDN label"),
    ("*.bücher.de", "wildcard beside an IDN label"),
    ("ｅｘａｍｐｌｅ.com", "fullwidth letters map to ASCII"),
    ("bü cher.de", "space inside an IDN label"),
    ("a\u200db.com", "zero width joiner not allowed here"),
    ("\u0301a.com", "leading combining mark"),
    ("b\\195\\188cher.de", "IDN written with escapes"),
    (b"\xff.com", "invalid UTF-8"),
    (b"b\xc3cher.de", "truncated UTF-8 sequence"),
    ("b\\195cher.de", "invalid UTF-8 through an escape"),
    ("a\\.ü.com", "escaped dot inside an IDN label"),
    ("ü" + "a" * 56 + ".com", "IDN label over 63 octets once encoded"),
    ("ü" + "a" * 55 + ".com", "IDN label of exactly 63 octets once encoded"),
    ("localhost", "bare name"),
    ("LOCALHOST.", "bare name with case and trailing dot"),
    ("wpad", "bare name"),
    ("com", "a TLD alone is bare"),
    ("1.0.168.192.in-addr.arpa", "IPv4 reverse"),
    ("1.0.168.192.IN-ADDR.ARPA.", "IPv4 reverse, case and dot"),
    ("in-addr.arpa", "reverse zone apex"),
    ("b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa", "IPv6 reverse"),
    ("ip6.arpa", "reverse zone apex"),
    ("arpa", "bare"),
    ("example.arpa", "arpa but not reverse"),
    ("xin-addr.arpa", "not a reverse suffix"),
    ("www.bbc.co.uk", "ICANN two-level suffix"),
    ("co.uk", "a public suffix itself"),
    ("bbc.co.uk", "registrable itself"),
    ("a.b.example.co.uk", "deep subdomain"),
    ("www.example.com.au", "com.au"),
    ("a.b.c.example.jp", "jp"),
    ("www.city.kawasaki.jp", "exception rule !city.kawasaki.jp"),
    ("a.b.kawasaki.jp", "wildcard rule *.kawasaki.jp"),
    ("www.ck", "exception rule !www.ck"),
    ("a.b.ck", "wildcard rule *.ck"),
    ("a.b.blogspot.com", "private suffix blogspot.com"),
    ("blogspot.com", "private suffix itself"),
    ("x.github.io", "private suffix github.io"),
    ("a.x.github.io", "subdomain of a github.io site"),
    ("github.io", "private suffix itself"),
    ("github.com", "not a suffix"),
    ("bucket.s3.amazonaws.com", "private suffix s3.amazonaws.com"),
    ("a.b.herokuapp.com", "private suffix herokuapp.com"),
    ("foo.appspot.com", "private suffix appspot.com"),
    ("www.example.xn--p1ai", "IDN TLD (рф) in A-label form"),
    ("www.example.xn--55qx5d.cn", "IDN second-level suffix"),
    ("a.b.example.invalidtld", "unknown TLD: the default rule *"),
    ("foo.zz", "unknown TLD zz"),
    ("1.2.3.4", "a dotted IPv4 address has no registrable domain"),
    ("256.1.2.3", "not an address: the default rule applies"),
    ("01.2.3.4", "leading zero: not an address"),
    ("paypal-verify.weebly.com", "phishing host under a hosting provider"),
]

REGISTRABLE_ONLY = {"display"}  # fields written only when different from the input


def name_vectors() -> list[dict]:
    out = []
    for raw, note in NAMES:
        vec: dict = {"note": note}
        if isinstance(raw, bytes):
            vec["input_hex"] = raw.hex()
        else:
            vec["input"] = raw
        try:
            n = normalize(raw)
        except InvalidName as exc:
            vec["error"] = exc.reason
        else:
            vec.update(normalized=n.name, kind=n.kind, registrable=n.registrable, display=display_name(n.name))
        out.append(vec)
    return out


def routing_vectors() -> list[dict]:
    out = []
    for raw in ["a.b.example.co.uk", "WWW.Example.COM.", "example.com", "x.github.io", "a.x.github.io",
                "co.uk", "localhost", "1.0.168.192.in-addr.arpa", "bücher.de", "a b.com", "a..b", b"\xff.com"]:
        key = routing_key(raw)
        vec = {"input_hex": raw.hex()} if isinstance(raw, bytes) else {"input": raw}
        try:
            vec["key"] = key.decode("utf-8")
        except UnicodeDecodeError:
            vec["key_hex"] = key.hex()
        out.append(vec)
    return out


def partition_vectors() -> list[dict]:
    out = []
    for key in ["example.com", "example.co.uk", "x.github.io", "localhost", "a", "ab", "abc", "abcd",
                "xn--bcher-kva.de", "google.com", "facebook.com", "xjwqkzpt.com", "a b.com"]:
        for n in (1, 6, 12):
            out.append({"key": key, "partitions": n, "partition": partition(key.encode(), n)})
    return out


def candidate_vectors() -> list[dict]:
    return [{"name": n, "candidates": policy.candidates(n)}
            for n in ["example.com", "a.b.example.co.uk", "localhost", "*.example.com"]]


V = "m|0.9981|charcnn-1|1795392000"
DECISIONS: list[tuple[str, dict[str, str], str | None, str]] = [
    ("example.com", {}, None, "nothing known"),
    ("example.com", {}, V, "model verdict malicious"),
    ("example.com", {}, "u|0.5000|charcnn-1|1795392000", "model verdict uncertain"),
    ("example.com", {}, "b|0.0100|charcnn-1|1795392000", "model verdict benign"),
    ("example.com", {}, "garbage", "bad value reads as unknown"),
    ("example.com", {"example.com": "block"}, None, "exact block"),
    ("www.example.com", {"example.com": "block"}, None, "block covers subdomains"),
    ("a.b.example.com", {"example.com": "honeypot"}, None, "honeypot covers subdomains"),
    ("example.com", {"example.com": "allow"}, V, "exact allow beats the model"),
    ("www.example.com", {"example.com": "allow"}, V, "plain allow does not cover subdomains"),
    ("www.example.com", {"example.com": "allow"}, None, "plain allow does not cover subdomains: unknown"),
    ("www.example.com", {"*.example.com": "allow"}, V, "wildcard allow covers subdomains"),
    ("example.com", {"*.example.com": "allow"}, V, "wildcard allow covers the name itself"),
    ("www.example.com", {"*.example.com": "allow", "www.example.com": "block"}, None, "allow wins over a deeper block"),
    ("www.example.com", {"example.com": "allow", "www.example.com": "block"}, None, "plain allow above does not stop a block"),
    ("a.www.example.com", {"example.com": "block", "www.example.com": "honeypot"}, None, "most specific block/honeypot wins"),
    ("a.www.example.com", {"example.com": "honeypot", "www.example.com": "block"}, None, "most specific block/honeypot wins"),
    ("www.example.com", {"www.example.com": "block", "*.www.example.com": "honeypot"}, None, "plain entry before wildcard at one level"),
    ("www.example.com", {"*.example.com": "block"}, "b|0.0100|charcnn-1|1795392000", "wildcard block beats the model"),
    ("www.example.com", {"com": "block"}, None, "a block on a TLD covers everything under it"),
    ("example.com", {"www.example.com": "block"}, None, "a block never covers the parent"),
    ("paypal-verify.weebly.com", {"weebly.com": "allow"}, V, "hosting provider allowed, phishing host still malicious"),
    ("localhost", {"localhost": "block"}, None, "vetted applies to bare names"),
    ("1.0.168.192.in-addr.arpa", {"in-addr.arpa": "honeypot"}, None, "vetted applies to reverse names"),
]


def decision_vectors() -> list[dict]:
    out = []
    for name, vetted, value, note in DECISIONS:
        label = None
        if value is not None:
            try:
                label = keys.parse_verdict(name, value).label
            except keys.BadValue:
                label = None
        out.append({"note": note, "name": name, "vetted": vetted, "verdict": value,
                    "decision": policy.effective_decision(name, vetted, label)})
    return out


VALUES = [
    "m|0.9981|charcnn-1|1795392000",
    "u|0.5000|charcnn-20261122-1|1795392000",
    "b|0.0000|lstm-2|0",
    "b|1|m|1795392000",
    "m|1.0000|charcnn-1|1795392000",
    "garbage",
    "",
    "m|0.9981|charcnn-1",
    "m|0.9981|charcnn|1|1795392000",
    "x|0.9981|charcnn-1|1795392000",
    "M|0.9981|charcnn-1|1795392000",
    "m|1.5|charcnn-1|1795392000",
    "m|-0.1|charcnn-1|1795392000",
    "m|NaN|charcnn-1|1795392000",
    "m|1e-3|charcnn-1|1795392000",
    "m| 0.5|charcnn-1|1795392000",
    "m|0.5||1795392000",
    "m|0.5|charcnn-1|-1",
    "m|0.5|charcnn-1|1795392000.5",
    "m|0.5|charcnn-1|",
]


def value_vectors() -> list[dict]:
    out = []
    for value in VALUES:
        try:
            v = keys.parse_verdict("x.com", value)
        except keys.BadValue:
            out.append({"value": value, "error": "bad_value"})
        else:
            out.append({"value": value, "label": v.label, "score": v.score, "model": v.model, "time": v.ts})
    for label, score, model, ts in [("malicious", 0.99814, "charcnn-1", 1795392000), ("benign", 0.00004, "m2", 1),
                                    ("uncertain", 0.5, "charcnn-20261122-1", 1795392000), ("malicious", 1, "x", 0)]:
        out.append({"format": {"label": label, "score": score, "model": model, "time": ts},
                    "value": keys.format_verdict(keys.Verdict("x.com", label, score, model, ts))})
    return out


def key_vectors() -> list[dict]:
    out = []
    for prefix in ("dnsentinel", "test-1a2b"):
        out.append({"kind": "verdict", "prefix": prefix, "name": "x.com", "key": keys.verdict_key(prefix, "x.com")})
        out.append({"kind": "vetted", "prefix": prefix, "key": keys.vetted_key(prefix)})
        out.append({"kind": "vetted_log", "prefix": prefix, "key": keys.vetted_log_key(prefix)})
        out.append({"kind": "changes", "prefix": prefix, "key": keys.changes_channel(prefix)})
    return out


def ev(**fields: object) -> str:
    base: dict[str, object] = {"v": 1, "ts": NOW_MS, "name": "example.com", "qtype": "A",
                               "client": "192.0.2.1", "source": "live"}
    for k, v in fields.items():
        if v is _DROP:
            base.pop(k, None)
        else:
            base[k] = v
    return json.dumps(base, ensure_ascii=False, separators=(",", ":"))


_DROP = object()

EVENTS: list[tuple[str | bytes, str]] = [
    (ev(), "minimal valid event"),
    (ev(server="coredns-1", action="nxdomain", decision="malicious", rcode="NXDOMAIN", latency_us=120, proto="udp"),
     "all optional fields"),
    (ev(source="replay", origin="bind.log", client=""), "replay with unknown client"),
    (ev(client="2001:db8::1"), "IPv6 client"),
    (ev(name="a b.com"), "a name that fails normalization is still a valid event"),
    (ev(name="Bücher.DE."), "raw IDN name"),
    (ev(extra={"x": [1, 2]}, zzz=None), "unknown fields are ignored"),
    (ev(ts=946684800000), "ts at 2000-01-01"),
    (ev(ts=NOW_MS + 86_400_000), "ts at now + 1 day"),
    (ev(server=None), "null optional field is absent"),
    ("not json", "not JSON"),
    ("", "empty"),
    (b"\xff\xfe{}", "not UTF-8"),
    ("\ufeff" + ev(), "UTF-8 BOM"),
    ('{"v":1,"ts":NaN}', "NaN is not JSON"),
    ('{"v":1,', "truncated"),
    ("[1,2]", "array"),
    ('"x"', "string"),
    ("null", "null"),
    ("{}", "no version"),
    (ev(v=_DROP), "v missing"),
    (ev(v=2), "future version"),
    (ev(v="1"), "v as a string"),
    (ev(v=1.0), "v as a float"),
    (ev(v=True), "v as a boolean"),
    (ev(ts=_DROP), "ts missing"),
    (ev(ts=None), "ts null"),
    (ev(ts="1795392000000"), "ts as a string"),
    (ev(ts=1795392000000.0), "ts as a float"),
    (ev(ts=True), "ts as a boolean"),
    (ev(ts=946684799999), "ts before 2000"),
    (ev(ts=1795392000), "ts in seconds, not milliseconds"),
    (ev(ts=NOW_MS + 86_400_001), "ts past now + 1 day"),
    (ev(name=_DROP), "name missing"),
    (ev(name=5), "name as a number"),
    (ev(name=""), "empty name"),
    (ev(name="a" * 1025), "name over 1024 bytes"),
    (ev(qtype=_DROP), "qtype missing"),
    (ev(qtype=1), "qtype as a number"),
    (ev(qtype=""), "empty qtype"),
    (ev(client=_DROP), "client missing"),
    (ev(client="not-an-ip"), "client not an address"),
    (ev(client=3232235777), "client as a number"),
    (ev(source=_DROP), "source missing"),
    (ev(source="kafka"), "unknown source"),
    (ev(server=1), "server as a number"),
    (ev(action="drop"), "unknown action"),
    (ev(decision="evil"), "unknown decision"),
    (ev(latency_us="5"), "latency as a string"),
    (ev(latency_us=-1), "negative latency"),
    (ev(latency_us=1.5), "fractional latency"),
    (ev(proto="quic"), "unknown proto"),
    (ev(name=_DROP, ts=_DROP), "several problems: the first in field order is reported"),
    (ev(origin="x" * 4000), "over 4096 bytes"),
]


def event_vectors() -> list[dict]:
    out = []
    for raw, note in EVENTS:
        data = raw if isinstance(raw, bytes) else raw.encode("utf-8")
        vec: dict = {"note": note}
        if isinstance(raw, bytes):
            vec["raw_hex"] = raw.hex()
        else:
            vec["raw"] = raw
        try:
            parse_event(data, now_ms=NOW_MS)
        except InvalidEvent as exc:
            vec["error"] = exc.reason
        else:
            vec["valid"] = True
        out.append(vec)
    return out


def build() -> dict:
    """The whole vectors document, as the implementation computes it today."""
    return {
        "version": 1,
        "now_ms": NOW_MS,
        "names": name_vectors(),
        "routing": routing_vectors(),
        "partitions": partition_vectors(),
        "candidates": candidate_vectors(),
        "decisions": decision_vectors(),
        "verdict_values": value_vectors(),
        "keys": key_vectors(),
        "events": event_vectors(),
        "vocabulary": vocabulary.as_dict(),
    }


def render(doc: dict) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=1) + "\n"


def main() -> None:
    doc = build()
    OUT.write_text(render(doc), encoding="utf-8")
    print(f"wrote {OUT} ({sum(len(v) for v in doc.values() if isinstance(v, list))} vectors)")


if __name__ == "__main__":
    main()
