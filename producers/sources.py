"""Open log files the way replay reads them: decompressed by magic bytes, stdin, or tailed.

Compression is recognised from the first bytes rather than the file name, so a ``.log`` that is
really gzip, or a compressed stream on stdin, still works.
"""

from __future__ import annotations

import gzip
import io
import lzma
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from dnsentinel.errors import DnsentinelError

BUFFER = 1 << 20

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


class SourceError(DnsentinelError):
    """A file cannot be opened or read (missing, unreadable, corrupt compression)."""


@dataclass
class Source:
    """A decompressed binary stream plus what the progress bar needs to know about it."""

    name: str
    """The file name (``origin`` of the events), ``-`` for stdin."""
    stream: io.BufferedReader
    compression: str | None
    size: int | None
    """Size on disk (compressed), ``None`` for stdin."""
    position: Callable[[], int]
    """Bytes of the underlying (compressed) file consumed so far."""
    raw: BinaryIO
    adapter: "_Raw | None" = None
    outer: io.BufferedReader | None = None
    """The buffer over the file itself, below any decompressor."""
    _text: io.TextIOWrapper | None = None

    def text(self) -> io.TextIOWrapper:
        """The decoded lines; undecodable bytes survive as surrogates (names are checked later)."""
        if self._text is None:
            self._text = io.TextIOWrapper(self.stream, encoding="utf-8", errors="surrogateescape", newline="\n")  # type: ignore[arg-type]
        return self._text

    @property
    def error(self) -> str | None:
        """Why decompression stopped early (a truncated or corrupt file), or None."""
        return self.adapter.error if self.adapter is not None else None

    def close(self) -> None:
        if self.raw is sys.stdin.buffer:
            if self._text is not None:
                self._text.detach()  # never close the process's stdin
            return
        for part in (self._text, self.stream, self.outer, self.raw):
            if part is not None:
                part.close()


def detect_compression(head: bytes) -> str | None:
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return None


def open_source(path: str, follow: bool = False) -> Source:
    """Open ``path`` (``-`` is stdin) decompressing gzip, xz or zstd transparently."""
    if path == "-":
        raw: BinaryIO = sys.stdin.buffer
        size = None
        name = "-"
    else:
        p = Path(path)
        try:
            raw = open(p, "rb", buffering=0)  # noqa: SIM115 - closed by Source.close
        except OSError as exc:
            raise SourceError(f"{path}: cannot open ({exc.strerror or exc})") from exc
        size = os.fstat(raw.fileno()).st_size
        name = p.name
    outer = io.BufferedReader(raw, BUFFER)  # type: ignore[arg-type]
    try:
        head = outer.peek(8)[:8]
    except OSError as exc:
        raise SourceError(f"{path}: cannot read ({exc})") from exc
    kind = detect_compression(head)
    if follow and kind is not None:
        if raw is not sys.stdin.buffer:
            outer.close()
        raise SourceError(f"{path}: --follow needs an uncompressed file (this one is {kind})")
    inner: BinaryIO
    if kind == "gzip":
        inner = gzip.GzipFile(fileobj=outer, mode="rb")  # type: ignore[assignment]
    elif kind == "xz":
        inner = lzma.LZMAFile(outer, mode="rb")  # type: ignore[assignment]
    elif kind == "zstd":
        import zstandard

        inner = zstandard.ZstdDecompressor().stream_reader(outer, read_across_frames=True)  # type: ignore[assignment]
    else:
        inner = outer  # type: ignore[assignment]
    adapter = None if isinstance(inner, io.BufferedReader) else _Raw(inner)
    stream = inner if adapter is None else io.BufferedReader(adapter, BUFFER)  # type: ignore[assignment]

    def position() -> int:
        try:
            return raw.tell()
        except (OSError, ValueError):
            return 0

    return Source(name=name, stream=stream, compression=kind, size=size, position=position, raw=raw, adapter=adapter, outer=outer)


class _Raw(io.RawIOBase):
    """Adapts a decompressing reader to RawIOBase so BufferedReader can peek into it.

    A corrupt or truncated stream ends the data (EOF) instead of raising, and the reason is
    kept in ``error``: every line decompressed before the damage is still replayed, and the
    replay reports where the file broke.
    """

    def __init__(self, inner: BinaryIO) -> None:
        self._inner = inner
        # read1 returns what one decompression step yields, so data before the damage survives.
        self._read = getattr(inner, "read1", inner.read)
        self.error: str | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.error is not None:
            return 0
        try:
            data = self._read(min(len(buffer), 1 << 16))
        except Exception as exc:  # EOFError, OSError, LZMAError, zstandard.ZstdError: no common base
            self.error = f"corrupt or truncated compressed data: {exc}"
            return 0
        n = len(data)
        buffer[:n] = data
        return n

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            super().close()


def follow_lines(stream: BinaryIO, poll_s: float = 0.2, stop: Callable[[], bool] = lambda: False) -> Iterator[str]:
    """Lines of a growing file, like ``tail -f``: a partial last line waits for its newline."""
    pending = b""
    while not stop():
        chunk = stream.readline()
        if not chunk:
            time.sleep(poll_s)
            continue
        pending += chunk
        if pending.endswith(b"\n"):
            yield pending.decode("utf-8", "surrogateescape")
            pending = b""
