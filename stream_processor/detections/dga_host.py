"""DGA-infected host: one client resolving many distinct random or non-existent names in a window.

Why per host and not per name: a DGA shows itself less by one name (the model sees a single
string and can be unsure) than by a machine that tries dozens of them a minute, most of which
were never registered. Elastic's DGA package alerts on a host's summed DGA probability; we
count two kinds of evidence per client and window, over *distinct* names so that one name
retried many times counts once:

- NXDOMAIN answers for public names the model may judge (bare names, ``.local`` and other
  unscored names are left out: Chrome's random intranet probes and search-suffix misses are
  NXDOMAINs too, and they are not a DGA);
- the model's calibrated scores of the names it scored, and names it already flagged, among
  the names that did not resolve (an answered NOERROR takes a name out: a phishing or
  malware site that exists is the per-name verdict's business, and a busy client clicking
  through several of them is not a DGA; when the log does not say, the name counts).

Names are counted per registrable domain: a DGA registers (or tries) a new domain each time,
while a tunnel or a CDN makes many names under one domain (that is the tunnel detection's
business, not this one's).

The window fires when the NXDOMAIN names alone reach ``nx_min_names`` with a mean score of at
least ``nx_min_mean_score`` (random-looking misses, not typos), or when the summed scores reach
``score_sum_min`` over at least ``flagged_min_names`` flagged names. Both: severity high.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dnsentinel.settings import DgaHostSettings
from dnsentinel.verdict_cache.alerts import Signal
from dnsentinel.verdict_cache.vocabulary import FLAGGED_LABELS

MAX_NAMES = 2_000
"""Distinct domains kept per client and window (more are counted in ``overflow``)."""


@dataclass(slots=True)
class HostWindow:
    """What one client did in one window (only its signals: the other queries never reach here)."""

    names: dict[str, Signal] = field(default_factory=dict)
    """One signal per registrable domain (the first name seen under it, and what was learnt)."""
    overflow: int = 0
    first: int = 0
    last: int = 0

    def add(self, sig: Signal) -> None:
        self.first = sig.ts if not self.first else min(self.first, sig.ts)
        self.last = max(self.last, sig.ts)
        seen = self.names.get(sig.domain)
        if seen is None:
            if len(self.names) >= MAX_NAMES:
                self.overflow += 1
                return
            self.names[sig.domain] = sig
        else:  # the same name again: keep what we learnt (a score, an NXDOMAIN) from either
            seen.nxdomain = seen.nxdomain or sig.nxdomain
            seen.resolved = seen.resolved or sig.resolved
            seen.score = sig.score if seen.score is None else seen.score
            seen.label = sig.label or seen.label


@dataclass(frozen=True, slots=True)
class HostFinding:
    """A window that fired, with the measurements it fired on."""

    severity: str
    evidence: list[str]
    uncertain: list[str]
    """Evidence names whose verdict was uncertain: the alert makes them malicious."""
    details: dict[str, float]


def judge(window: HostWindow, cfg: DgaHostSettings) -> HostFinding | None:
    """Whether a client's window looks like a DGA at work (see the module docstring)."""
    sigs = list(window.names.values())
    nx = [s for s in sigs if s.nxdomain]
    nx_scores = [s.score for s in nx if s.score is not None]
    nx_mean = sum(nx_scores) / len(nx_scores) if nx_scores else 0.0
    unresolved = [s for s in sigs if not s.resolved]
    flagged = [s for s in unresolved if (s.score or 0.0) >= cfg.flag_score or s.label in FLAGGED_LABELS]
    score_sum = sum(s.score for s in unresolved if s.score is not None)
    by_nx = len(nx) >= cfg.nx_min_names and nx_mean >= cfg.nx_min_mean_score
    by_score = score_sum >= cfg.score_sum_min and len(flagged) >= cfg.flagged_min_names
    if not (by_nx or by_score):
        return None
    evidence = [s.name for s in sorted({id(s): s for s in flagged + nx}.values(), key=lambda s: -(s.score or 0.0))]
    return HostFinding(
        severity="high" if by_nx and by_score else "medium",
        evidence=evidence,
        uncertain=[s.name for s in sigs if s.label == "uncertain"],
        details={"distinct_domains": len(sigs) + window.overflow, "nxdomain_names": len(nx),
                 "nxdomain_mean_score": round(nx_mean, 4), "flagged_names": len(flagged),
                 "score_sum": round(score_sum, 4)},
    )
