"""Vetted list files: import (plain, hosts, Adblock; gzip/xz), export, RPZ zones.

Public block lists come in three shapes and are often compressed; one bad
line must never cost the other million, so parsing reports each bad line
(file, line number, reason) and keeps going, and valid entries reach Redis in
pipelined batches while the file is still being read.
"""

from __future__ import annotations

import gzip
import io
import lzma
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from dnsentinel.verdict_cache.cache import check_vetted, vetted_entry
from dnsentinel.verdict_cache.names import InvalidName
from dnsentinel.verdict_cache.policy import effective_decision
from dnsentinel.verdict_cache.vocabulary import BLOCKING_DECISIONS, RpzAction

if TYPE_CHECKING:
    from dnsentinel.verdict_cache.cache import VerdictCache, VettedRecord

__all__ = [
    "BadLine",
    "ImportReport",
    "LineError",
    "export_rpz",
    "import_list",
    "open_list",
    "parse_line",
    "parse_lines",
]

_HOSTS_ADDRESSES = frozenset({"0.0.0.0", "127.0.0.1", "::", "::1", "0:0:0:0:0:0:0:0", "0:0:0:0:0:0:0:1"})
_HOSTS_BOILERPLATE = frozenset({
    "localhost", "localhost.localdomain", "local", "broadcasthost", "ip6-localhost", "ip6-loopback",
    "ip6-localnet", "ip6-mcastprefix", "ip6-allnodes", "ip6-allrouters", "ip6-allhosts", "0.0.0.0",
})
_ADBLOCK_OK_OPTIONS = frozenset({"important", "all", "document", "doc"})
_MAX_LINE = 4096


