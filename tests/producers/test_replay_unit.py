"""Encoding, the replay loop (both paths), sources, pacing and the CLI, without Kafka."""

from __future__ import annotations

import io
import json
import sys
import threading
import time

import pytest

from dnsentinel.producers.encode import EventEncoder
from dnsentinel.producers.pacing import Pacer
from dnsentinel.producers.records import Query
from dnsentinel.producers.replay import ReplayOptions, replay
from dnsentinel.producers.sources import follow_lines, open_source
from dnsentinel.verdict_cache.events import encode_event, parse_event
from dnsentinel.verdict_cache.names import routing_key

from .helpers import LOGS

ALL_LOGS = sorted(p for p in LOGS.iterdir() if not p.name.endswith(".py") and p.name != "custom.csv")


class Recorder:
    """A sink that keeps what it was given."""

    def __init__(self) -> None:
        self.messages: list[tuple[bytes, str]] = []

    def produce(self, key: bytes, value: str | bytes) -> None:
        self.messages.append((key, value if isinstance(value, str) else value.decode()))


def run(paths, **kw):
    sink = Recorder()
    summary = replay([str(p) for p in paths], sink, ReplayOptions(**kw))
    return sink, summary


@pytest.mark.parametrize("path", ALL_LOGS, ids=lambda p: p.name)
def test_every_event_is_valid_and_keyed_per_spec(path):
    sink, summary = run([path])
    assert summary.produced == len(sink.messages) > 0
    for key, value in sink.messages:
        ev = parse_event(value.encode())
        assert ev.source == "replay" and ev.origin == path.name
        assert key == routing_key(ev.name)
        assert encode_event(ev) == value.encode()  # the contract's layout, byte for byte


def test_fast_path_matches_general_path(logs, tmp_path):
    # Repeat the fixture so the second half runs through the fast path's warm caches.
    body = (logs / "zeek_dns.log").read_text()
    data_lines = [ln for ln in body.splitlines(True) if not ln.startswith("#")]
    big = tmp_path / "big.log"
    big.write_text(body + "".join(data_lines) * 50)
    fast, s_fast = run([big])
    general, s_general = run([big], rate=1e9)  # pacing forces the general loop
    assert fast.messages == general.messages
    assert s_fast.skipped == s_general.skipped and s_fast.ignored == s_general.ignored
    assert s_fast.files[0].unscorable == s_general.files[0].unscorable
    assert s_fast.lines == s_general.lines == len(big.read_text().splitlines())


def test_summary_counts_every_line(logs):
    _, summary = run([logs / "zeek_dns.log"])
    f = summary.files[0]
    assert (f.produced, sum(f.skipped.values()), sum(f.ignored.values())) == (6, 2, 1)
    assert f.examples == ["line 14: too_few_fields (4 columns, need 16)", "line 15: bad_ts ('not-a-time')"]
    assert f.unscorable == 2  # "my printer.local" (invalid) and the in-addr.arpa name


def test_truncated_compressed_file_keeps_data_before_the_cut(logs):
    _, summary = run([logs / "zeek_dns_cut.log.gz"])
    f = summary.files[0]
    assert f.produced > 6 and f.skipped["truncated_file"] == 1
    assert "truncated" in f.examples[-1]


def test_unknown_format_and_missing_file_are_errors_not_crashes(logs, tmp_path):
    _, summary = run([logs / "custom.csv", tmp_path / "missing.log", logs / "zeek_dns.log"])
    assert "format not recognised" in summary.files[0].error
    assert "cannot open" in summary.files[1].error
    assert summary.files[2].produced == 6


def test_names_collected_for_wait_verdicts(logs):
    _, summary = run([logs / "zeek_dns.log"], collect_names=True)
    assert summary.names == {"www.example.com", "qxvbtrzlmwpk.net", "xn--caf-dma.example.org", "paypal-verify.weebly.com"}


def test_encoder_rejects_what_the_contract_would_dead_letter():
    enc = EventEncoder("replay", "f.log", now_ms=lambda: 1763629200000)
    ok = Query(1763629200000, "a.example.com", "A", "192.0.2.1")
    assert enc.encode(ok._replace(ts=5)) == "bad_ts"
    assert enc.encode(ok._replace(ts=1763629200000 + 2 * 86_400_000)) == "bad_ts"
    assert enc.encode(ok._replace(client="not-an-ip")) == "bad_client"
    assert enc.encode(ok._replace(qtype="A B")) == "bad_qtype"
    assert enc.encode(ok._replace(name="x" * 1100)) == "name_too_long"
    assert json.loads(enc.encode(ok._replace(qtype="28")).value)["qtype"] == "AAAA"
    assert "proto" not in json.loads(enc.encode(ok._replace(proto="doh")).value)


def test_encode_seen_is_encode_from_the_caches():
    enc = EventEncoder("replay", "f.log", server="h", now_ms=lambda: 1763629200000)
    q = Query(1763629200125, "WWW.Example.COM.", "AAAA", "192.0.2.1", "NOERROR", "udp", 1200)
    fields = ("1763629200125", q.name, q.qtype, q.client, q.rcode, q.proto, "0001200")
    assert enc.encode_seen(*fields) is None  # nothing seen yet: encode() decides and fills the caches
    full = enc.encode(q)
    assert enc.encode_seen(*fields) == tuple(full)
    assert enc.encode_seen(*fields[:-1], None) == tuple(enc.encode(q._replace(latency_us=None)))
    assert enc.unscorable == 0
    for ts in ("0763629200125", "176362920012", "17636292001x5", "1763715600001"):  # zero-led, short, odd, > now+1d
        assert enc.encode_seen(ts, *fields[1:]) is None
    assert enc.encode_seen(*fields[:-1], "1" * 13) is None  # over the contract's latency range
    assert enc.encode_seen(fields[0], "new.example", *fields[2:]) is None


