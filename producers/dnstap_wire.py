"""Frame Streams framing and the protobuf wire format, just enough for dnstap files.

dnstap files are a Frame Streams "unidirectional" stream (a START control frame naming the
content type ``protobuf:dnstap.Dnstap``, data frames, a STOP frame), each data frame one
``dnstap.Dnstap`` protobuf message. The schema (github.com/dnstap/dnstap.pb, ``dnstap.proto``)
is small and stable, so a wire reader for its few fields beats a generated-code dependency.
The writer half exists so tests can build fixtures byte by byte.
"""

from __future__ import annotations

import struct
from typing import BinaryIO, Iterator

CONTENT_TYPE = b"protobuf:dnstap.Dnstap"
CONTROL_ACCEPT, CONTROL_START, CONTROL_STOP, CONTROL_READY, CONTROL_FINISH = 1, 2, 3, 4, 5
FIELD_CONTENT_TYPE = 1
MAX_FRAME = 1 << 20

# dnstap.proto field numbers (Dnstap and Message).
DNSTAP_IDENTITY, DNSTAP_VERSION, DNSTAP_MESSAGE, DNSTAP_TYPE = 1, 2, 14, 15
DNSTAP_TYPE_MESSAGE = 1
M_TYPE, M_SOCKET_FAMILY, M_SOCKET_PROTOCOL = 1, 2, 3
M_QUERY_ADDRESS, M_RESPONSE_ADDRESS, M_QUERY_PORT, M_RESPONSE_PORT = 4, 5, 6, 7
M_QUERY_TIME_SEC, M_QUERY_TIME_NSEC, M_QUERY_MESSAGE, M_QUERY_ZONE = 8, 9, 10, 11
M_RESPONSE_TIME_SEC, M_RESPONSE_TIME_NSEC, M_RESPONSE_MESSAGE = 12, 13, 14

MESSAGE_TYPES = {
    1: "AUTH_QUERY", 2: "AUTH_RESPONSE", 3: "RESOLVER_QUERY", 4: "RESOLVER_RESPONSE",
    5: "CLIENT_QUERY", 6: "CLIENT_RESPONSE", 7: "FORWARDER_QUERY", 8: "FORWARDER_RESPONSE",
    9: "STUB_QUERY", 10: "STUB_RESPONSE", 11: "TOOL_QUERY", 12: "TOOL_RESPONSE",
    13: "UPDATE_QUERY", 14: "UPDATE_RESPONSE",
}
SOCKET_PROTOCOLS = {1: "udp", 2: "tcp", 3: "dot", 4: "doh", 5: "dnscrypt_udp", 6: "dnscrypt_tcp", 7: "doq"}


class WireError(ValueError):
    """Bytes that are not valid Frame Streams or protobuf."""


class FrameError(WireError):
    """The framing itself is broken: nothing after it can be trusted."""


# ---------------------------------------------------------------- frames

def read_frames(stream: BinaryIO) -> Iterator[bytes]:
    """Data frames of a unidirectional Frame Streams file; raises FrameError on bad framing."""
    started = False
    while True:
        head = stream.read(4)
        if not head:
            if started:
                raise FrameError("truncated: no STOP frame")
            return
        if len(head) < 4:
            raise FrameError("truncated frame length")
        (length,) = struct.unpack(">I", head)
        if length == 0:  # escape: a control frame follows
            raw = stream.read(4)
            if len(raw) < 4:
                raise FrameError("truncated control frame length")
            (clen,) = struct.unpack(">I", raw)
            if clen < 4 or clen > 512:
                raise FrameError(f"bad control frame length {clen}")
            control = stream.read(clen)
            if len(control) < clen:
                raise FrameError("truncated control frame")
            (ctype,) = struct.unpack(">I", control[:4])
            if ctype == CONTROL_START:
                types = _control_content_types(control[4:])
                if types and CONTENT_TYPE not in types:
                    raise FrameError(f"content type {types[0]!r} is not dnstap")
                started = True
            elif ctype == CONTROL_STOP:
                return
            elif ctype in (CONTROL_ACCEPT, CONTROL_READY, CONTROL_FINISH):
                continue
            else:
                raise FrameError(f"unknown control frame type {ctype}")
            continue
        if not started:
            raise FrameError("data frame before START")
        if length > MAX_FRAME:
            raise FrameError(f"frame of {length} bytes exceeds {MAX_FRAME}")
        data = stream.read(length)
        if len(data) < length:
            raise FrameError("truncated data frame")
        yield data


def _control_content_types(body: bytes) -> list[bytes]:
    types = []
    pos = 0
    while pos + 8 <= len(body):
        ftype, flen = struct.unpack(">II", body[pos : pos + 8])
        pos += 8
        value = body[pos : pos + flen]
        pos += flen
        if ftype == FIELD_CONTENT_TYPE:
            types.append(value)
    return types


def write_frames(out: BinaryIO, payloads: list[bytes], content_type: bytes = CONTENT_TYPE, stop: bool = True) -> None:
    """Write a complete unidirectional Frame Streams file (START, data frames, STOP)."""
    start = struct.pack(">III", CONTROL_START, FIELD_CONTENT_TYPE, len(content_type)) + content_type
    out.write(struct.pack(">II", 0, len(start)) + start)
    for payload in payloads:
        out.write(struct.pack(">I", len(payload)) + payload)
    if stop:
        out.write(struct.pack(">III", 0, 4, CONTROL_STOP))


# ---------------------------------------------------------------- protobuf wire

def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise WireError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint too long")


def fields(buf: bytes) -> dict[int, int | bytes]:
    """Field number → last value (varints and fixed as int, length-delimited as bytes)."""
    out: dict[int, int | bytes] = {}
    pos = 0
    n = len(buf)
    while pos < n:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
            out[number] = value
        elif wire == 1:
            if pos + 8 > n:
                raise WireError("truncated fixed64")
            out[number] = struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > n:
                raise WireError("truncated length-delimited field")
            out[number] = buf[pos : pos + length]
            pos += length
        elif wire == 5:
            if pos + 4 > n:
                raise WireError("truncated fixed32")
            out[number] = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        else:
            raise WireError(f"unsupported wire type {wire}")
    return out


def enc_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def enc_field(number: int, value: int | bytes, fixed32: bool = False) -> bytes:
    """One encoded field: bytes are length-delimited, ints varint (or fixed32 when asked)."""
    if isinstance(value, bytes):
        return enc_varint(number << 3 | 2) + enc_varint(len(value)) + value
    if fixed32:
        return enc_varint(number << 3 | 5) + struct.pack("<I", value)
    return enc_varint(number << 3) + enc_varint(value)
