"""Turn a generic record (a JSON object or a CSV row) into a Query through a field mapping.

JSON lines, CSV and Zeek JSON differ only in where the fields live, so they share this. A
mapping names, for each query field, the record key holding it (``name=query,client=src``);
unmapped fields are looked up under common aliases.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable, Iterator, Mapping

from dnsentinel.errors import DnsentinelError
from dnsentinel.producers.records import ParseError, ParseStats, Query, ts_from_value
from dnsentinel.verdict_cache.events import MIN_TS_MS

FIELDS = ("ts", "name", "qtype", "client", "rcode", "proto", "latency_us")

ALIASES: dict[str, tuple[str, ...]] = {
    "ts": ("ts", "timestamp", "time", "@timestamp", "date", "datetime"),
    "name": ("name", "query", "qname", "domain", "query_name", "fqdn"),
    "qtype": ("qtype", "qtype_name", "type", "query_type", "rrtype"),
    "client": ("client", "id.orig_h", "client_ip", "src", "src_ip", "source_ip", "ip"),
    "rcode": ("rcode", "rcode_name", "response_code"),
    "proto": ("proto", "protocol", "transport"),
    "latency_us": ("latency_us",),
}


class MappingError(DnsentinelError):
    """A ``--map`` option that cannot be understood."""


def parse_mapping(spec: str | None) -> dict[str, str]:
    """``"name=query,client=src_ip"`` → ``{"name": "query", "client": "src_ip"}``."""
    result: dict[str, str] = {}
    if not spec:
        return result
    for part in spec.split(","):
        field, sep, column = part.partition("=")
        field, column = field.strip(), column.strip()
        if not sep or not column:
            raise MappingError(f"--map {spec!r}: expected FIELD=COLUMN pairs, got {part!r}")
        if field not in FIELDS:
            raise MappingError(f"--map: unknown field {field!r}; fields are {', '.join(FIELDS)}")
        result[field] = column
    return result


def resolve(keys: "list[str] | Mapping[str, Any]", mapping: Mapping[str, str]) -> dict[str, str]:
    """Which record key feeds each query field, given the keys a record (or CSV header) has."""
    present = set(keys)
    chosen: dict[str, str] = {}
    for field in FIELDS:
        if field in mapping:
            chosen[field] = mapping[field]
            continue
        for alias in ALIASES[field]:
            if alias in present:
                chosen[field] = alias
                break
    return chosen


def to_query(record: Mapping[str, Any], columns: Mapping[str, str], line_no: int, default_ts: int | None) -> Query:
    """Build a Query or raise ParseError naming the missing or bad field."""
    name = record.get(columns.get("name", "name"))
    if not isinstance(name, str) or not name:
        raise ParseError(line_no, "missing_field:name")
    raw_ts = record.get(columns.get("ts", "ts"))
    if raw_ts is None or raw_ts == "":
        if default_ts is None:
            raise ParseError(line_no, "missing_field:ts")
        ts = default_ts
    else:
        try:
            ts = ts_from_value(raw_ts)
        except (ValueError, TypeError, OverflowError) as exc:
            raise ParseError(line_no, "bad_ts", f"{str(raw_ts)[:40]!r}: {exc}") from None
        if ts < MIN_TS_MS:
            raise ParseError(line_no, "bad_ts", str(raw_ts)[:40])
    qtype = _text(record.get(columns.get("qtype", "qtype"))) or "A"
    client = _text(record.get(columns.get("client", "client"))) or ""
    rcode = _text(record.get(columns.get("rcode", "rcode")))
    proto = _text(record.get(columns.get("proto", "proto")))
    latency = record.get(columns.get("latency_us", "latency_us"))
    if latency is None and "rtt" in record:
        latency = _seconds_to_us(record.get("rtt"))
    elif latency is not None:
        try:
            latency = int(float(latency))
        except (ValueError, TypeError, OverflowError):
            latency = None
    return Query(ts, name, qtype, client, rcode, proto, latency)


def _text(value: Any) -> str | None:
    if value is None or value == "" or value == "-":
        return None
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    return None


def _seconds_to_us(value: Any) -> int | None:
    try:
        return int(float(value) * 1_000_000)
    except (ValueError, TypeError, OverflowError):
        return None


def json_objects(lines: Iterable[str], stats: ParseStats) -> Iterator[tuple[int, dict[str, Any]] | ParseError]:
    """(line number, object) per non-blank JSON-object line; a ParseError for anything else."""
    line_no = 0
    for line in lines:
        line_no += 1
        stats.lines = line_no
        text = line.strip()
        if not text:
            continue
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError) as exc:
            yield ParseError(line_no, "not_json", str(exc)[:80])
            continue
        if not isinstance(obj, dict):
            yield ParseError(line_no, "not_object")
            continue
        yield line_no, obj


def first_json_object(lines: list[str], test: Callable[[dict[str, Any]], bool] = lambda obj: True) -> int | None:
    """Auto-detection: the index of the first line that is a JSON object passing ``test``."""
    for i, line in enumerate(lines):
        text = line.strip()
        if text.startswith("{"):
            try:
                obj = json.loads(text)
            except (ValueError, RecursionError):
                continue
            if isinstance(obj, dict) and test(obj):
                return i
    return None
