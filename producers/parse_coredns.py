"""CoreDNS ``log`` plugin, default (common) and combined formats.

The default format is
``{remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}" {rcode} {>rflags} {rsize} {duration}``
written after ``[INFO] `` (and, in CoreDNS ≥ 1.4, an RFC 3339 timestamp that most log shippers
keep). A line without that timestamp gets the replay time; the parser notes it once.
"""

from __future__ import annotations

import re
from typing import Iterable

from dnsentinel.producers.records import MIN_TS_MS, ParseError, ParseStats, Parser, Query
from dnsentinel.producers.timeprefix import now_ms, split_prefix

FORMAT = "coredns-log"

_BODY = re.compile(
    r"\[INFO\] (?:plugin/log: )?(?P<remote>\[[0-9A-Fa-f:.%\w]+\]|[^\s:]+):(?P<port>\d+) - (?P<id>\d+) "
    r'"(?P<qtype>\S+) (?P<qclass>\S+) (?P<name>\S+) (?P<proto>\S+) (?P<size>\d+) (?P<do>\S+) (?P<bufsize>\d+)" '
    r"(?P<rcode>\S+) (?P<rflags>\S*) (?P<rsize>\d+) (?P<duration>[0-9.eE+-]+)s"
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
            split = split_prefix(line, "[INFO] ")
        except (ValueError, KeyError, OverflowError) as exc:
            yield ParseError(line_no, "bad_ts", str(exc)[:80])
            continue
        if split is None:
            yield ParseError(line_no, "not_coredns_log", line.strip()[:60])
            continue
        ts, body = split
        m = _BODY.match(body)
        if m is None:
            yield ParseError(line_no, "not_coredns_log", body.strip()[:60])
            continue
        if ts is None:
            ts = now_ms()
            if not noted:
                stats.notes.append("CoreDNS log lines without a timestamp: replay time used")
                noted = True
        elif ts < MIN_TS_MS:
            yield ParseError(line_no, "bad_ts")
            continue
        remote = m["remote"].strip("[]")
        try:
            latency = int(float(m["duration"]) * 1_000_000)
        except (ValueError, OverflowError):
            latency = None
        yield Query(ts, m["name"], m["qtype"], remote, m["rcode"], m["proto"], latency)
