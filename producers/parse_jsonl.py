"""JSON lines: our own query events (SPEC §2.2) or any objects mapped with ``--map``.

Our events already carry every field under its own name, so they need no mapping; other objects
are matched through :mod:`dnsentinel.producers.mapping` aliases.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from dnsentinel.producers.mapping import first_json_object, json_objects, resolve, to_query
from dnsentinel.producers.records import LogFormat, ParseError, ParseStats, Parser


def parse(lines: Iterable[str], stats: ParseStats, mapping: Mapping[str, str] | None = None) -> Parser:
    mapping = dict(mapping or {})
    cached_keys: frozenset[str] | None = None
    columns: dict[str, str] = {}
    for got in json_objects(lines, stats):
        if isinstance(got, ParseError):
            yield got
            continue
        line_no, obj = got
        keys = frozenset(obj)
        if keys != cached_keys:  # most files have one shape: resolve aliases once
            cached_keys = keys
            columns = resolve(list(keys), mapping)
        try:
            yield to_query(obj, columns, line_no, None)
        except ParseError as err:
            yield err


def sniff(head: bytes, lines: list[str]) -> int | None:
    """The first JSON object (Zeek's JSON, registered before, wins a tie on the same line)."""
    return first_json_object(lines)


FORMAT = LogFormat("jsonl", sniff, parse, mapped=True)
