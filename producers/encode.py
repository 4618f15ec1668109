"""Query → (routing key, event JSON) for ``dns.queries`` (SPEC §2), built for throughput.

Events are rendered from a fixed template rather than ``json.dumps`` of a dict: the only
free-form strings are the name (normalized names are ``[a-z0-9_*.-]`` and need no escaping;
raw invalid names go through ``json.dumps``), the client, qtype, rcode and proto, and each
distinct value is JSON-quoted once and cached. Logs repeat names and clients heavily, so the
caches turn normalization and quoting into one dict lookup per field on most lines.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Callable, NamedTuple

from dnsentinel.producers.records import MIN_TS_MS, Query
from dnsentinel.verdict_cache.events import is_ip  # the consumer's own check: what we send passes it

MAX_EVENT_BYTES = 4096
MAX_RAW_NAME_BYTES = 1024
MAX_CLIENT_CHARS = 64
MAX_QTYPE_CHARS = 16
CACHE_LIMIT = 200_000


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

    def __init__(self, source: str, origin: str | None = None, server: str | None = None,
                 now_ms: Callable[[], int] | None = None) -> None:
        from dnsentinel.verdict_cache.names import InvalidName, normalize, unscored_reason

        self._normalize = normalize
        self._unscored_reason = unscored_reason
        self._invalid = InvalidName
        # The caches are read directly by the Zeek fast path in replay.py (same keys, same values).
        self.names: dict[str, NameInfo | str] = {}
        self.clients: dict[str, str] = {}
        self.qtypes: dict[str, str | None] = {}
        self.tails: dict[tuple[str | None, str | None], str] = {}
        head = '{"v":1,"source":%s' % json.dumps(source)
        if server is None:
            server = socket.gethostname()
        if server:
            head += ',"server":%s' % json.dumps(server[:255])
        if origin:
            head += ',"origin":%s' % json.dumps(origin[:255])
        self.head = head + ',"ts":'
        self._now_ms = now_ms or (lambda: int(time.time() * 1000))
        self.max_ts = self._now_ms() + 86_400_000
        self.unscorable = 0
        """Events produced whose name is invalid, reverse or bare (never scored)."""

    def name_info(self, raw: str) -> NameInfo | str:
        """Cached normalization: NameInfo, or a skip reason for a name too long even as raw."""
        info = self.names.get(raw)
        if info is None:
            info = self._name_info(raw)
            if len(self.names) >= CACHE_LIMIT:
                self.names.clear()
            self.names[raw] = info
        return info

    def _name_info(self, raw: str) -> NameInfo | str:
        try:
            name = self._normalize(raw.encode("utf-8", "surrogateescape"))
        except self._invalid:
            text = _presentation(raw.rstrip(".") or raw)
            if len(text) > MAX_RAW_NAME_BYTES:
                return "name_too_long"
            return NameInfo(json.dumps(text), text.encode(), None)
        key = (name.registrable or name.name).encode()
        # ``scorable`` is what --wait-verdicts waits for: names the worker leaves unscored never get one
        return NameInfo('"' + name.name + '"', key, None if self._unscored_reason(name) else name.name)

    def _client(self, value: str) -> str | None:
        """The quoted client, or None when it is neither empty nor an IP address (SPEC §2.2)."""
        quoted = self.clients.get(value, "")
        if quoted == "":
            ok = not value or (len(value) <= MAX_CLIENT_CHARS and is_ip(value))
            quoted = json.dumps(value) if ok else None
            if len(self.clients) >= CACHE_LIMIT:
                self.clients.clear()
            self.clients[value] = quoted
        return quoted

    def _qtype(self, qtype: str) -> str | None:
        quoted = self.qtypes.get(qtype, "")
        if quoted == "":
            text = qtype.strip().upper()
            if text.isdigit() and len(text) <= 5:
                import dns.rdatatype

                text = dns.rdatatype.to_text(int(text) & 0xFFFF)
            ok = 0 < len(text) <= MAX_QTYPE_CHARS and text.isascii() and text.isalnum()
            quoted = json.dumps(text) if ok else None
            if len(self.qtypes) < 10_000:
                self.qtypes[qtype] = quoted
        return quoted

    def _optional(self, rcode: str | None, proto: str | None) -> str:
        key = (rcode, proto)
        tail = self.tails.get(key)
        if tail is None:
            tail = ""
            if rcode and len(rcode) <= 32 and rcode.isascii() and rcode.isprintable():
                tail += ',"rcode":' + json.dumps(rcode.upper())
            if proto and proto.lower() in ("udp", "tcp"):  # dot/doh… have no event value
                tail += ',"proto":"%s"' % proto.lower()
            if len(self.tails) < 10_000:
                self.tails[key] = tail
        return tail

    def encode(self, q: Query) -> Encoded | str:
        """The key and JSON value of one event, or the reason it cannot be an event."""
        ts = q.ts
        if ts < MIN_TS_MS or ts > self.max_ts:
            if ts > self.max_ts and ts <= self._now_ms() + 86_400_000:
                self.max_ts = self._now_ms() + 86_400_000
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
        tail = f',"latency_us":{lat}}}' if lat is not None and 0 <= lat < 10**12 else "}"
        opt = self._optional(q.rcode, q.proto)
        value = f'{self.head}{ts},"name":{info.json_name},"qtype":{qtype},"client":{client}{opt}{tail}'
        if len(value) > MAX_EVENT_BYTES and len(value.encode("utf-8", "surrogateescape")) > MAX_EVENT_BYTES:
            return "too_large"
        if info.scorable is None:
            self.unscorable += 1
        return Encoded(info.key, value, info.scorable)
