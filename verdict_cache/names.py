"""Query-name normalization and the registrable domain (SPEC.md §1).

Every component that keys anything by a domain goes through :func:`normalize`,
so a name spelled ``WWW.Example.COM.`` by a resolver log and ``www.example.com``
by the plugin meet on one Redis key, one Kafka partition and one ES document.
The Go plugin implements the same rules; ``vectors.json`` keeps the two honest.

Workers call this for every event, so the common case (an already normalized,
plain ASCII name) takes a regex fast path and results are memoized.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache
from collections.abc import Iterable
from typing import Literal

import idna
import tldextract
from idna.core import IDNAError, check_label

from dnsentinel.verdict_cache.vocabulary import UnscoredReason

__all__ = [
    "InvalidName",
    "Name",
    "REASONS",
    "display_name",
    "normalize",
    "registrable_domain",
    "routing_key",
    "scope",
    "unscored_reason",
]

Kind = Literal["domain", "reverse", "bare"]

REASONS = (
    "empty",
    "bad_escape",
    "empty_label",
    "bad_idn",
    "bad_char",
    "label_too_long",
    "name_too_long",
)
"""Every reason code :class:`InvalidName` can carry (SPEC §1.1)."""

MAX_LABEL = 63
MAX_NAME = 253

# A name that is already normalized apart from case and one trailing dot:
# ASCII letters, digits, '-', '_', an optional leading wildcard label, no empty labels.
_PLAIN = re.compile(r"(?:\*\.)?[a-z0-9_-]{1,63}(?:\.[a-z0-9_-]{1,63})*|\*")
_LABEL_OK = re.compile(rb"[a-z0-9_-]+|\*")
_REVERSE_SUFFIXES = ("in-addr.arpa", "ip6.arpa")


class InvalidName(ValueError):
    """A query name that cannot be normalized; ``reason`` is a SPEC §1.1 code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Name:
    """A normalized query name with what the pipeline needs to know about it."""

    name: str
    kind: Kind
    registrable: str | None

    @property
    def scorable(self) -> bool:
        """Only ``domain`` names are ever scored by the model (SPEC §1.1)."""
        return self.kind == "domain"

    @property
    def display(self) -> str:
        """The Unicode (U-label) form, for people only."""
        return display_name(self.name)

    def __str__(self) -> str:
        return self.name


def normalize(raw: str | bytes) -> Name:
    """Normalize a query name per SPEC §1.1; raises :class:`InvalidName` with the reason."""
    if isinstance(raw, str):
        return _normalize_str(raw)
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw)
        if raw.isascii():
            return _normalize_str(raw.decode("ascii"))
        return _normalize_bytes(raw)
    raise TypeError(f"normalize() takes str or bytes, not {type(raw).__name__}")


@lru_cache(maxsize=1 << 16)
def _normalize_str(raw: str) -> Name:
    text = raw[:-1] if raw.endswith(".") else raw
    if text.isascii():
        low = text.lower()
        if len(low) <= MAX_NAME and _PLAIN.fullmatch(low):
            return _name(low)
    try:
        data = raw.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates
        raise InvalidName("bad_idn", f"not encodable as UTF-8: {exc.reason}") from None
    return _normalize_bytes(data)


def _normalize_bytes(raw: bytes) -> Name:
    if raw in (b"", b"."):
        raise InvalidName("empty", "the root name is not a query name")
    labels = _split_escaped(raw)
    if len(labels) > 1 and not labels[-1]:
        labels.pop()  # one trailing dot
    for i, label in enumerate(labels):
        if not label:
            raise InvalidName("empty_label", f"label {i + 1} is empty")
    if any(not label.isascii() for label in labels):
        labels = _to_alabels(labels)
    out: list[bytes] = []
    for i, label in enumerate(labels):
        label = label.lower()
        if not _LABEL_OK.fullmatch(label) or (label == b"*" and i > 0):
            raise InvalidName("bad_char", f"label {i + 1} {_show(label)} has a character outside a-z 0-9 - _")
        out.append(label)
    for i, label in enumerate(out):
        if len(label) > MAX_LABEL:
            raise InvalidName("label_too_long", f"label {i + 1} has {len(label)} octets (max {MAX_LABEL})")
    name = b".".join(out)
    if len(name) > MAX_NAME:
        raise InvalidName("name_too_long", f"name has {len(name)} octets (max {MAX_NAME})")
    return _name(name.decode("ascii"))


