"""Turning arbitrary strings into fixed-size integer arrays, vectorized with numpy.

The model must score *any* string without depending on another component, so
the encoding is self-contained: lower-case, strip surrounding white space and
one trailing dot, keep the **right-most** ``max_len`` characters (the TLD and
registrable domain carry the most signal and must never be cut), and map every
character to an index of a small fixed alphabet; anything outside it
(non-ASCII, spaces, punctuation) shares one "other" index.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-_."
"""Index 0 is padding, 1..len(ALPHABET) the characters, the last index is "other"."""

PAD = 0
OTHER = len(ALPHABET) + 1
VOCAB_SIZE = len(ALPHABET) + 2
DEFAULT_MAX_LEN = 64
"""Characters kept from the right end of a name (the TLD side)."""
MLBRIDGE_LEN = 256


def _lookup_table() -> np.ndarray:
    table = np.full(256, OTHER, dtype=np.int32)
    table[0] = PAD
    for i, ch in enumerate(ALPHABET, start=1):
        table[ord(ch)] = i
        table[ord(ch.upper())] = i  # encode() lower-cases anyway; keeps the table total
    return table


_TABLE = _lookup_table()


def clean(raw: object) -> str:
    """The text that is scored: a ``str`` (bytes decoded leniently), stripped, no trailing dot.

    ``None`` and other non-strings become ``""``; that empty result is what
    :func:`is_scoreable` rejects.
    """
    if isinstance(raw, bytes | bytearray):
        raw = bytes(raw).decode("utf-8", errors="replace")
    if not isinstance(raw, str):
        return ""
    text = raw.strip().lower()
    if text.endswith("."):
        text = text[:-1]
    return text


def is_scoreable(text: str) -> bool:
    """Whether a cleaned name has anything to judge (the rest get the defined score 0.0)."""
    return bool(text)


def encode(names: Sequence[object], max_len: int = DEFAULT_MAX_LEN, tail: int = 0) -> np.ndarray:
    """``(len(names), max_len + tail)`` int32 alphabet indices, left-aligned, zero-padded.

    ``tail`` guarantees that many padding positions after every name: with
    "valid" convolutions and global max pooling this makes the score exactly
    independent of how much padding follows, so a batch may be cut to its
    longest name plus ``tail`` (see :func:`trim`) without changing any score.

    Non-ASCII characters are replaced by ``?`` before the lookup, so they land
    on the "other" index; NUL bytes can therefore never be mistaken for padding
    (they map to "other" too, see below).
    """
    cleaned = [clean(n)[-max_len:].replace("\x00", "?") for n in names]
    if not cleaned:
        return np.zeros((0, max_len), dtype=np.int32)
    width = max_len + tail
    raw = np.array([c.encode("ascii", errors="replace") for c in cleaned], dtype=f"S{width}")
    codes = np.frombuffer(raw.tobytes(), dtype=np.uint8).reshape(len(cleaned), width)
    return _TABLE[codes]


def lengths(encoded: np.ndarray) -> np.ndarray:
    """Number of non-padding positions of each encoded row."""
    return np.count_nonzero(encoded, axis=1)


def trim(encoded: np.ndarray, tail: int) -> np.ndarray:
    """Drop the padding columns no row needs (keeping ``tail`` after the longest name)."""
    if encoded.shape[0] == 0:
        return encoded
    width = min(encoded.shape[1], int(lengths(encoded).max()) + tail)
    return encoded[:, :width]


def encode_codepoints(names: Sequence[object], length: int = MLBRIDGE_LEN) -> np.ndarray:
    """ML Bridge's input: Unicode code points of the name, zero-padded (or cut) to ``length``.

    Returned as float32 ``(n, 16, 16, 1)`` when ``length`` is 256, which is the
    shape the original model fed its Conv2D stack.
    """
    out = np.zeros((len(names), length), dtype=np.float32)
    for i, name in enumerate(names):
        text = clean(name)[:length]
        if text:
            out[i, : len(text)] = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    side = int(round(length**0.5))
    if side * side == length:
        return out.reshape(len(names), side, side, 1)
    return out


def decode(row: np.ndarray) -> str:
    """Inverse of :func:`encode` for one row (for explanations and tests); "other" shows as ``?``."""
    chars = []
    for idx in row:
        if idx == PAD:
            continue
        chars.append("?" if idx == OTHER else ALPHABET[idx - 1])
    return "".join(chars)
