"""The parser registry and format auto-detection from a file's first bytes."""

from __future__ import annotations

import json
import re
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
from dnsentinel.producers.records import ParseStats, Parser

FORMATS = ("zeek", "zeek-json", "bind", "coredns-log", "dnstap", "jsonl", "csv")
SNIFF_BYTES = 64 * 1024

_CSV_NAME = re.compile(r"(^|,)\s*\"?(name|query|qname|domain|query_name|fqdn)\"?\s*(,|$)", re.I)


class UnknownFormat(DnsentinelError):
    """Auto-detection found no known format in the first lines."""


def detect(head: bytes) -> str | None:
    """Guess the format from the first bytes (already decompressed); None when unsure."""
    if head[:4] == b"\x00\x00\x00\x00":
        return "dnstap"
    text = head.decode("utf-8", "replace")
    lines = [ln for ln in text.splitlines()[:-1] or text.splitlines() if ln.strip()][:20]
    if not lines:
        return None
    if lines[0].startswith(("#separator", "#fields", "#set_separator", "#path")):
        return "zeek"
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("{"):
            try:
                obj = json.loads(stripped)
            except ValueError:
                continue
            if isinstance(obj, dict):
                if "id.orig_h" in obj or ("uid" in obj and "query" in obj):
                    return "zeek-json"
                return "jsonl"
        if "[INFO] " in line and '" ' in line and " - " in line:
            return "coredns-log"
        if "client " in line and " query: " in line:
            return "bind"
    if "," in lines[0] and _CSV_NAME.search(lines[0]):
        return "csv"
    return None


def text_parser(fmt: str, lines: Iterable[str], stats: ParseStats, mapping: Mapping[str, str]) -> Parser:
    if fmt == "zeek":
        return parse_zeek.parse(lines, stats)
    if fmt == "zeek-json":
        return parse_zeek_json.parse(lines, stats)
    if fmt == "bind":
        return parse_bind.parse(lines, stats)
    if fmt == "coredns-log":
        return parse_coredns.parse(lines, stats)
    if fmt == "jsonl":
        return parse_jsonl.parse(lines, stats, mapping)
    if fmt == "csv":
        return parse_csv.parse(lines, stats, mapping)
    raise UnknownFormat(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def binary_parser(fmt: str, stream: BinaryIO, stats: ParseStats) -> Parser:
    if fmt == "dnstap":
        return parse_dnstap.parse(stream, stats)
    raise UnknownFormat(f"{fmt!r} is not a binary format")
