"""What every log parser yields: a parsed query, a malformed line, or a line to ignore.

Parsers never raise on bad input; they *yield* a :class:`ParseError` (counted and shown)
or an :class:`Ignored` (counted only: comments-like records such as dnstap responses) and
go on, so one bad line never stops a replay. ``Query`` is a tuple rather than a dataclass
because the Zeek fast path creates one per line and tuples are the cheapest object Python has.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterator, NamedTuple, Union


class Query(NamedTuple):
    """One DNS query as a log recorded it (the name is still raw: normalized at encoding).

    Not the contract's ``QueryEvent``: raw log values (a qtype may be ``28``, a proto ``doh``),
    no source or origin; :class:`~dnsentinel.producers.encode.EventEncoder` makes the event.
    """

    ts: int
    """Query time, Unix epoch milliseconds, from the log."""
    name: str
    qtype: str
    client: str
    rcode: str | None = None
    proto: str | None = None
    latency_us: int | None = None


class ParseError(Exception):
    """A malformed line: where (1-based line or frame number) and why (a short reason code)."""

    def __init__(self, line_no: int, reason: str, detail: str = "") -> None:
        super().__init__(f"line {line_no}: {reason}" + (f" ({detail})" if detail else ""))
        self.line_no = line_no
        self.reason = reason
        self.detail = detail


class Ignored(NamedTuple):
    """A well-formed record that is not a query (a dnstap response, a Zeek entry without a name)."""

    line_no: int
    reason: str


Item = Union[Query, ParseError, Ignored]


@dataclass
class ParseStats:
    """Shared with the parser so the progress display can read the line count while it runs."""

    lines: int = 0
    notes: list[str] = field(default_factory=list)
    """One-time remarks (e.g. "no timestamps in this format: using replay time")."""


Parser = Iterator[Item]


@dataclass(frozen=True)
class LogFormat:
    """What a parser module declares as its ``FORMAT``; :mod:`formats` registers it.

    A new log format is one ``parse_<name>.py`` module with a ``FORMAT = LogFormat(...)`` line
    and its entry in ``formats.PARSERS``; ``--format`` and auto-detection follow from there.
    """

    name: str
    """The ``--format`` value."""
    sniff: Callable[[bytes, list[str]], int | None]
    """Given a file's first bytes (decompressed) and its first non-blank lines (at most 20): where
    the first sign of this format is. The index of the first line only this format writes; -1 for
    a sign in the bytes before any line (a magic number); ``len(lines)`` for a format told only
    when no other matches (a CSV header); None when the head shows no sign. Auto-detection picks
    the earliest sign; a tie goes to the format registered first."""
    parse: Callable[..., Parser]
    """``parse(lines, stats)``; ``parse(lines, stats, mapping)`` when ``mapped``;
    ``parse(stream, stats)`` when ``binary``."""
    mapped: bool = False
    """The parser takes the ``--map`` field mapping (generic JSON, CSV)."""
    binary: bool = False
    """The parser reads the raw byte stream rather than text lines (dnstap)."""


def decimal_to_int(text: str, places: int) -> int:
    """``"1763629200.125999"`` → ``1763629200125`` for places=3: exact decimal truncation.

    Going through float would turn ``.001000`` into 0.000999… and lose a unit; logs print fixed
    decimals, so the digits are cut as text. Other spellings (exponents, signs) go through float.
    Raises ValueError or OverflowError for text that is no number.
    """
    ip, dot, frac = text.partition(".")
    if ip.isascii() and ip.isdigit() and (not dot or (frac.isascii() and frac.isdigit())):
        return int(ip) * 10**places + (int((frac + "0" * places)[:places]) if dot else 0)
    return int(float(text) * 10**places)


def ts_from_value(value: object) -> int:
    """Epoch milliseconds from a number (s, ms or µs, guessed by magnitude) or an ISO 8601 string.

    Generic JSON and CSV logs disagree on units; magnitudes do not overlap for any date between
    1973 and 5138, so the guess is safe for real logs.
    """
    if isinstance(value, bool):
        raise ValueError("boolean timestamp")
    if isinstance(value, (int, float)):
        num = float(value)
    else:
        text = str(value).strip()
        try:
            num = float(text)
        except ValueError:
            dt = datetime.fromisoformat(text)
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=timezone.utc)
            return int(dt.timestamp() * 1000)
    if num != num or num in (float("inf"), float("-inf")):
        raise ValueError("not a finite number")
    if num > 1e14:
        return int(num / 1000)
    if num > 1e11:
        return int(num)
    return int(num * 1000)