def _split_escaped(raw: bytes) -> list[bytes]:
    """Split presentation format on unescaped dots, decoding ``\\DDD`` and ``\\X``."""
    if b"\\" not in raw:
        return raw.split(b".")
    labels: list[bytes] = []
    cur = bytearray()
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == 0x5C:  # backslash
            if i + 1 >= n:
                raise InvalidName("bad_escape", f"lone backslash at offset {i}")
            nxt = raw[i + 1]
            if 0x30 <= nxt <= 0x39:
                digits = raw[i + 1 : i + 4]
                if len(digits) < 3 or not digits.isdigit():
                    raise InvalidName("bad_escape", f"\\DDD needs three digits at offset {i}")
                value = int(digits)
                if value > 255:
                    raise InvalidName("bad_escape", f"\\{digits.decode()} is over 255 at offset {i}")
                cur.append(value)
                i += 4
            else:
                cur.append(nxt)
                i += 2
        elif c == 0x2E:
            labels.append(bytes(cur))
            cur = bytearray()
            i += 1
        else:
            cur.append(c)
            i += 1
    labels.append(bytes(cur))
    return labels


def _to_alabels(labels: list[bytes]) -> list[bytes]:
    """Convert every non-ASCII label with UTS 46 (non-transitional) to A-labels.

    Labels are converted one by one so that ASCII labels keep our own rules
    (underscores, wildcards), exactly as the Go side does with idna.Lookup.
    """
    out: list[bytes] = []
    for i, label in enumerate(labels):
        if label.isascii():
            out.append(label)
            continue
        try:
            text = label.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidName("bad_idn", f"label {i + 1} {_show(label)} is not valid UTF-8") from None
        if "." in text:
            raise InvalidName("bad_char", f"label {i + 1} {_show(label)} contains an escaped dot")
        try:
            mapped = idna.uts46_remap(text, std3_rules=True)
            for part in mapped.split("."):
                if not part:
                    raise IDNAError("maps to an empty label")
                if part.isascii():
                    out.append(part.encode("ascii"))
                else:
                    check_label(part)
                    out.append(b"xn--" + part.encode("punycode"))
        except (IDNAError, UnicodeError, ValueError) as exc:
            raise InvalidName("bad_idn", f"label {i + 1} {_show(label)}: {exc}") from None
    return out


def _show(label: bytes) -> str:
    return repr(label.decode("utf-8", "backslashreplace"))


def _name(name: str) -> Name:
    if name.endswith(_REVERSE_SUFFIXES) and (
        name in _REVERSE_SUFFIXES or name.endswith((".in-addr.arpa", ".ip6.arpa"))
    ):
        return Name(name, "reverse", None)
    if "." not in name:
        return Name(name, "bare", None)
    return Name(name, "domain", registrable_domain(name))


_extractor = tldextract.TLDExtract(
    cache_dir=None,  # the bundled snapshot only: no network, no cache writes
    suffix_list_urls=(),
    fallback_to_snapshot=True,
    include_psl_private_domains=True,
)


class _SuffixRules:
    """The PSL rules of tldextract's bundled snapshot as three sets of A-label strings.

    tldextract's own extraction (URL parsing, Unicode decoding) costs ~10 µs
    per name; a random-subdomain flood defeats any memo, so the hot path
    matches suffixes with a few set lookups instead. Tests prove it returns
    what tldextract returns.
    """

    def __init__(self, rules: Iterable[str]) -> None:
        self.exact: set[str] = set()
        self.wild: set[str] = set()  # "*.ck" stored as "ck"
        self.exceptions: set[str] = set()  # "!www.ck" stored as "www.ck"
        for rule in rules:
            target = self.exact
            if rule.startswith("!"):
                rule, target = rule[1:], self.exceptions
            elif rule.startswith("*."):
                rule, target = rule[2:], self.wild
            target.add(".".join(_alabel(label) for label in rule.lower().split(".")))

    def suffix_labels(self, labels: list[str]) -> int:
        """How many rightmost labels form the public suffix (PSL algorithm, default rule ``*``)."""
        n = len(labels)
        best = 1
        suffix = labels[-1]
        for j in range(1, n + 1):
            if j > 1:
                suffix = labels[n - j] + "." + suffix
            if suffix in self.exceptions:
                return j - 1
            if suffix in self.exact:
                best = j
            if j < n and suffix in self.wild:
                best = j + 1
        return best


