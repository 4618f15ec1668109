"""BIND query log lines (``category queries``), with or without a date or syslog prefix.

``client @0x7f… 10.0.0.5#53124 (example.com): [view v: ]query: example.com IN A +E(0)K (10.0.0.1)``.
Older BIND omits the ``@0x…`` handle. The query name comes from the ``query:`` part, never from
the parenthesised copy (BIND shortens it on some versions).
"""

from __future__ import annotations

import re
from typing import Iterable

from dnsentinel.producers.records import LogFormat, ParseStats, Parser, Query
from dnsentinel.producers.timeprefix import first_text_line, parse_prefixed
from dnsentinel.verdict_cache.vocabulary import Proto

_BODY = re.compile(
    r"client (?:@0x[0-9a-fA-F]+ )?(?P<client>\S+?)#(?P<port>\d+)(?: \([^)]*\))?:"
    r"(?: view [^:]+:)? query: (?P<name>\S+) (?P<qclass>\S+) (?P<qtype>\S+) (?P<flags>\S*)"
)


def parse(lines: Iterable[str], stats: ParseStats) -> Parser:
    return parse_prefixed(lines, stats, "client ", _BODY, "not_bind_query", "BIND", _query)


def _query(m: re.Match[str], ts: int) -> Query:
    proto: Proto = "tcp" if "T" in m["flags"] else "udp"
    return Query(ts, m["name"], m["qtype"], m["client"], None, proto, None)


def sniff(head: bytes, lines: list[str]) -> int | None:
    return first_text_line(lines, lambda line: "client " in line and " query: " in line)


FORMAT = LogFormat("bind", sniff, parse)
