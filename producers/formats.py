"""The parser registry and format auto-detection from a file's first bytes.

Each ``parse_<format>.py`` module declares ``FORMAT = LogFormat(name, sniff, parse, ...)``
(:class:`~dnsentinel.producers.records.LogFormat`); :data:`PARSERS` lists them once, and
everything else (``--format`` choices, detection, dispatch) is read from the registry.
"""

from __future__ import annotations

from typing import BinaryIO, Iterable, Mapping

from dnsentinel.errors import DnsentinelError
from dnsentinel.producers import (
    parse_bind,
    parse_coredns,
    parse_csv,
    parse_dnstap,
    parse_jsonl,
    parse_zeek,
    parse_zeek_json,
)
from dnsentinel.producers.records import LogFormat, ParseStats, Parser

PARSERS: tuple[LogFormat, ...] = (
    parse_zeek.FORMAT,
    parse_zeek_json.FORMAT,
    parse_bind.FORMAT,
    parse_coredns.FORMAT,
    parse_dnstap.FORMAT,
    parse_jsonl.FORMAT,
    parse_csv.FORMAT,
)
"""The registry, in the order ``--format`` lists the formats (and detection breaks ties)."""

REGISTRY: dict[str, LogFormat] = {f.name: f for f in PARSERS}
FORMATS: tuple[str, ...] = tuple(REGISTRY)
SNIFF_BYTES = 64 * 1024
SNIFF_LINES = 20


class UnknownFormat(DnsentinelError):
    """Auto-detection found no known format in the first lines."""


def detect(head: bytes) -> str | None:
    """Guess the format from the first bytes (already decompressed); None when unsure.

    Every format's ``sniff`` says where its first sign is; the earliest sign wins.
    """
    text = head.decode("utf-8", "replace")
    # The last line of a 64 KiB head is probably cut short: left out unless it is the only one.
    lines = [ln for ln in text.splitlines()[:-1] or text.splitlines() if ln.strip()][:SNIFF_LINES]
    signs = [(at, order, fmt.name) for order, fmt in enumerate(PARSERS) if (at := fmt.sniff(head, lines)) is not None]
    return min(signs)[2] if signs else None


def get(fmt: str) -> LogFormat:
    try:
        return REGISTRY[fmt]
    except KeyError:
        raise UnknownFormat(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}") from None


def is_binary(fmt: str) -> bool:
    """True for a format whose parser reads bytes (no ``--follow``, no text decoding)."""
    return fmt in REGISTRY and REGISTRY[fmt].binary


def text_parser(fmt: str, lines: Iterable[str], stats: ParseStats, mapping: Mapping[str, str]) -> Parser:
    entry = get(fmt)
    if entry.binary:
        raise UnknownFormat(f"{fmt!r} is a binary format")
    return entry.parse(lines, stats, mapping) if entry.mapped else entry.parse(lines, stats)


def binary_parser(fmt: str, stream: BinaryIO, stats: ParseStats) -> Parser:
    if not is_binary(fmt):
        raise UnknownFormat(f"{fmt!r} is not a binary format")
    return REGISTRY[fmt].parse(stream, stats)
