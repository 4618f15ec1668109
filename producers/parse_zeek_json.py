"""Zeek ``dns.log`` written by the JSON writer (``LogAscii::use_json=T``), one object per line.

``ts`` is epoch seconds or, with ``json_timestamps=JSON::TS_ISO8601``, an ISO string; both work.
"""

from __future__ import annotations

from typing import Iterable

from dnsentinel.producers.mapping import first_json_object, json_objects, to_query
from dnsentinel.producers.records import Ignored, LogFormat, ParseError, ParseStats, Parser

_COLUMNS = {"ts": "ts", "name": "query", "qtype": "qtype_name", "client": "id.orig_h", "rcode": "rcode_name", "proto": "proto"}


def parse(lines: Iterable[str], stats: ParseStats) -> Parser:
    for got in json_objects(lines, stats):
        if isinstance(got, ParseError):
            yield got
            continue
        line_no, obj = got
        if obj.get("query") in (None, "", "-"):
            yield Ignored(line_no, "no_query")
            continue
        try:
            yield to_query(obj, _COLUMNS, line_no, None)
        except ParseError as err:
            yield err


def sniff(head: bytes, lines: list[str]) -> int | None:
    """The first JSON object with Zeek's connection or query keys."""
    return first_json_object(lines, lambda obj: "id.orig_h" in obj or ("uid" in obj and "query" in obj))


FORMAT = LogFormat("zeek-json", sniff, parse)
