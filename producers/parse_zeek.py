"""Zeek ``dns.log`` in its native TSV form (``#separator``/``#fields`` headers).

This is the replay fast path: one ``str.split`` per line with a ``maxsplit`` just past the last
column we need, no regex. The ``#fields`` header decides the column positions, so logs with
extra or reordered columns work; a file without one falls back to Zeek's default layout.
"""

from __future__ import annotations

import re
from typing import Iterable

from dnsentinel.producers.records import Ignored, LogFormat, ParseError, ParseStats, Parser, Query, decimal_to_int
from dnsentinel.verdict_cache.events import MIN_TS_MS

HEADERS = ("#separator", "#fields", "#set_separator", "#path")
"""The header lines a Zeek TSV log opens with."""

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


class ZeekTsv:
    """Parser state: the header lines seen so far decide separator, unset marker and columns."""

    def __init__(self) -> None:
        self.sep = "\t"
        self.unset = "-"
        self.empty = "(empty)"
        self.saw_fields = False
        self.set_layout(_layout(DEFAULT_FIELDS))  # type: ignore[arg-type]

    def set_layout(self, layout: tuple[int, int, int, int, int, int, int]) -> None:
        self.layout = layout
        self.width = max(layout) + 1
        """``str.split`` maxsplit: one past the last column we read."""

    def header(self, line: str, line_no: int) -> ParseError | None:
        key, _, value = line.partition(" " if line.startswith("#separator") else self.sep)
        if key == "#separator":
            sep = _separator(value)
            if sep is None:
                return ParseError(line_no, "bad_header", f"#separator {value[:20]!r}")
            self.sep = sep
        elif key == "#unset_field":
            self.unset = value
        elif key == "#empty_field":
            self.empty = value
        elif key == "#fields":
            found = _layout(value.split(self.sep))
            if found is None:
                return ParseError(line_no, "bad_header", "#fields has no ts or query column")
            self.set_layout(found)
            self.saw_fields = True
        return None

    def parse_line(self, line: str, line_no: int) -> Query | ParseError | Ignored | None:
        """One line: a Query, a ParseError, an Ignored, or None for headers and blank lines."""
        if line[-1:] == "\n":
            line = line[:-1]
        if line[-1:] == "\r":
            line = line[:-1]
        if not line:
            return None
        if line[0] == "#":
            return self.header(line, line_no)
        i_ts, i_client, i_proto, i_rtt, i_query, i_qtype, i_rcode = self.layout
        unset = self.unset
        width = self.width
        cols = line.split(self.sep, width)
        if len(cols) < width:
            return ParseError(line_no, "too_few_fields", f"{len(cols)} columns, need {width}")
        name = cols[i_query]
        if name == unset or name == self.empty or not name:
            return Ignored(line_no, "no_query")
        try:
            ts = decimal_to_int(cols[i_ts], 3)
        except (ValueError, OverflowError):
            return ParseError(line_no, "bad_ts", repr(cols[i_ts][:40]))
        if ts < MIN_TS_MS:
            return ParseError(line_no, "bad_ts", cols[i_ts][:40])
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
        if i_rtt >= 0 and cols[i_rtt] != unset:
            try:
                latency = decimal_to_int(cols[i_rtt], 6)
            except (ValueError, OverflowError):
                latency = None
        return Query(ts, name, qtype, client, rcode, proto, latency)

    def finish(self, stats: ParseStats, lines: int) -> None:
        if lines and not self.saw_fields:
            stats.notes.append("no #fields header: assumed Zeek's default dns.log columns")


def parse(lines: Iterable[str], stats: ParseStats) -> Parser:
    """Yield a Query per data line; header lines configure the parser."""
    z = ZeekTsv()
    line_no = 0
    for line in lines:
        line_no += 1
        stats.lines = line_no
        item = z.parse_line(line, line_no)
        if item is not None:
            yield item
    z.finish(stats, line_no)


def sniff(head: bytes, lines: list[str]) -> int | None:
    """A Zeek TSV log opens with its header."""
    return 0 if lines and lines[0].startswith(HEADERS) else None


def _separator(value: str) -> str | None:
    """A ``#separator`` value: Zeek writes ``\\x09``; plain characters are taken as they are.

    None for anything else with a backslash (``\\B``, a cut-off ``\\x0``): a bad header, reported.
    """
    out, i = [], 0
    while i < len(value):
        if value[i] != "\\":
            out.append(value[i])
            i += 1
            continue
        digits = value[i + 2:i + 4]
        if value[i + 1:i + 2] != "x" or len(digits) != 2 or any(c not in "0123456789abcdefABCDEF" for c in digits):
            return None
        out.append(chr(int(digits, 16)))
        i += 4
    return "".join(out) or "\t"


FORMAT = LogFormat("zeek", sniff, parse)

