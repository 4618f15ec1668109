"""BIND query log lines (``category queries``), with or without a date or syslog prefix.

``client @0x7f… 10.0.0.5#53124 (example.com): [view v: ]query: example.com IN A +E(0)K (10.0.0.1)``.
Older BIND omits the ``@0x…`` handle. The query name comes from the ``query:`` part, never from
the parenthesised copy (BIND shortens it on some versions).
"""

from __future__ import annotations

import re
from typing import Iterable

from dnsentinel.producers.records import MIN_TS_MS, ParseError, ParseStats, Parser, Query
from dnsentinel.producers.timeprefix import now_ms, split_prefix

FORMAT = "bind"

_BODY = re.compile(
    r"client (?:@0x[0-9a-fA-F]+ )?(?P<client>\S+?)#(?P<port>\d+)(?: \([^)]*\))?:"
    r"(?: view [^:]+:)? query: (?P<name>\S+) (?P<qclass>\S+) (?P<qtype>\S+) (?P<flags>\S*)"
)


def parse(lines: Iterable[str], stats: ParseStats) -> Parser:
    noted = False
    line_no = 0
    for line in lines:
        line_no += 1
        stats.lines = line_no
        if not line.strip():
            continue
        try:
            split = split_prefix(line, "client ")
        except (ValueError, KeyError, OverflowError) as exc:
            yield ParseError(line_no, "bad_ts", str(exc)[:80])
            continue
        if split is None:
            yield ParseError(line_no, "not_bind_query", line.strip()[:60])
            continue
        ts, body = split
        m = _BODY.match(body)
        if m is None:
            yield ParseError(line_no, "not_bind_query", body.strip()[:60])
            continue
        if ts is None:
            ts = now_ms()
            if not noted:
                stats.notes.append("BIND lines without a timestamp: replay time used")
                noted = True
        elif ts < MIN_TS_MS:
            yield ParseError(line_no, "bad_ts")
            continue
        proto = "tcp" if "T" in m["flags"] else "udp"
        yield Query(ts, m["name"], m["qtype"], m["client"], None, proto, None)
