"""Synthetic DNS traffic for benchmarks and demos: popular names, DGA, phishing, water torture.

Where names come from (see producers/README.md):

- ``corpus`` (default when ``models/data/*.csv.xz`` is present): benign names are the head of the
  project's ranked benign list, picked with Zipf-like weights (rank r has weight 1/r^s), so a
  few names dominate as in real resolver traffic; DGA-like and phishing-like names are sampled
  from the shipped labelled corpus (``dga.csv.xz``, ``malicious_other.csv.xz`` rows with
  category ``phishing``). Nothing is generated with a real DGA algorithm and nothing outside the
  project's shipped corpus is read; none of this feeds training.
- ``synthetic``: everything is random-looking: benign names from syllables, DGA-like names from
  uniform random letters and digits, phishing-like names from generic account words joined with
  hyphens. Used when the corpus is absent, and selectable with ``--names synthetic``.

Random-subdomain ("water torture") names are always synthesized: a fresh random label under one
of a few victim domains, the pattern the worker's per-domain limit exists for.
Malicious shares come from a small set of "infected" clients, as in a real network.
"""

from __future__ import annotations

import lzma
import random
import string
import time
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Callable, Iterator

from dnsentinel.producers.records import Query
from dnsentinel.verdict_cache.vocabulary import Proto

PROTO: Proto = "udp"
"""Synthetic queries travel as UDP, like most real ones."""


def _data_dir() -> Path:
    """models/data of the installed package, found without importing it (no TensorFlow)."""
    import importlib.util

    spec = importlib.util.find_spec("dnsentinel.models")
    if spec is None or not spec.submodule_search_locations:
        return Path("/nonexistent")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


DATA_DIR = _data_dir()
BENIGN_TOP = 20_000
ZIPF_S = 1.0
QTYPES = (("A", 60), ("AAAA", 25), ("HTTPS", 8), ("TXT", 2), ("MX", 2), ("PTR", 3))
_SYLLABLES = [c + v for c in "bcdfghklmnprstvwz" for v in "aeiou"] + ["an", "en", "in", "on", "er", "st", "th"]
_TLDS_BENIGN = ("com", "com", "com", "net", "org", "io", "de", "co.uk", "fr", "nl")
_TLDS_BAD = ("com", "net", "info", "xyz", "top", "biz", "ru", "online")
_PHISH_WORDS = ("secure", "login", "account", "verify", "update", "signin", "wallet", "billing",
                "support", "auth", "confirm", "webmail", "portal", "service", "recovery")


@dataclass
class Mix:
    dga: float = 0.02
    phishing: float = 0.01
    flood: float = 0.01

    def check(self) -> None:
        for name, share in (("dga", self.dga), ("phishing", self.phishing), ("flood", self.flood)):
            if not 0 <= share <= 1:
                raise ValueError(f"--{name}-share must be within 0..1, got {share}")
        if self.dga + self.phishing + self.flood > 1:
            raise ValueError("the shares add up to more than 1")


def _read_column(path: Path, limit: int | None = None, where: Callable[[list[str]], bool] | None = None) -> list[str]:
    """First column of a corpus CSV, read lazily (stops after ``limit`` matching rows)."""
    out: list[str] = []
    with lzma.open(path, "rt", encoding="utf-8") as fh:
        next(fh, None)  # header
        for line in fh:
            cols = line.rstrip("\n").split(",")
            if where is not None and not where(cols):
                continue
            out.append(cols[0])
            if limit is not None and len(out) >= limit:
                break
    return out


def _word(rng: random.Random, lo: int = 2, hi: int = 4) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(lo, hi)))


def synthetic_benign(rng: random.Random, n: int) -> list[str]:
    names = set()
    while len(names) < n:
        host = rng.choice(("", "", "www.", "api.", "cdn.", "mail.", "static."))
        names.add(f"{host}{_word(rng)}.{rng.choice(_TLDS_BENIGN)}")
    return sorted(names, key=lambda _: rng.random())


def synthetic_dga(rng: random.Random) -> str:
    alphabet = string.ascii_lowercase + (string.digits if rng.random() < 0.3 else "")
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(8, 24))) + "." + rng.choice(_TLDS_BAD)


