"""Property tests: no input, however broken, makes a parser raise; it yields items or ParseErrors."""

from __future__ import annotations

import io
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnsentinel.producers import formats
from dnsentinel.producers.dnstap_wire import write_frames
from dnsentinel.producers.encode import EventEncoder
from dnsentinel.producers.records import Ignored, ParseError, ParseStats, Query
from dnsentinel.verdict_cache.events import encode_event, parse_event

TEXT_FORMATS = [f for f in formats.FORMATS if not formats.is_binary(f)]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Lines that look like each format, with pieces swapped for arbitrary text: the interesting
# cases are near-misses, not random noise.
_piece = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30) | st.sampled_from(
    ["-", "", "1e400", "nan", "\\x41", "\\", "[::1]", "#", '"', "{", "0", "99999999999999999999"])


@st.composite
def near_miss_lines(draw) -> str:
    template = draw(st.sampled_from([
        "{0}\tC1\t{1}\t5\t10.0.0.1\t53\t{2}\t1\t{3}\t{4}\t1\tC_INTERNET\t1\t{5}\t0\t{6}\tF\n",
        "#fields\t{0}\t{1}\n", "#separator {0}\n", "#unset_field\t{0}\n",
        '{{"ts":{0},"query":"{1}","id.orig_h":"{2}","qtype_name":"{3}"}}\n',
        '{{"ts":"{0}","name":{1},"client":"{2}"}}\n',
        "{0} client @0x1 {1}#{2} ({3}): query: {4} IN {5} {6} (1.1.1.1)\n",
        '{0} [INFO] {1}:{2} - 1 "{3} IN {4} udp 1 false 512" {5} {6} 1 {3}s\n',
        "{0},{1},{2},{3}\n",
    ]))
    return template.format(*(draw(_piece) for _ in range(7)))


lines_strategy = st.lists(near_miss_lines() | st.text(max_size=200), max_size=12)


def _check(items) -> None:
    for item in items:
        assert type(item) in (Query, Ignored) or isinstance(item, ParseError)


@SETTINGS
@given(fmt=st.sampled_from(TEXT_FORMATS), lines=lines_strategy)
def test_text_parsers_never_raise(fmt, lines):
    header = {"csv": ["ts,name,client,qtype\n"], "zeek": []}.get(fmt, [])
    _check(list(formats.text_parser(fmt, header + lines, ParseStats(), {})))


@SETTINGS
@given(lines=lines_strategy)
def test_encoder_output_is_always_a_valid_event_or_a_reason(lines):
    enc = EventEncoder("replay", "prop.log")
    for fmt in TEXT_FORMATS:
        for item in formats.text_parser(fmt, lines, ParseStats(), {}):
            if type(item) is Query:
                out = enc.encode(item)
                if type(out) is not str:
                    ev = parse_event(out.value.encode("utf-8"))  # raises InvalidEvent if we got it wrong
                    assert encode_event(ev) == out.value.encode("utf-8")  # the contract's layout


@SETTINGS
@given(st.binary(max_size=300))
def test_detect_never_raises(data):
    assert formats.detect(data) in (*formats.FORMATS, None)


@SETTINGS
@given(frames=st.lists(st.binary(max_size=120), max_size=6), cut=st.integers(0, 2000), raw=st.binary(max_size=200))
def test_dnstap_parser_never_raises(frames, cut, raw):
    buf = io.BytesIO()
    write_frames(buf, frames)
    for data in (buf.getvalue()[:cut], buf.getvalue(), struct.pack(">II", 0, 8) + raw, raw):
        _check(list(formats.binary_parser("dnstap", io.BytesIO(data), ParseStats())))


@SETTINGS
@given(lines=st.lists(near_miss_lines(), max_size=10), repeat=st.integers(1, 3))
def test_zeek_fast_path_equals_general_path(lines, repeat):
    import tempfile
    from pathlib import Path

    from dnsentinel.producers.replay import ReplayOptions, replay

    from .test_replay_unit import Recorder

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.log"
        path.write_text("".join(lines * repeat), encoding="utf-8", errors="surrogateescape")
        fast, general = Recorder(), Recorder()
        s1 = replay([str(path)], fast, ReplayOptions(fmt="zeek"))
        s2 = replay([str(path)], general, ReplayOptions(fmt="zeek", rate=1e9))
    assert fast.messages == general.messages
    assert s1.skipped == s2.skipped and s1.ignored == s2.ignored
