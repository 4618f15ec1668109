"""CSV with a header row; columns found by ``--map`` or common names (``ts``, ``query`` …)."""

from __future__ import annotations

import csv
import re
from typing import Iterable, Iterator, Mapping

from dnsentinel.producers.mapping import resolve, to_query
from dnsentinel.producers.records import LogFormat, ParseError, ParseStats, Parser

_NAME_COLUMN = re.compile(r"(^|,)\s*\"?(name|query|qname|domain|query_name|fqdn)\"?\s*(,|$)", re.I)


def parse(lines: Iterable[str], stats: ParseStats, mapping: Mapping[str, str] | None = None) -> Parser:
    counter = _Counting(lines, stats)
    reader = csv.reader(counter)
    header: list[str] | None = None
    columns: dict[str, str] = {}
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield ParseError(stats.lines, "bad_csv", str(exc)[:80])
            continue
        if not row or all(not cell.strip() for cell in row):
            continue
        if header is None:
            header = [cell.strip() for cell in row]
            columns = resolve(header, dict(mapping or {}))
            if "name" not in columns or columns["name"] not in header:
                yield ParseError(stats.lines, "bad_header", "no name column (use --map name=COLUMN)")
                return
            if "ts" not in columns or columns["ts"] not in header:
                yield ParseError(stats.lines, "bad_header", "no timestamp column (use --map ts=COLUMN)")
                return
            continue
        if len(row) != len(header):
            yield ParseError(stats.lines, "bad_row", f"{len(row)} columns, header has {len(header)}")
            continue
        try:
            yield to_query(dict(zip(header, row)), columns, stats.lines, None)
        except ParseError as err:
            yield err


class _Counting:
    """Counts physical lines for error positions (a quoted CSV cell may span lines)."""

    def __init__(self, lines: Iterable[str], stats: ParseStats) -> None:
        self._it: Iterator[str] = iter(lines)
        self._stats = stats

    def __iter__(self) -> "_Counting":
        return self

    def __next__(self) -> str:
        line = next(self._it)
        self._stats.lines += 1
        return line


def sniff(head: bytes, lines: list[str]) -> int | None:
    """A header row with a name-like column; weaker than any other sign (``len(lines)``)."""
    return len(lines) if lines and "," in lines[0] and _NAME_COLUMN.search(lines[0]) else None


FORMAT = LogFormat("csv", sniff, parse, mapped=True)