class LineError(ValueError):
    """Why one line of a list is not an entry; ``reason`` is a short code for the summary."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def open_list(path: Path) -> tuple[IO[bytes], IO[bytes]]:
    """(decoded byte stream, raw file) for a plain, gzip or xz file, judged by its magic bytes.

    The raw file is returned too so a progress bar can follow ``raw.tell()``.
    """
    raw = open(path, "rb")  # noqa: SIM115 - closed by the caller
    magic = raw.read(6)
    raw.seek(0)
    if magic[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb"), raw
    if magic == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(raw, mode="rb"), raw
    return raw, raw


def parse_line(line: bytes) -> list[str]:
    """The normalized entries on one line ([] for blank lines and comments); raises LineError."""
    text = line.strip()
    if not text or text[:1] in (b"#", b"!") or text.startswith(b"["):
        return []
    if len(text) > _MAX_LINE:
        raise LineError("too_long", f"line is {len(text)} bytes")
    if text.startswith(b"@@"):
        raise LineError("adblock_exception", "an Adblock exception (@@) is not a list entry")
    if text.startswith(b"||"):
        return [_adblock(text)]
    hash_at = text.find(b" #")
    if hash_at < 0:
        hash_at = text.find(b"\t#")
    if hash_at >= 0:
        text = text[:hash_at].rstrip()
    fields = text.split()
    if len(fields) == 1:
        return [_entry(fields[0])]
    address = fields[0].decode("ascii", "replace")
    if address not in _HOSTS_ADDRESSES:
        if _looks_like_address(address):
            raise LineError("hosts_address", f"hosts line maps to {address}, not a null address")
        raise LineError("bad_format", "more than one field and not a hosts line")
    return [_entry(f) for f in fields[1:] if f.decode("ascii", "replace").lower() not in _HOSTS_BOILERPLATE]


def _looks_like_address(text: str) -> bool:
    return ":" in text or text.replace(".", "").isdigit()


def _adblock(text: bytes) -> str:
    body = text[2:]
    options = b""
    if b"$" in body:
        body, _, options = body.partition(b"$")
        unknown = {o.strip().decode("ascii", "replace") for o in options.split(b",")} - _ADBLOCK_OK_OPTIONS
        if unknown:
            raise LineError("adblock_options", f"options {','.join(sorted(unknown))} make it more than a domain rule")
    if not body.endswith(b"^"):
        raise LineError("adblock_path", "only ||domain^ rules name a whole domain")
    body = body[:-1]
    if any(c in body for c in b"/*^|"):
        raise LineError("adblock_path", "a path or pattern is not a whole domain")
    return _entry(body)


def _entry(token: bytes) -> str:
    try:
        return vetted_entry(token)
    except InvalidName as exc:
        raise LineError(f"name:{exc.reason}", exc.detail) from None


@dataclass(frozen=True, slots=True)
class BadLine:
    file: str
    line: int
    reason: str
    detail: str
    text: str


def parse_lines(stream: IO[bytes], file: str) -> Iterator[tuple[int, list[str] | BadLine]]:
    """(line number, entries or BadLine) for every line of a stream."""
    for number, line in enumerate(stream, 1):
        try:
            yield number, parse_line(line)
        except LineError as exc:
            shown = line.rstrip(b"\r\n")[:120].decode("utf-8", "backslashreplace")
            yield number, BadLine(file, number, exc.reason, exc.detail, shown)


@dataclass
class ImportReport:
    """What an import did, for the summary table and for tests."""

    file: str
    action: str
    lines: int = 0
    entries: int = 0
    blank_or_comment: int = 0
    duplicates: int = 0
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    conflicts: int = 0
    bad: Counter[str] = field(default_factory=Counter)
    examples: list[BadLine] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def bad_total(self) -> int:
        return sum(self.bad.values())


def import_list(
    cache: VerdictCache,
    path: Path,
    action: str,
    by: str,
    note: str | None = None,
    *,
    batch: int = 5000,
    max_examples: int = 10,
    progress: Callable[[int, int], None] | None = None,
    replace: bool = False,
) -> ImportReport:
    """Import one list file into the vetted hash as ``action``.

    ``progress(done_bytes, total_bytes)`` follows the (compressed) file.
    Entries vetted with another action are kept (counted as conflicts) unless ``replace``.
    """
    check_vetted(action, by, note)  # fail before reading a million lines
    path = Path(path)
    report = ImportReport(str(path), action)
    started = time.perf_counter()
    total = path.stat().st_size
    seen: set[str] = set()
    pending: list[str] = []

    def flush() -> None:
        counts = cache.set_vetted_many(pending, action, by, note, replace=replace, source=path.name)
        report.added += counts["added"]
        report.changed += counts["changed"]
        report.unchanged += counts["unchanged"]
        report.conflicts += counts["conflicts"]
        pending.clear()

    stream, raw = open_list(path)
    try:
        for number, result in parse_lines(stream, str(path)):
            report.lines = number
            if isinstance(result, BadLine):
                report.bad[result.reason] += 1
                if len(report.examples) < max_examples:
                    report.examples.append(result)
                continue
            if not result:
                report.blank_or_comment += 1
                continue
            for entry in result:
                report.entries += 1
                if entry in seen:
                    report.duplicates += 1
                    continue
                seen.add(entry)
                pending.append(entry)
            if len(pending) >= batch:
                flush()
                if progress is not None:
                    progress(raw.tell(), total)
        if pending:
            flush()
    except (OSError, EOFError, lzma.LZMAError) as exc:
        # a corrupt or truncated archive: keep what was imported, report where it broke
        report.bad["unreadable"] += 1
        report.examples.append(BadLine(str(path), report.lines + 1, "unreadable", str(exc), ""))
        if pending:
            flush()
    finally:
        stream.close()
        raw.close()
    if progress is not None:
        progress(total, total)
    report.seconds = time.perf_counter() - started
    return report


# -- export -------------------------------------------------------------------------------------


def export_vetted(records: dict[str, VettedRecord], out: IO[str], plain: bool = False) -> int:
    """Write vetted entries: plain (one name per line, re-importable) or TSV with who/when/note."""
    if not plain:
        out.write("# name\taction\tby\tat\tnote\n")
    for name in sorted(records):
        rec = records[name]
        if plain:
            out.write(f"{name}\n")
        else:
            note = (rec.note or "").replace("\t", " ").replace("\n", " ")
            at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(rec.at))
            out.write(f"{name}\t{rec.action}\t{rec.by}\t{at}\t{note}\n")
    return len(records)


# -- RPZ ----------------------------------------------------------------------------------------

_CHILD = "0--dnsentinel-child"
"""A label no entry uses, to ask 'what applies to a subdomain of X'."""


@dataclass
class RpzReport:
    records: int = 0
    owners: Counter[str] = field(default_factory=Counter)
    skipped_too_long: int = 0
    local_data_as_nxdomain: int = 0


def export_rpz(
    vetted: dict[str, str],
    malicious: Iterable[str],
    out: IO[str],
    *,
    zone: str,
    ttl: int,
    nameserver: str,
    block_action: RpzAction,
    sinkhole: tuple[str, str],
    honeypot: tuple[str, str],
    serial: int | None = None,
) -> RpzReport:
    """Write an RPZ zone that gives the same answers as SPEC §1.3-1.4.

    ``vetted`` maps entries to actions; ``malicious`` are names with a
    malicious model verdict (exact names only). Every owner name's policy is
    computed with :func:`~dnsentinel.verdict_cache.policy.effective_decision`, so RPZ's own "most specific trigger wins"
    never contradicts ours (an allow wildcard above a block drops the block).
    Blocks become ``CNAME .`` (NXDOMAIN) or sinkhole A/AAAA, honeypots A/AAAA
    local data, allows ``CNAME rpz-passthru.``.
    """
    zone = zone.rstrip(".").lower()
    if not nameserver.endswith("."):
        nameserver += "."
    if nameserver == zone + "." or nameserver.endswith("." + zone + "."):
        raise ValueError(f"nameserver {nameserver} must be outside the zone {zone} (it would need glue and be a trigger)")
    owners: dict[str, str | None] = {}  # owner -> verdict label for exact names
    for entry in vetted:
        base = entry[2:] if entry.startswith("*.") else entry
        if vetted[entry] == "allow" and not entry.startswith("*."):
            owners.setdefault(base, None)
            continue
        owners.setdefault(base, None)
        owners.setdefault("*." + base, None)
    for name in malicious:
        owners[name] = "malicious"
    serial = serial if serial is not None else int(time.time())
    report = RpzReport()
    out.write(f"; dnsentinel response policy zone, {len(owners)} owners, written {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC\n")
    out.write(f"$ORIGIN {zone}.\n$TTL {ttl}\n")
    out.write(f"@ SOA {nameserver} hostmaster.{zone}. {serial} 3600 600 86400 {ttl}\n")
    out.write(f"@ NS {nameserver}\n")
    for owner in sorted(owners, key=lambda o: o.split(".")[::-1]):
        if owner.startswith("*."):
            decision = effective_decision(f"{_CHILD}.{owner[2:]}", vetted, None)
        else:
            decision = effective_decision(owner, vetted, owners[owner])
        rdata = _rpz_rdata(decision, block_action, sinkhole, honeypot)
        if not rdata:
            continue
        if "_" in owner and rdata[0].startswith("A "):
            # BIND's check-names refuses a whole primary zone over one A record at a
            # non-hostname owner: such names get NXDOMAIN instead of local data.
            rdata = ["CNAME ."]
            report.local_data_as_nxdomain += 1
        if len(owner) + len(zone) + 2 > 254:
            report.skipped_too_long += 1
            continue
        for rr in rdata:
            out.write(f"{owner} {rr}\n")
            report.records += 1
        report.owners[decision] += 1
    return report


def _rpz_rdata(decision: str, block_action: str, sinkhole: tuple[str, str], honeypot: tuple[str, str]) -> list[str]:
    if decision == "allow":
        return ["CNAME rpz-passthru."]
    if decision in BLOCKING_DECISIONS and decision != "honeypot":
        if block_action == "sinkhole":
            return [f"A {sinkhole[0]}", f"AAAA {sinkhole[1]}"]
        return ["CNAME ."]
    if decision == "honeypot":
        return [f"A {honeypot[0]}", f"AAAA {honeypot[1]}"]
    return []


def write_text_atomically(path: Path, writer: Callable[[IO[str]], object]) -> object:
    """Write through a temp file and rename, so a reader (a DNS server) never sees half a zone."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with io.open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        result = writer(fh)
    tmp.replace(path)
    return result
