"""Zeek ``dns.log`` in its native TSV form (``#separator``/``#fields`` headers).

This is the replay fast path: one ``str.split`` per line with a ``maxsplit`` just past the last
column we need, no regex. The ``#fields`` header decides the column positions, so logs with
extra or reordered columns work; a file without one falls back to Zeek's default layout.
"""

from __future__ import annotations

import re
from typing import Iterable

from dnsentinel.producers.records import MIN_TS_MS, Ignored, ParseError, ParseStats, Parser, Query

FORMAT = "zeek"

DEFAULT_FIELDS = (
    "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto trans_id rtt query qclass qclass_name "
    "qtype qtype_name rcode rcode_name AA TC RD RA Z answers TTLs rejected"
).split()

_HEX_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


def _zeek_unescape(value: str) -> str:
    r"""Zeek writes non-printable bytes as ``\xNN``; the SPEC's presentation form uses ``\DDD``."""
    return _HEX_ESCAPE.sub(lambda m: "\\%03d" % int(m.group(1), 16), value)


def _layout(fields: list[str]) -> tuple[int, int, int, int, int, int, int] | None:
    """Column indexes of ts, client, proto, rtt, query, qtype_name, rcode_name."""
    pos = {name: i for i, name in enumerate(fields)}
    if "ts" not in pos or "query" not in pos:
        return None
    return (
        pos["ts"],
        pos.get("id.orig_h", -1),
        pos.get("proto", -1),
        pos.get("rtt", -1),
        pos["query"],
        pos.get("qtype_name", pos.get("qtype", -1)),
        pos.get("rcode_name", -1),
    )


def parse(lines: Iterable[str], stats: ParseStats) -> Parser:
    """Yield a Query per data line; header lines configure the parser."""
    sep = "\t"
    unset = "-"
    empty = "(empty)"
    layout = _layout(DEFAULT_FIELDS)
    assert layout is not None
    i_ts, i_client, i_proto, i_rtt, i_query, i_qtype, i_rcode = layout
    width = max(layout) + 1
    saw_fields = False
    line_no = 0
    for line in lines:
        line_no += 1
        stats.lines = line_no
        if line[-1:] == "\n":
            line = line[:-1]
        if line[-1:] == "\r":
            line = line[:-1]
        if not line:
            continue
        if line[0] == "#":
            key, _, value = line.partition(" " if line.startswith("#separator") else sep)
            if key == "#separator":
                sep = value.encode("ascii", "replace").decode("unicode_escape") or "\t"
            elif key == "#unset_field":
                unset = value
            elif key == "#empty_field":
                empty = value
            elif key == "#fields":
                found = _layout(value.split(sep))
                if found is None:
                    yield ParseError(line_no, "bad_header", "#fields has no ts or query column")
                    continue
                i_ts, i_client, i_proto, i_rtt, i_query, i_qtype, i_rcode = found
                width = max(found) + 1
                saw_fields = True
            continue
        cols = line.split(sep, width)
        if len(cols) < width:
            yield ParseError(line_no, "too_few_fields", f"{len(cols)} columns, need {width}")
            continue
        name = cols[i_query]
        if name == unset or name == empty or not name:
            yield Ignored(line_no, "no_query")
            continue
        try:
            ts = int(float(cols[i_ts]) * 1000)
        except (ValueError, OverflowError):
            yield ParseError(line_no, "bad_ts", repr(cols[i_ts][:40]))
            continue
        if ts < MIN_TS_MS:
            yield ParseError(line_no, "bad_ts", cols[i_ts][:40])
            continue
        if "\\x" in name:
            name = _zeek_unescape(name)
        qtype = cols[i_qtype] if i_qtype >= 0 else "A"
        if qtype == unset:
            qtype = "TYPE0"
        client = cols[i_client] if i_client >= 0 else ""
        if client == unset:
            client = ""
        rcode = cols[i_rcode] if i_rcode >= 0 else None
        if rcode == unset:
            rcode = None
        proto = cols[i_proto] if i_proto >= 0 else None
        if proto == unset:
            proto = None
        latency = None
        if i_rtt >= 0:
            rtt = cols[i_rtt]
            if rtt != unset:
                try:
                    latency = int(float(rtt) * 1_000_000)
                except (ValueError, OverflowError):
                    latency = None
        yield Query(ts, name, qtype, client, rcode, proto, latency)
    if line_no and not saw_fields:
        stats.notes.append("no #fields header: assumed Zeek's default dns.log columns")
