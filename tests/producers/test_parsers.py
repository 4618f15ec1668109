"""One test group per log format, on the fixture files of tests/fixtures/logs."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from dnsentinel.producers import parse_zeek
from dnsentinel.producers.formats import detect
from dnsentinel.producers.records import ParseStats, Query, ts_from_value
from .helpers import parse_file


def reasons(errors):
    return [(e.line_no, e.reason) for e in errors]


class TestZeekTsv:
    def test_fields_and_units(self, logs):
        qs, errors, ignored, stats, fmt = parse_file(logs / "zeek_dns.log")
        assert fmt == "zeek"
        assert qs[0] == Query(1763629200125, "www.Example.com", "A", "192.0.2.10", "NOERROR", "udp", 12500)
        assert qs[1].latency_us is None and qs[1].rcode == "NXDOMAIN" and qs[1].qtype == "AAAA"
        assert qs[2].name == "my printer.local" and qs[2].client == "2001:db8::5" and qs[2].proto == "tcp"
        assert stats.lines == 18

    def test_hex_escapes_become_presentation_escapes(self, logs):
        qs, *_ = parse_file(logs / "zeek_dns.log")
        assert qs[3].name == "caf\\195\\169.example.org"

    def test_bad_lines_are_reported_with_line_numbers(self, logs):
        qs, errors, ignored, stats, _ = parse_file(logs / "zeek_dns.log")
        assert reasons(errors) == [(14, "too_few_fields"), (15, "bad_ts")]
        assert [(i.line_no, i.reason) for i in ignored] == [(12, "no_query")]
        assert len(qs) == 6

    def test_truncated_last_line(self, logs):
        qs, errors, *_ = parse_file(logs / "zeek_dns_truncated.log")
        assert len(qs) == 1 and reasons(errors) == [(10, "too_few_fields")]

    @pytest.mark.parametrize("suffix", [".gz", ".xz", ".zst"])
    def test_compressed_variants_parse_identically(self, logs, suffix):
        plain = parse_file(logs / "zeek_dns.log")[0]
        assert parse_file(logs / f"zeek_dns.log{suffix}")[0] == plain

    def test_custom_separator_and_reordered_columns(self):
        text = "#separator ,\n#fields,query,ts,id.orig_h\nexample.com,1763629200.5,192.0.2.1\n"
        qs = [i for i in parse_zeek.parse(io.StringIO(text), ParseStats()) if type(i) is Query]
        assert qs == [Query(1763629200500, "example.com", "A", "192.0.2.1", None, None, None)]

    def test_headerless_file_uses_default_columns(self, logs):
        body = [ln for ln in (logs / "zeek_dns.log").read_text().splitlines(True) if not ln.startswith("#")]
        stats = ParseStats()
        qs = [i for i in parse_zeek.parse(body, stats) if type(i) is Query]
        assert len(qs) == 6 and "no #fields header" in stats.notes[0]


class TestZeekJson:
    def test_epoch_and_iso_timestamps(self, logs):
        qs, errors, ignored, _, fmt = parse_file(logs / "zeek_dns.json")
        assert fmt == "zeek-json"
        assert qs[0] == Query(1763629200125, "www.example.com", "A", "192.0.2.10", "NOERROR", "udp", 12500)
        assert qs[1].ts == 1763629200250 and qs[1].rcode == "NXDOMAIN"
        assert reasons(errors) == [(4, "not_json"), (5, "not_object"), (6, "bad_ts")]
        assert [i.reason for i in ignored] == ["no_query"]


class TestBind:
    def test_variants(self, logs):
        qs, errors, _, stats, fmt = parse_file(logs / "bind_query.log")
        assert fmt == "bind"
        assert qs[0] == Query(1763629200125, "www.example.com", "A", "192.0.2.10", None, "udp", None)
        assert qs[1].name == "qxvbtrzlmwpk.net" and qs[1].qtype == "AAAA"
        assert qs[2].client == "2001:db8::5" and qs[2].qtype == "MX" and qs[2].proto == "tcp"  # view, -T
        assert qs[3].client == "192.0.2.12"  # syslog prefix, no @0x handle
        assert reasons(errors) == [(6, "not_bind_query"), (7, "not_bind_query"), (8, "bad_ts")]

    def test_line_without_timestamp_uses_replay_time(self, logs):
        import time

        qs, _, _, stats, _ = parse_file(logs / "bind_query.log")
        assert abs(qs[4].ts - time.time() * 1000) < 60_000
        assert any("replay time" in n for n in stats.notes)


class TestCoreDNS:
    def test_default_format(self, logs):
        qs, errors, _, stats, fmt = parse_file(logs / "coredns_log.log")
        assert fmt == "coredns-log"
        first = qs[0]
        assert (first.name, first.qtype, first.client, first.rcode, first.proto, first.latency_us) == (
            "www.example.com.", "A", "192.0.2.10", "NOERROR", "udp", 160)
        assert qs[1].ts == 1763629200250  # RFC 3339 prefix
        assert qs[2].ts == 1763629201000 - 3600_000 and qs[2].client == "2001:db8::5"  # +01:00, IPv6 in brackets
        assert qs[4].name == "\\032odd\\032name.example.com."  # empty rflags still parse
        assert reasons(errors) == [(4, "not_coredns_log"), (6, "not_coredns_log")]
        assert any("replay time" in n for n in stats.notes)


class TestDnstap:
    def test_queries_only(self, logs):
        qs, errors, ignored, stats, fmt = parse_file(logs / "dnstap_client.fstrm")
        assert fmt == "dnstap"
        assert [q.name for q in qs] == ["www.example.com.", "qxvbtrzlmwpk.net.", "paypal-verify.weebly.com."]
        assert qs[0].ts == 1763629200125 and qs[0].client == "192.0.2.10" and qs[0].proto == "udp"
        assert qs[1].qtype == "AAAA" and qs[1].proto == "tcp" and ":" in qs[1].client
        assert [i.reason for i in ignored] == ["dnstap_response"] and not errors

    def test_bad_frames_do_not_stop_the_file(self, logs):
        qs, errors, *_ = parse_file(logs / "dnstap_bad_frames.fstrm")
        assert len(qs) == 2
        assert reasons(errors) == [(2, "bad_protobuf"), (3, "bad_dns_message"), (4, "bad_protobuf")]

    def test_truncated_file(self, logs):
        qs, errors, *_ = parse_file(logs / "dnstap_truncated.fstrm")
        assert len(qs) == 1 and errors[-1].reason == "bad_frame"

    def test_zstd(self, logs):
        assert parse_file(logs / "dnstap_client.fstrm.zst")[0] == parse_file(logs / "dnstap_client.fstrm")[0]

    def test_wrong_content_type(self):
        from dnsentinel.producers import parse_dnstap
        from dnsentinel.producers.dnstap_wire import write_frames

        buf = io.BytesIO()
        write_frames(buf, [b"\x0a\x01x"], content_type=b"protobuf:other.Thing")
        buf.seek(0)
        items = list(parse_dnstap.parse(buf, ParseStats()))
        assert [i.reason for i in items] == ["bad_frame"]


class TestJsonlAndCsv:
    def test_our_events(self, logs):
        qs, errors, _, _, fmt = parse_file(logs / "events.jsonl")
        assert fmt == "jsonl"
        assert qs[0] == Query(1763629200125, "www.example.com", "A", "192.0.2.10", "NOERROR", "udp", 160)
        assert reasons(errors) == [(3, "missing_field:name"), (4, "bad_ts"), (5, "not_json")]

    def test_generic_objects_by_alias(self, logs):
        qs, errors, *_ = parse_file(logs / "generic.jsonl")
        assert [(q.ts, q.name, q.client, q.qtype) for q in qs] == [
            (1763629200125, "www.example.com", "192.0.2.10", "A"),
            (1763629200250, "qxvbtrzlmwpk.net", "192.0.2.11", "AAAA"),
            (1763629200000, "paypal-verify.weebly.com", "192.0.2.12", "A"),
        ]
        assert reasons(errors) == [(4, "missing_field:name")]

    def test_csv_by_header_names(self, logs):
        qs, errors, _, _, fmt = parse_file(logs / "queries.csv")
        assert fmt == "csv"
        assert qs[0] == Query(1763629200125, "www.example.com", "A", "192.0.2.10", "NOERROR", None, None)
        assert qs[2].name == "my printer.local"
        assert reasons(errors) == [(5, "bad_row"), (6, "bad_ts")]

    def test_csv_with_mapping(self, logs):
        qs, errors, *_ = parse_file(logs / "custom.csv", "csv", {"ts": "when", "client": "who", "name": "what"})
        assert [q.name for q in qs] == ["www.example.com", "qxvbtrzlmwpk.net"] and not errors

    def test_csv_without_name_column_fails_once(self, logs):
        qs, errors, *_ = parse_file(logs / "custom.csv", "csv")
        assert not qs and [e.reason for e in errors] == ["bad_header"]

    @pytest.mark.parametrize("header,ok", [("\\x09", True), (",", True), ("\\B", False), ("\\x0", False)])
    def test_zeek_separator_header_is_read_or_reported(self, header, ok):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("error")  # an unknown escape is a reported header, never a warning
            err = parse_zeek.ZeekTsv().header(f"#separator {header}", 1)
        assert (err is None) == ok and (ok or err.reason == "bad_header")

    def test_bad_mapping(self):
        from dnsentinel.producers.mapping import MappingError, parse_mapping

        assert parse_mapping("name=q, ts=t") == {"name": "q", "ts": "t"}
        with pytest.raises(MappingError):
            parse_mapping("nam=q")
        with pytest.raises(MappingError):
            parse_mapping("name")


class TestDetection:
    @pytest.mark.parametrize("head,fmt", [
        (b"\x00\x00\x00\x00\x00\x00\x00\x1e", "dnstap"),
        (b"#separator \\x09\n#fields\tts\n", "zeek"),
        (b'{"ts":1.0,"uid":"C1","id.orig_h":"1.2.3.4","query":"a.com"}\n', "zeek-json"),
        (b'{"ts":1,"name":"a.com"}\n', "jsonl"),
        (b'[INFO] 1.2.3.4:5 - 1 "A IN a.com. udp 1 false 512" NOERROR qr 1 0.1s\n', "coredns-log"),
        (b"client @0x1 1.2.3.4#5 (a.com): query: a.com IN A + (1.1.1.1)\n", "bind"),
        (b"ts,query,client\n1,a.com,1.2.3.4\n", "csv"),
        (b"hello world\n", None),
        (b"", None),
    ])
    def test_detect(self, head, fmt):
        assert detect(head) == fmt

    @pytest.mark.parametrize("head,fmt", [
        # the earliest sign wins, whatever the registry order (the last line of a head may be cut: not read)
        (b"client @0x1 1.2.3.4#5 (a.com): query: a.com IN A + (1.1.1.1)\n{\"ts\":1,\"name\":\"a.com\"}\n(cut)\n", "bind"),
        (b'{"ts":1,"name":"a.com"}\n{"ts":1.0,"uid":"C1","id.orig_h":"1.2.3.4","query":"a.com"}\n(cut)\n', "jsonl"),
        # a JSON line quoting a BIND or CoreDNS message is JSON (Docker's json-file logs)
        (b'{"log":"client 1.2.3.4#5 (a.com): query: a.com IN A +"}\n', "jsonl"),
        (b'{"log":"[INFO] 1.2.3.4:5 - 1 \\"A IN a.com. udp 1 false 512\\" NOERROR qr 1 0.1s"}\n', "jsonl"),
        # a broken JSON line is no sign of anything; a CSV header only when nothing else speaks
        (b"{not json client  query: \nname,ts\n(cut)\n", None),
        (b"name,ts,client\nclient 1.2.3.4#5 (a.com): query: a.com IN A +\n(cut)\n", "bind"),
    ])
    def test_detect_earliest_sign(self, head, fmt):
        assert detect(head) == fmt


def test_registry_is_the_one_list_of_formats():
    from dnsentinel.producers import formats
    from dnsentinel.producers.cli import replay_cmd

    modules = sorted(p.stem for p in Path(formats.__file__).parent.glob("parse_*.py"))
    assert sorted(f.parse.__module__.rsplit(".", 1)[1] for f in formats.PARSERS) == modules  # every parser registered
    assert formats.FORMATS == ("zeek", "zeek-json", "bind", "coredns-log", "dnstap", "jsonl", "csv")
    assert [f for f in formats.FORMATS if formats.is_binary(f)] == ["dnstap"]
    import typing

    choices = typing.get_args(typing.get_type_hints(replay_cmd)["fmt"])
    assert choices == ("auto", *formats.FORMATS)  # --format offers exactly the registry
    with pytest.raises(formats.UnknownFormat, match="choose one of zeek, zeek-json"):
        formats.text_parser("nope", [], ParseStats(), {})


@pytest.mark.parametrize("value,ms", [
    (1763629200, 1763629200000), (1763629200.5, 1763629200500), ("1763629200125", 1763629200125),
    (1763629200125000, 1763629200125), ("2025-11-20T09:00:00Z", 1763629200000),
    ("2025-11-20T10:00:00+01:00", 1763629200000),
])
def test_timestamp_units(value, ms):
    assert ts_from_value(value) == ms


@pytest.mark.parametrize("value", [True, "nan", float("inf"), "tomorrow", None])
def test_bad_timestamps(value):
    with pytest.raises((ValueError, TypeError)):
        ts_from_value(value)
