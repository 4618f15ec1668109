"""DNS tunnelling and exfiltration: many unique, long or encoded labels below one domain.

A tunnel (iodine, dnscat2, DNSExfiltrator) carries data in the labels left of a domain whose
name server the attacker runs, so per window one domain sees hundreds of names that never
repeat, longer and more random than anything a person or a CDN uses, often with record
types that carry payload back (NULL, TXT, CNAME, MX, ...). Queries are partitioned by
registrable domain (SPEC §2.1), so each worker sees every query of the domains it owns and
counts them here without any exchange.

Names the model does not judge still count: the ``pirate.sea`` iodine tunnel has no public
suffix; its "domain" is then the last two labels. Domains on the model's popularity prior
are skipped (``skip_popular``): a tunnel needs a domain whose name server the attacker runs,
and the big reputation services that look like tunnels (anti-virus lookups, DNSBLs) are there.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from dnsentinel.settings import TunnelSettings

MAX_SUBDOMAINS = 5_000
MAX_CLIENTS = 50
TUNNEL_QTYPES = frozenset({"NULL", "TXT", "CNAME", "MX", "SRV", "ANY", "KEY", "PRIVATE"})
"""Record types that carry a tunnel's downstream data (iodine tries NULL, then TXT, SRV, MX, CNAME, A)."""


@dataclass(slots=True)
class DomainWindow:
    """One domain's queries in one window."""

    subdomains: set[str] = field(default_factory=set)
    overflow: int = 0
    queries: int = 0
    payload_qtypes: int = 0
    query_bytes: int = 0
    clients: set[str] = field(default_factory=set)
    first: int = 0
    last: int = 0

    def add(self, ts: int, subdomain: str, qtype: str, client: str, name_len: int) -> None:
        self.first = ts if not self.first else min(self.first, ts)
        self.last = max(self.last, ts)
        self.queries += 1
        self.query_bytes += name_len
        if qtype in TUNNEL_QTYPES:
            self.payload_qtypes += 1
        if subdomain not in self.subdomains:
            if len(self.subdomains) < MAX_SUBDOMAINS:
                self.subdomains.add(subdomain)
            else:
                self.overflow += 1
        if len(self.clients) < MAX_CLIENTS:
            self.clients.add(client)


@dataclass(frozen=True, slots=True)
class TunnelFinding:
    severity: str
    evidence: list[str]
    details: dict[str, float]


def char_entropy(texts: list[str]) -> float:
    """Shannon entropy in bits per character over the characters of ``texts`` (dots left out)."""
    counts = Counter(c for t in texts for c in t if c != ".")
    total = sum(counts.values())
    return -sum(n / total * math.log2(n / total) for n in counts.values()) if total else 0.0


def judge(window: DomainWindow, cfg: TunnelSettings) -> TunnelFinding | None:
    """Whether one domain's window looks like a tunnel or exfiltration (see the module docstring)."""
    unique = len(window.subdomains) + window.overflow
    if unique < cfg.min_unique:
        return None
    sample = sorted(window.subdomains)[:1000]
    mean_len = sum(map(len, sample)) / len(sample)
    entropy = char_entropy(sample)
    payload_share = window.payload_qtypes / window.queries
    encoded = mean_len >= cfg.min_mean_length or entropy >= cfg.min_entropy or payload_share >= cfg.min_payload_share
    exfil = window.query_bytes >= cfg.min_bytes_per_window
    if not (encoded or exfil):
        return None
    strong = unique >= 3 * cfg.min_unique or payload_share >= cfg.min_payload_share
    return TunnelFinding(
        severity="high" if strong else "medium",
        evidence=sorted(sample, key=len, reverse=True),
        details={"unique_subdomains": unique, "queries": window.queries, "mean_length": round(mean_len, 2),
                 "entropy_bits": round(entropy, 3), "payload_qtype_share": round(payload_share, 4),
                 "query_bytes": window.query_bytes, "clients": len(window.clients)},
    )
