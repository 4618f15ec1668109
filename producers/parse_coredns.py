"""CoreDNS ``log`` plugin, default (common) and combined formats.

The default format is
``{remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}" {rcode} {>rflags} {rsize} {duration}``
written after ``[INFO] `` (and, in CoreDNS ≥ 1.4, an RFC 3339 timestamp that most log shippers
keep). A line without that timestamp gets the replay time; the parser notes it once.
"""

from __future__ import annotations

import re
from typing import Iterable

from dnsentinel.producers.records import LogFormat, ParseStats, Parser, Query
from dnsentinel.producers.timeprefix import first_text_line, parse_prefixed

_BODY = re.compile(
    r"\[INFO\] (?:plugin/log: )?(?P<remote>\[[0-9A-Fa-f:.%\w]+\]|[^\s:]+):(?P<port>\d+) - (?P<id>\d+) "
    r'"(?P<qtype>\S+) (?P<qclass>\S+) (?P<name>\S+) (?P<proto>\S+) (?P<size>\d+) (?P<do>\S+) (?P<bufsize>\d+)" '
    r"(?P<rcode>\S+) (?P<rflags>\S*) (?P<rsize>\d+) (?P<duration>[0-9.eE+-]+)s"
)


def parse(lines: Iterable[str], stats: ParseStats) -> Parser:
    return parse_prefixed(lines, stats, "[INFO] ", _BODY, "not_coredns_log", "CoreDNS log", _query)


def _query(m: re.Match[str], ts: int) -> Query:
    try:
        latency: int | None = int(float(m["duration"]) * 1_000_000)
    except (ValueError, OverflowError):
        latency = None
    return Query(ts, m["name"], m["qtype"], m["remote"].strip("[]"), m["rcode"], m["proto"], latency)


def sniff(head: bytes, lines: list[str]) -> int | None:
    return first_text_line(lines, lambda line: "[INFO] " in line and '" ' in line and " - " in line)


FORMAT = LogFormat("coredns-log", sniff, parse)
