"""Timestamps that text logs put in front of a line (BIND, syslog, RFC 3339 from CoreDNS/journald).

A line without one gets the replay time instead, and the parser says so once in its notes:
BIND without ``print-time`` and CoreDNS's ``log`` plugin without a timestamp prefix record none.
BIND's own ``22-Nov-2026 10:00:00.123`` and syslog times carry no zone; they are read as UTC.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from typing import Callable, Iterable

from dnsentinel.producers.records import ParseError, ParseStats, Parser, Query
from dnsentinel.verdict_cache.events import MIN_TS_MS

_MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}


def split_prefix(line: str, marker: str) -> tuple[int | None, str] | None:
    """Split ``line`` at ``marker``: the timestamp found before it (or None) and the rest.

    Returns None when the marker is absent. Raises ValueError for a prefix that looks like a
    timestamp but is not a valid one.
    """
    at = line.find(marker)
    if at < 0:
        return None
    prefix = line[:at].strip()
    return (parse_prefix(prefix) if prefix else None), line[at:]


def parse_prefix(prefix: str) -> int | None:
    """Epoch ms of the first timestamp-looking token(s) of ``prefix``; None when there is none."""
    tokens = prefix.split()
    if not tokens:
        return None
    first = tokens[0]
    if len(first) >= 10 and first[4] == "-" and first[:4].isdigit():  # RFC 3339 / ISO 8601
        dt = datetime.fromisoformat(first.replace("Z", "+00:00"))
        return _ms(dt)
    if len(tokens) >= 2 and len(first) == 11 and first[2] == "-" and first[6] == "-":  # BIND 22-Nov-2026
        day, mon, year = first.split("-")
        return _ms(_clock(int(year), _MONTHS[mon], int(day), tokens[1]))
    if len(tokens) >= 3 and first in _MONTHS:  # syslog: Nov 22 10:00:00
        year = time.gmtime().tm_year
        return _ms(_clock(year, _MONTHS[first], int(tokens[1]), tokens[2]))
    return None


def _clock(year: int, month: int, day: int, clock: str) -> datetime:
    hms, _, frac = clock.partition(".")
    h, m, s = (int(x) for x in hms.split(":"))
    micro = int((frac + "000000")[:6]) if frac else 0
    return datetime(year, month, day, h, m, s, micro, tzinfo=timezone.utc)


def _ms(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


def now_ms() -> int:
    return int(time.time() * 1000)


def parse_prefixed(lines: Iterable[str], stats: ParseStats, marker: str, body: re.Pattern[str],
                   reason: str, what: str, build: Callable[[re.Match[str], int], Query]) -> Parser:
    """The loop shared by line formats made of an optional timestamp, ``marker`` and a body regex.

    ``build`` turns a body match and the line's time into a Query; lines without a timestamp get
    the replay time, noted once in ``stats.notes`` ("``what`` lines without a timestamp").
    """
    noted = False
    line_no = 0
    for line in lines:
        line_no += 1
        stats.lines = line_no
        if not line.strip():
            continue
        try:
            split = split_prefix(line, marker)
        except (ValueError, KeyError, OverflowError) as exc:
            yield ParseError(line_no, "bad_ts", str(exc)[:80])
            continue
        if split is None:
            yield ParseError(line_no, reason, line.strip()[:60])
            continue
        ts, rest = split
        m = body.match(rest)
        if m is None:
            yield ParseError(line_no, reason, rest.strip()[:60])
            continue
        if ts is None:
            ts = now_ms()
            if not noted:
                stats.notes.append(f"{what} lines without a timestamp: replay time used")
                noted = True
        elif ts < MIN_TS_MS:
            yield ParseError(line_no, "bad_ts")
            continue
        yield build(m, ts)


def first_text_line(lines: list[str], test: Callable[[str], bool]) -> int | None:
    """Auto-detection: the index of the first line passing ``test`` that is not a JSON object
    (a JSON line quoting a BIND or CoreDNS message is JSON, not that log)."""
    for i, line in enumerate(lines):
        if not line.strip().startswith("{") and test(line):
            return i
    return None