def _alabel(label: str) -> str:
    return label if label.isascii() else "xn--" + label.encode("punycode").decode("ascii")


@lru_cache(maxsize=1)
def _rules() -> _SuffixRules:
    return _SuffixRules(_extractor.tlds)


@lru_cache(maxsize=1 << 16)
def registrable_domain(name: str) -> str | None:
    """eTLD+1 of a normalized multi-label name (SPEC §1.2), or None for a public suffix.

    A TLD missing from the list follows the PSL default rule ``*`` (last two
    labels), as golang.org/x/net/publicsuffix does (tldextract alone would say
    "none"). A dotted IPv4 address has none, as in Go.
    """
    if name[-1:].isdigit() and _is_ipv4(name):
        return None
    labels = name.split(".")
    keep = _rules().suffix_labels(labels) + 1
    if keep > len(labels):
        return None
    return ".".join(labels[-keep:])


def _is_ipv4(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True


SPECIAL_USE_TLDS = frozenset(
    {
        # RFC 6761 / 6762 / 7686 / 9476 special-use names and ICANN's .internal
        "local", "localhost", "test", "example", "invalid", "onion", "alt", "internal",
        # private TLDs that home routers and companies use (not delegated in the root)
        "lan", "localdomain", "home", "corp", "intranet", "private",
    }
)
"""TLDs of names that never reach the public DNS; ``home.arpa`` is checked separately."""

ALT_ROOT_TLDS = frozenset({"bazar", "bit", "coin", "emc", "lib"})
"""Alternative-root TLDs (EmerDNS, Namecoin) that malware resolves through its own resolvers
(BazarLoader's ``.bazar``): not in the PSL, yet names under them are judged, never waved through."""


@lru_cache(maxsize=1)
def _icann_tlds() -> frozenset[str]:
    """The TLDs of the PSL's ICANN section (bundled snapshot): what the root zone delegates.

    Taken from every rule's last label, since some ccTLDs appear only in wildcard rules (``*.bd``).
    """
    rules = _extractor._get_tld_extractor().tlds_excl_private
    return frozenset(_alabel(rule.lower().rsplit(".", 1)[-1].lstrip("!")) for rule in rules) | ALT_ROOT_TLDS


def unscored_reason(name: Name) -> UnscoredReason | None:
    """Why the model must not judge this valid name, or None when it may (SPEC §1.5).

    A character model only knows public names; on a DNS-SD service (``_airplay._tcp.local``),
    a router's ``nas.lan`` or a reverse name its score is noise, and noise lands in the
    vetting queue. These names are still events: the behaviour detections see them.
    Half a microsecond a name (string tests and one set lookup), so it is not memoized.
    """
    if name.kind != "domain":
        return name.kind  # reverse, bare
    text = name.name
    if "_" in text and (text[0] == "_" or "._" in text):  # a label starting with "_"
        return "service"
    tld = text[text.rfind(".") + 1 :]
    if tld in SPECIAL_USE_TLDS or tld == "arpa":  # every .arpa name that is not reverse, home.arpa too
        return "special_use"
    if tld.isdigit():
        return "ip"
    if tld not in _icann_tlds():
        return "no_public_suffix"
    return None


def scope(raw: str | bytes) -> tuple[Name | None, UnscoredReason | None]:
    """Normalize ``raw`` and say whether the model may judge it: ``(name, unscored reason or None)``.

    A string that is not a DNS name at all (a URL, a name with spaces) is ``(None, "not_hostname")``.
    """
    try:
        name = normalize(raw)
    except InvalidName:
        return None, "not_hostname"
    return name, unscored_reason(name)


def routing_key(raw: str | bytes) -> bytes:
    """Kafka message key for a query name (SPEC §2.1)."""
    try:
        name = normalize(raw)
    except InvalidName:
        if isinstance(raw, str):
            return raw.encode("utf-8", "surrogatepass")
        return bytes(raw)
    return (name.registrable or name.name).encode("ascii")


def display_name(name: str | Name) -> str:
    """The Unicode form of a normalized name: ``xn--`` labels decoded where valid."""
    text = name.name if isinstance(name, Name) else name
    if "xn--" not in text:
        return text
    return ".".join(_display_label(label) for label in text.split("."))


def _display_label(label: str) -> str:
    if not label.startswith("xn--"):
        return label
    try:
        return idna.decode(label)
    except (IDNAError, UnicodeError, ValueError):
        return label
