"""dnstap files (Frame Streams + dnstap protobuf), as written by CoreDNS, BIND, Unbound, Knot.

Each query is logged twice (a ``*_QUERY`` and a ``*_RESPONSE`` message); events come from the
query messages only, so a replay counts each query once. Responses are counted as ignored. The
DNS message inside is parsed with dnspython; its question gives name and type, and the time is
the ``query_time`` the server recorded.
"""

from __future__ import annotations

import ipaddress
from typing import BinaryIO

from dnsentinel.producers import dnstap_wire as w
from dnsentinel.producers.records import Ignored, LogFormat, ParseError, ParseStats, Parser, Query
from dnsentinel.verdict_cache.events import MIN_TS_MS

FRAME_STREAMS_MAGIC = b"\x00\x00\x00\x00"
"""A Frame Streams file opens with a zero-length "control frame" escape."""


def parse(stream: BinaryIO, stats: ParseStats) -> Parser:
    """Yield one item per data frame (``line_no`` is the frame number)."""
    frame_no = 0
    frames = w.read_frames(stream)
    while True:
        try:
            payload = next(frames)
        except StopIteration:
            return
        except w.FrameError as exc:
            yield ParseError(frame_no + 1, "bad_frame", str(exc))
            return
        frame_no += 1
        stats.lines = frame_no
        try:
            yield _decode(payload, frame_no)
        except w.WireError as exc:
            yield ParseError(frame_no, "bad_protobuf", str(exc))


def _decode(payload: bytes, frame_no: int) -> Query | ParseError | Ignored:
    # dnspython is imported here, not at the top: the CLI reads FORMAT for --format at start-up.
    import dns.exception
    import dns.message
    import dns.rdatatype

    top = w.fields(payload)
    if top.get(w.DNSTAP_TYPE, w.DNSTAP_TYPE_MESSAGE) != w.DNSTAP_TYPE_MESSAGE:
        return Ignored(frame_no, "not_a_message")
    raw_msg = top.get(w.DNSTAP_MESSAGE)
    if not isinstance(raw_msg, bytes):
        return ParseError(frame_no, "bad_protobuf", "no message field")
    msg = w.fields(raw_msg)
    mtype = msg.get(w.M_TYPE)
    type_name = w.MESSAGE_TYPES.get(mtype) if isinstance(mtype, int) else None
    if type_name is None:
        return ParseError(frame_no, "bad_protobuf", f"message type {mtype!r}")
    if type_name.endswith("_RESPONSE"):
        return Ignored(frame_no, "dnstap_response")
    wire = msg.get(w.M_QUERY_MESSAGE)
    if not isinstance(wire, bytes):
        return ParseError(frame_no, "no_query_message")
    sec = msg.get(w.M_QUERY_TIME_SEC)
    if not isinstance(sec, int):
        return ParseError(frame_no, "bad_ts", "no query_time_sec")
    nsec = msg.get(w.M_QUERY_TIME_NSEC, 0)
    ts = sec * 1000 + (nsec if isinstance(nsec, int) else 0) // 1_000_000
    if ts < MIN_TS_MS:
        return ParseError(frame_no, "bad_ts", str(sec))
    try:
        dns_msg = dns.message.from_wire(wire, question_only=True)
    except (dns.exception.DNSException, ValueError, IndexError, UnicodeError) as exc:
        return ParseError(frame_no, "bad_dns_message", f"{type(exc).__name__}: {exc}"[:80])
    if not dns_msg.question:
        return ParseError(frame_no, "no_question")
    q = dns_msg.question[0]
    name = q.name.to_text()
    client = ""
    addr = msg.get(w.M_QUERY_ADDRESS)
    if isinstance(addr, bytes) and len(addr) in (4, 16):
        client = str(ipaddress.ip_address(addr))
    proto_num = msg.get(w.M_SOCKET_PROTOCOL)
    proto = w.SOCKET_PROTOCOLS.get(proto_num) if isinstance(proto_num, int) else None
    return Query(ts, name, dns.rdatatype.to_text(q.rdtype), client, None, proto, None)


def sniff(head: bytes, lines: list[str]) -> int | None:
    return -1 if head[:4] == FRAME_STREAMS_MAGIC else None


FORMAT = LogFormat("dnstap", sniff, parse, binary=True)
