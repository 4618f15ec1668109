"""Redis key names and the compact verdict value (SPEC.md §3).

Pure functions with no Redis import, shared by the cache, the CLI, the
workers and the test vectors, so a key is spelled in exactly one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "BadValue",
    "LABEL_CODES",
    "Verdict",
    "changes_channel",
    "dashboard_key",
    "seen_domain_key",
    "format_verdict",
    "parse_verdict",
    "verdict_key",
    "vetted_key",
    "vetted_log_key",
]

KEY_VERSION = "v1"
LABEL_CODES = {"malicious": "m", "uncertain": "u", "benign": "b"}
"""One letter per verdict label (vocabulary.VERDICT_LABELS) in the compact value; tests check they match."""
_LABELS = {code: label for label, code in LABEL_CODES.items()}
_SCORE = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_SECONDS = re.compile(r"[0-9]{1,12}")


class BadValue(ValueError):
    """A stored verdict value that does not parse: counted as ``bad_value``, read as unknown."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """A model verdict for one exact normalized name (SPEC §1.3)."""

    name: str
    label: str
    score: float
    model: str
    ts: int
    """Unix seconds when the verdict was made."""
    family: str | None = None
    family_p: float | None = None
    reason: str | None = None
    """Which layer decided (vocabulary.REASONS); for Elasticsearch, not part of the compact value."""

    def __post_init__(self) -> None:
        if self.label not in LABEL_CODES:
            raise ValueError(f"label {self.label!r} is not one of {sorted(LABEL_CODES)}")
        if "|" in self.model or not self.model:
            raise ValueError(f"model version {self.model!r} must be non-empty and contain no '|'")


def verdict_key(prefix: str, name: str) -> str:
    """``<p>:v1:verdict:<name>``."""
    return f"{prefix}:{KEY_VERSION}:verdict:{name}"


def vetted_key(prefix: str) -> str:
    """The hash of vetted decisions, field = entry name."""
    return f"{prefix}:{KEY_VERSION}:vetted"


def vetted_log_key(prefix: str) -> str:
    """The stream that records every vetted change."""
    return f"{prefix}:{KEY_VERSION}:vetted:log"


def changes_channel(prefix: str) -> str:
    """The pub/sub channel announcing ``vetted <name>`` and ``verdict <name>``."""
    return f"{prefix}:{KEY_VERSION}:changes"


def seen_domain_key(prefix: str, registrable: str) -> str:
    """``<p>:v1:seen:<registrable>``: when and by whom this deployment first saw a domain (newly observed)."""
    return f"{prefix}:{KEY_VERSION}:seen:{registrable}"


def dashboard_key(prefix: str, *parts: str) -> str:
    """``<p>:v1:dashboard:<part>:…``: the dashboard's accounts, sessions and login counters.

    Every dashboard instance and the ``dnsentinel users`` command share them (no restart
    needed after a change); the parts are the dashboard's own (``users``, ``session:<id>``, …).
    """
    if not parts or any(not p or ":" in p for p in parts[:-1]):
        raise ValueError(f"dashboard key parts {parts!r}: give at least one, and no ':' before the last")
    return ":".join((prefix, KEY_VERSION, "dashboard", *parts))


def format_verdict(v: Verdict) -> str:
    """``<m|u|b>|<score, 4 decimals>|<model>|<unix seconds>``."""
    score = min(max(float(v.score), 0.0), 1.0)
    return f"{LABEL_CODES[v.label]}|{score:.4f}|{v.model}|{int(v.ts)}"


def parse_verdict(name: str, value: str | bytes) -> Verdict:
    """Decode a compact value; raises :class:`BadValue` (the caller counts it and reads unknown)."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise BadValue("not UTF-8") from None
    parts = value.split("|")
    if len(parts) != 4:
        raise BadValue(f"{len(parts)} fields, expected 4")
    code, score_text, model, seconds = parts
    label = _LABELS.get(code)
    if label is None:
        raise BadValue(f"label code {code[:8]!r} is not m, u or b")
    if not _SCORE.fullmatch(score_text):
        raise BadValue(f"score {score_text[:20]!r} is not a decimal number")
    score = float(score_text)
    if score > 1.0:
        raise BadValue(f"score {score_text} is over 1")
    if not model:
        raise BadValue("empty model version")
    if not _SECONDS.fullmatch(seconds):
        raise BadValue(f"time {seconds[:20]!r} is not unix seconds")
    return Verdict(name, label, score, model, int(seconds))
