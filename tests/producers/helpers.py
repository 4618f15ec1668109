"""Helpers of the producers tests: fixture paths and a parse-a-file shortcut."""

from __future__ import annotations

from pathlib import Path

from dnsentinel.producers.formats import binary_parser, detect, text_parser
from dnsentinel.producers.records import Ignored, ParseError, ParseStats, Query
from dnsentinel.producers.sources import open_source

LOGS = Path(__file__).resolve().parent.parent / "fixtures" / "logs"


def parse_file(path: Path | str, fmt: str | None = None, mapping: dict | None = None):
    """(queries, errors, ignored, stats, detected format) of one fixture file."""
    src = open_source(str(path))
    try:
        fmt = fmt or detect(src.stream.peek(65536))
        stats = ParseStats()
        if fmt == "dnstap":
            items = list(binary_parser(fmt, src.stream, stats))
        else:
            items = list(text_parser(fmt, src.text(), stats, mapping or {}))
    finally:
        src.close()
    queries = [i for i in items if type(i) is Query]
    errors = [i for i in items if isinstance(i, ParseError)]
    ignored = [i for i in items if type(i) is Ignored]
    return queries, errors, ignored, stats, fmt