def synthetic_phishing(rng: random.Random) -> str:
    words = rng.sample(_PHISH_WORDS, rng.randint(2, 3))
    return f"{'-'.join(words)}-{_word(rng, 1, 2)}{rng.randint(1, 999)}.{rng.choice(_TLDS_BAD)}"


class TrafficModel:
    """Draws (name, qtype, client) triples with the configured mix."""

    def __init__(self, mix: Mix, clients: int = 500, names: str = "auto", seed: int | None = None) -> None:
        mix.check()
        self.mix = mix
        self.rng = rng = random.Random(seed)
        use_corpus = names == "corpus" or (names == "auto" and (DATA_DIR / "benign.csv.xz").is_file())
        if names == "corpus" and not (DATA_DIR / "benign.csv.xz").is_file():
            raise FileNotFoundError(f"--names corpus: {DATA_DIR}/benign.csv.xz is missing")
        self.source = "corpus" if use_corpus else "synthetic"
        self.benign = _read_column(DATA_DIR / "benign.csv.xz", BENIGN_TOP) if use_corpus else synthetic_benign(rng, 5_000)
        self._benign_cum = list(accumulate(1.0 / (r ** ZIPF_S) for r in range(1, len(self.benign) + 1)))
        self._dga: list[str] = []
        self._phish: list[str] = []
        if use_corpus and mix.dga > 0:
            self._dga = _sample(rng, _read_column(DATA_DIR / "dga.csv.xz"), 20_000)
        if use_corpus and mix.phishing > 0:
            self._phish = _sample(rng, _read_column(DATA_DIR / "malicious_other.csv.xz",
                                                    where=lambda c: len(c) > 1 and c[1] == "phishing"), 20_000)
        self.clients = [f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}" for i in range(1, clients + 1)]
        self._client_cum = list(accumulate(1.0 / (r ** 0.6) for r in range(1, clients + 1)))
        self.infected = self.clients[-max(1, clients // 50):]
        self.victims = rng.sample(self.benign[:200], min(3, len(self.benign)))
        self._qtypes = [q for q, _ in QTYPES]
        self._qtype_cum = list(accumulate(w for _, w in QTYPES))
        self._edges = list(accumulate((mix.dga, mix.phishing, mix.flood)))

    def draw(self, n: int) -> Iterator[tuple[str, str, str]]:
        rng = self.rng
        benign = rng.choices(self.benign, cum_weights=self._benign_cum, k=n)
        clients = rng.choices(self.clients, cum_weights=self._client_cum, k=n)
        qtypes = rng.choices(self._qtypes, cum_weights=self._qtype_cum, k=n)
        e_dga, e_phish, e_flood = self._edges
        for i in range(n):
            u = rng.random()
            if u >= e_flood:
                yield benign[i], qtypes[i], clients[i]
            elif u < e_dga:
                name = rng.choice(self._dga) if self._dga else synthetic_dga(rng)
                yield name, "A", rng.choice(self.infected)
            elif u < e_phish:
                name = rng.choice(self._phish) if self._phish else synthetic_phishing(rng)
                yield name, "A", clients[i]
            else:
                label = "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(12))
                yield f"{label}.{rng.choice(self.victims)}", "A", rng.choice(self.infected)


def _sample(rng: random.Random, items: list[str], k: int) -> list[str]:
    return rng.sample(items, k) if len(items) > k else items


def generate(model: TrafficModel, rate: float, duration_s: float, emit: Callable[[Query], None],
             stop: Callable[[], bool] = lambda: False, tick_s: float = 0.01) -> int:
    """Emit ``rate`` queries per second for ``duration_s`` seconds, stamped with the send time."""
    start = time.monotonic()
    total = int(duration_s * rate)
    sent = 0
    while sent < total and not stop():
        elapsed = time.monotonic() - start
        due = min(int(elapsed * rate) + 1, total) - sent
        if due <= 0:
            time.sleep(min(tick_s, (sent + 1) / rate - elapsed))
            continue
        now_ms = int(time.time() * 1000)
        for name, qtype, client in model.draw(due):
            emit(Query(now_ms, name, qtype, client, None, PROTO, None))
        sent += due
    return sent
