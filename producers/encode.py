"""Query → (routing key, event JSON) for ``dns.queries`` (SPEC §2), built for throughput.

The value is byte for byte what the contract's :func:`~dnsentinel.verdict_cache.events.encode_event`
writes (same fields, same order; tests/producers check it), but rendered from a fixed template
rather than a dict: the only free-form strings are the name (normalized names are
``[a-z0-9_*.-]`` and need no escaping; raw invalid names go through ``json.dumps``), the client,
qtype, rcode and proto, and each distinct value is JSON-quoted once and cached. Logs repeat names
and clients heavily, so the caches turn normalization and quoting into one dict lookup per field
on most lines; :meth:`EventEncoder.encode_seen` is that lookup-only path for callers that hold
the fields as text (the Zeek loop in replay.py).
"""

from __future__ import annotations

import json
import socket
import time
from typing import Callable, NamedTuple

from dnsentinel.producers.records import Query
from dnsentinel.verdict_cache.events import (  # the consumer's own limits and checks: what we send passes them
    CONTRACT_VERSION,
    DAY_MS,
    MAX_EVENT_BYTES,
    MAX_NAME_BYTES,
    MIN_TS_MS,
    is_ip,
)
from dnsentinel.verdict_cache.vocabulary import PROTOS, Source

MAX_CLIENT_CHARS = 64
MAX_QTYPE_CHARS = 16
LATENCY_LIMIT_US = 10**12
"""A latency from 10**12 µs (11.6 days) on is no latency: left out of the event."""
_LATENCY_DIGITS = len(str(LATENCY_LIMIT_US - 1))
CACHE_LIMIT = 200_000
_HEAD = '{"v":%d,"ts":' % CONTRACT_VERSION


class Encoded(NamedTuple):
    key: bytes
    value: str
    scorable: str | None
    """The normalized name when the model scores it (kind ``domain``), else None."""


class NameInfo(NamedTuple):
    json_name: str
    key: bytes
    scorable: str | None


def _presentation(raw: str) -> str:
    r"""An invalid name as safe presentation text: bytes outside printable ASCII become ``\DDD``."""
    data = raw.encode("utf-8", "surrogateescape")
    return "".join(chr(b) if 0x21 <= b <= 0x7E else "\\%03d" % b for b in data)


