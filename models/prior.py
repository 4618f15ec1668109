"""The popularity prior: a registrable domain on the shipped benign ranking is not a DGA or phishing domain.

Why: the character model sees a name without its history. ``duckduckgo.com`` or
``jekyllrb.com`` may look odd to it, yet millions of users reach them every day;
sending them to the vetting queue wastes analysts and blocking them is an outage.
A ranking says what the model cannot: this domain has been popular for months.

Except where anyone can register a name below the domain (dynamic DNS, site
builders, tunnels, cloud app hosts): ``weebly.com`` is popular, its customer
``paypal-verify.weebly.com`` is phishing. Names below such *open platforms* are
judged by the model. The list of open platforms is a curated file
(``models/data/open_platforms.txt``) plus every ranked domain under which the
training corpus holds at least :data:`OPEN_MIN_MALICIOUS` malicious names.

The prior is an artifact of a registry version (``prior.json.xz``, with its
sources and build date), so a model and the ranking it was calibrated with travel
together and a rollback restores both.
"""

from __future__ import annotations

import json
import lzma
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dnsentinel.verdict_cache.names import InvalidName, normalize

FILE = "prior.json.xz"
OPEN_PLATFORMS_FILE = Path(__file__).resolve().parent / "data" / "open_platforms.txt"
OPEN_MIN_MALICIOUS = 2
"""A ranked domain hosting this many distinct malicious names in training is an open platform."""


@dataclass(frozen=True)
class Prior:
    """Ranked registrable domains and the open platforms the ranking never vouches for."""

    ranking: frozenset[str]
    open_platforms: frozenset[str]
    info: dict[str, Any] = field(default_factory=dict)
    """Where the ranking came from, when it was built, how many domains it holds."""

    def vouches_for(self, registrable: str | None) -> bool:
        """Whether a name with this registrable domain is benign by popularity alone."""
        return registrable is not None and registrable in self.ranking and registrable not in self.open_platforms

    def save(self, directory: Path) -> Path:
        path = Path(directory) / FILE
        body = {**self.info, "open_platforms": sorted(self.open_platforms), "ranking": sorted(self.ranking)}
        with lzma.open(path, "wt", encoding="utf-8", preset=6) as handle:
            json.dump(body, handle, separators=(",", ":"))
        return path


EMPTY = Prior(frozenset(), frozenset(), {"sources": [], "note": "no prior: every name goes to the model"})


def load(directory: Path) -> Prior:
    """The prior of a registry version, or :data:`EMPTY` for versions trained before it existed."""
    path = Path(directory) / FILE
    if not path.is_file():
        return EMPTY
    with lzma.open(path, "rt", encoding="utf-8") as handle:
        body = json.load(handle)
    ranking = frozenset(body.pop("ranking"))
    open_platforms = frozenset(body.pop("open_platforms"))
    return Prior(ranking, open_platforms, body)


def registrable_of(names: Iterable[str]) -> list[str | None]:
    """The registrable domain (SPEC §1.2) of each name; None where it has none or is not a name."""
    out: list[str | None] = []
    for raw in names:
        try:
            out.append(normalize(raw).registrable)
        except InvalidName:
            out.append(None)
    return out


def curated_open_platforms(path: Path = OPEN_PLATFORMS_FILE) -> set[str]:
    """The curated open-platform file: one domain a line, ``#`` comments; bad lines are reported."""
    found: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            found.add(normalize(entry).name)
        except InvalidName as exc:
            raise ValueError(f"{path}:{number}: {entry!r} is not a domain name ({exc.reason})") from None
    return found


def build(benign: Iterable[str], malicious: Iterable[str], sources: list[str]) -> Prior:
    """A prior from benign ranking names and the training split's malicious names."""
    ranking = {r for r in registrable_of(benign) if r}
    hosting = Counter(r for r in registrable_of(malicious) if r in ranking)
    derived = {domain for domain, count in hosting.items() if count >= OPEN_MIN_MALICIOUS}
    open_platforms = curated_open_platforms() | derived
    info = {
        "sources": sources,
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "ranking_size": len(ranking),
        "open_platforms_curated": len(open_platforms - derived),
        "open_platforms_from_corpus": len(derived),
        "open_min_malicious": OPEN_MIN_MALICIOUS,
    }
    return Prior(frozenset(ranking), frozenset(open_platforms), info)