def test_invalid_name_bytes_become_escapes():
    enc = EventEncoder("replay", "f.log", server="")
    out = enc.encode(Query(1763629200000, "bad\udcffname.com\x01", "A", ""))
    ev = parse_event(out.value.encode())
    assert ev.name == "bad\\255name.com\\001" and out.key == ev.name.encode() and out.scorable is None


def test_stdin(monkeypatch, logs):
    fake = io.TextIOWrapper(io.BytesIO((logs / "zeek_dns.log.gz").read_bytes()))
    monkeypatch.setattr(sys, "stdin", fake)
    sink, summary = run(["-"])
    assert summary.files[0].fmt == "zeek" and summary.produced == 6
    assert json.loads(sink.messages[0][1])["origin"] == "-"


def test_follow_reads_lines_as_they_are_appended(tmp_path):
    path = tmp_path / "growing.log"
    path.write_bytes(b"")
    src = open_source(str(path), follow=True)
    stop = threading.Event()
    got: list[str] = []

    def reader() -> None:
        for line in follow_lines(src.stream, poll_s=0.02, stop=stop.is_set):
            got.append(line)

    t = threading.Thread(target=reader)
    t.start()
    with open(path, "ab") as out:
        out.write(b"first\nsec")
        out.flush()
        time.sleep(0.2)
        assert got == ["first\n"]  # a partial line waits for its newline
        out.write(b"ond\n")
        out.flush()
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    t.join(5)
    src.close()
    assert got == ["first\n", "second\n"]


def test_follow_refuses_compressed_files(logs):
    from dnsentinel.producers.sources import SourceError

    with pytest.raises(SourceError, match="uncompressed"):
        open_source(str(logs / "zeek_dns.log.gz"), follow=True)


def test_pacer_rate():
    pacer = Pacer(rate=200)
    start = time.monotonic()
    for _ in range(40):
        pacer.wait(0)
    assert 0.15 <= time.monotonic() - start < 1.0


def test_pacer_speed_follows_log_time():
    pacer = Pacer(speed=10)
    start = time.monotonic()
    for ts in (0, 1000, 2000, 1500):  # 2 s of log time at 10x, out-of-order line never waits back
        pacer.wait(1763629200000 + ts)
    assert 0.15 <= time.monotonic() - start < 1.0


def test_cli_dry_run(logs):
    from typer.testing import CliRunner

    from dnsentinel.cli.main import app

    result = CliRunner().invoke(app, ["replay", "--dry-run", "--no-progress", str(logs / "bind_query.log")])
    assert result.exit_code == 0, result.output
    assert "events produced 5" in result.output and "not_bind_query" in result.output


def test_cli_rejects_conflicting_pacing(logs):
    from typer.testing import CliRunner

    from dnsentinel.cli.main import app

    result = CliRunner().invoke(app, ["replay", "--dry-run", "--rate", "5", "--speed", "2", str(logs / "bind_query.log")])
    assert result.exit_code != 0


def test_fast_path_edge_values_match_general_path(tmp_path):
    from dnsentinel.producers.records import decimal_to_int

    assert decimal_to_int("1646849480.001000", 3) == 1646849480001  # float would give ...000
    assert decimal_to_int("0.000291", 6) == 291
    assert decimal_to_int("1.5e3", 3) == 1500000
    row = "{ts}\tC1\t192.0.2.1\t5\t10.0.0.1\t53\tudp\t1\t{rtt}\twww.example.com\t1\tC_INTERNET\t1\tA\t0\tNOERROR\tF\n"
    cases = [("1646849480.001000", "0.000291"), ("0000000000.125000", "0.1"), ("1763629200.125000", "12.345678"),
             ("1763629200.125000", "-0.500000"), ("176362920.0125000", "0.0000001"), ("1763629200.12500", "1e-3"),
             ("9763629200.125000", "0.000001"), ("1763629200.125000", "99999999.000000")]
    body = "".join(row.format(ts=t, rtt=r) for t, r in cases)
    path = tmp_path / "edge.log"
    path.write_text(body * 3)  # the 2nd and 3rd copies meet warm caches
    fast, s1 = run([path], fmt="zeek")
    general, s2 = run([path], fmt="zeek", rate=1e9)
    assert fast.messages == general.messages and s1.skipped == s2.skipped
    assert json.loads(fast.messages[0][1])["ts"] == 1646849480001
    assert json.loads(fast.messages[0][1])["latency_us"] == 291


def test_replay_follow_produces_appended_lines_until_stopped(logs, tmp_path):
    path = tmp_path / "live.log"
    lines = (logs / "zeek_dns.log").read_text().splitlines(True)
    path.write_text("".join(lines[:9]))  # headers and the first query
    sink = Recorder()
    stop = threading.Event()
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("s", replay([str(path)], sink, ReplayOptions(follow=True), stop=stop.is_set)))
    t.start()
    deadline = time.monotonic() + 10
    while len(sink.messages) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    with open(path, "a") as fh:
        fh.write("".join(lines[9:11]))
    while len(sink.messages) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    t.join(10)
    assert len(sink.messages) == 3 and out["s"].files[0].produced == 3