class EventEncoder:
    """Renders query events; one per replay (it carries ``source``, ``origin`` and caches)."""

    def __init__(self, source: Source, origin: str | None = None, server: str | None = None,
                 now_ms: Callable[[], int] | None = None) -> None:
        from dnsentinel.verdict_cache.names import InvalidName, normalize, unscored_reason

        self._normalize = normalize
        self._unscored_reason = unscored_reason
        self._invalid = InvalidName
        self._names: dict[str, NameInfo | str] = {}
        self._clients: dict[str, str | None] = {}
        self._qtypes: dict[str, str | None] = {}
        self._tails: dict[tuple[str | None, str | None], tuple[str, str]] = {}
        """(rcode, proto) → the text before and after ``latency_us`` up to the end of the event."""
        mid = ',"source":%s' % json.dumps(source)
        if server is None:
            server = socket.gethostname()
        if server:
            mid += ',"server":%s' % json.dumps(server[:255])
        if origin:
            mid += ',"origin":%s' % json.dumps(origin[:255])
        self._mid = mid
        """The members after ``client`` that every event of this encoder has (source, server, origin)."""
        self._now_ms = now_ms or (lambda: int(time.time() * 1000))
        self._set_max_ts()
        self.unscorable = 0
        """Events produced whose name is invalid, reverse or bare (never scored)."""

    def _set_max_ts(self) -> None:
        """The contract's upper bound on ``ts`` (now + 1 day), as a number and as digits."""
        self.max_ts = self._now_ms() + DAY_MS
        self._max_ts_text = str(self.max_ts)

    def name_info(self, raw: str) -> NameInfo | str:
        """Cached normalization: NameInfo, or a skip reason for a name too long even as raw."""
        info = self._names.get(raw)
        if info is None:
            info = self._name_info(raw)
            if len(self._names) >= CACHE_LIMIT:
                self._names.clear()
            self._names[raw] = info
        return info

    def _name_info(self, raw: str) -> NameInfo | str:
        try:
            name = self._normalize(raw.encode("utf-8", "surrogateescape"))
        except self._invalid:
            text = _presentation(raw.rstrip(".") or raw)
            if len(text) > MAX_NAME_BYTES:
                return "name_too_long"
            return NameInfo(json.dumps(text), text.encode(), None)
        key = (name.registrable or name.name).encode()
        # ``scorable`` is what --wait-verdicts waits for: names the worker leaves unscored never get one
        return NameInfo('"' + name.name + '"', key, None if self._unscored_reason(name) else name.name)

    def _client(self, value: str) -> str | None:
        """The quoted client, or None when it is neither empty nor an IP address (SPEC §2.2)."""
        quoted = self._clients.get(value, "")
        if quoted == "":
            ok = not value or (len(value) <= MAX_CLIENT_CHARS and is_ip(value))
            quoted = json.dumps(value) if ok else None
            if len(self._clients) >= CACHE_LIMIT:
                self._clients.clear()
            self._clients[value] = quoted
        return quoted

    def _qtype(self, qtype: str) -> str | None:
        quoted = self._qtypes.get(qtype, "")
        if quoted == "":
            text = qtype.strip().upper()
            if text.isdigit() and len(text) <= 5:
                import dns.rdatatype

                text = dns.rdatatype.to_text(int(text) & 0xFFFF)
            ok = 0 < len(text) <= MAX_QTYPE_CHARS and text.isascii() and text.isalnum()
            quoted = json.dumps(text) if ok else None
            if len(self._qtypes) < 10_000:
                self._qtypes[qtype] = quoted
        return quoted

    def _tail(self, rcode: str | None, proto: str | None) -> tuple[str, str]:
        """What follows ``client``: the encoder's own members and rcode, then (after the latency) proto and ``}``."""
        key = (rcode, proto)
        tail = self._tails.get(key)
        if tail is None:
            before, after = self._mid, "}"
            if rcode and len(rcode) <= 32 and rcode.isascii() and rcode.isprintable():
                before += ',"rcode":' + json.dumps(rcode.upper())
            if proto and proto.lower() in PROTOS:  # dot/doh… have no event value
                after = ',"proto":"%s"}' % proto.lower()
            tail = (before, after)
            if len(self._tails) < 10_000:
                self._tails[key] = tail
        return tail

    def encode(self, q: Query) -> Encoded | str:
        """The key and JSON value of one event, or the reason it cannot be an event."""
        ts = q.ts
        if ts < MIN_TS_MS or ts > self.max_ts:
            if ts > self.max_ts and ts <= self._now_ms() + DAY_MS:
                self._set_max_ts()
            else:
                return "bad_ts"
        info = self.name_info(q.name)
        if type(info) is str:
            return info
        qtype = self._qtype(q.qtype)
        if qtype is None:
            return "bad_qtype"
        client = self._client(q.client)
        if client is None:
            return "bad_client"
        lat = q.latency_us
        latency = f',"latency_us":{lat}' if lat is not None and 0 <= lat < LATENCY_LIMIT_US else ""
        before, after = self._tail(q.rcode, q.proto)
        value = f'{_HEAD}{ts},"name":{info.json_name},"qtype":{qtype},"client":{client}{before}{latency}{after}'
        if len(value) > MAX_EVENT_BYTES and len(value.encode("utf-8", "surrogateescape")) > MAX_EVENT_BYTES:
            return "too_large"
        if info.scorable is None:
            self.unscorable += 1
        return Encoded(info.key, value, info.scorable)

    def encode_seen(self, ts_ms: str, name: str, qtype: str, client: str, rcode: str | None, proto: str | None,
                    latency_us: str | None) -> tuple[bytes, str, str | None] | None:
        """:meth:`encode` for a query given as text whose fields were all seen before: lookups only.

        ``ts_ms``: epoch milliseconds as 13 ASCII digits (from 2001-09-09 on); ``latency_us``: ASCII
        digits (leading zeros allowed) or None. Returns what :meth:`encode` returns for the same
        query, as a plain tuple ``(key, value, scorable)`` (cheaper than :class:`Encoded`), or None
        when a field is new to the caches, invalid or outside this path: :meth:`encode` then
        decides, and fills the caches on the way.
        """
        info = self._names.get(name)
        qtype = self._qtypes.get(qtype)
        client = self._clients.get(client)
        tail = self._tails.get((rcode, proto))
        if (type(info) is not NameInfo or not qtype or not client or tail is None or len(ts_ms) != 13
                or ts_ms[0] == "0" or not (ts_ms.isdecimal() and ts_ms.isascii()) or ts_ms > self._max_ts_text):
            return None  # 13 digits, no leading zero: as strings they compare like the numbers
        if latency_us is None:
            latency = ""
        else:
            latency_us = latency_us.lstrip("0") or "0"
            if not (latency_us.isdecimal() and latency_us.isascii() and len(latency_us) <= _LATENCY_DIGITS):
                return None
            latency = ',"latency_us":' + latency_us
        value = f'{_HEAD}{ts_ms},"name":{info.json_name},"qtype":{qtype},"client":{client}{tail[0]}{latency}{tail[1]}'
        if info.scorable is None:
            self.unscorable += 1
        return info.key, value, info.scorable
