"""Where verdicts and vetted decisions apply, and which wins (SPEC.md §1.3, §1.4).

Pure functions so that the cache, the plugin's Go twin and the test vectors
share one precedence rule, and so it is testable without Redis.
"""

from __future__ import annotations

__all__ = ["DECISIONS", "VETTED_ACTIONS", "candidates", "effective_decision", "is_wildcard_entry"]

from dnsentinel.verdict_cache.vocabulary import DECISIONS, VETTED_ACTIONS


def is_wildcard_entry(entry: str) -> bool:
    """``*.example.com`` covers example.com and every subdomain."""
    return entry.startswith("*.")


def candidates(name: str) -> list[str]:
    """Vetted entries that may cover ``name``, most specific first: n, *.n, then each ancestor a, *.a."""
    labels = name.split(".")
    out: list[str] = []
    if labels[0] == "*":  # a wildcard query name: itself, then as its parent
        out.append(name)
        labels = labels[1:]
    for i in range(len(labels)):
        ancestor = ".".join(labels[i:])
        for entry in (ancestor, "*." + ancestor):
            if entry not in out:
                out.append(entry)
    return out


def effective_decision(name: str, vetted: dict[str, str], verdict_label: str | None) -> str:
    """The decision for a normalized name.

    ``vetted`` maps candidate entries to their action (missing entries absent);
    ``verdict_label`` is the label of the exact name's model verdict, or None.
    (1) an allow that covers the name wins: the exact entry or a wildcard at any
    level (a plain ``allow example.com`` does not cover subdomains); (2) else the
    most specific block/honeypot entry, the plain entry before the wildcard at the
    same level; (3) else the model verdict; (4) else unknown.
    """
    if vetted:
        cands = candidates(name)
        exact = cands[0]
        for entry in cands:
            if vetted.get(entry) == "allow" and (entry == exact or is_wildcard_entry(entry)):
                return "allow"
        for entry in cands:
            action = vetted.get(entry)
            if action == "block" or action == "honeypot":
                return action
    return verdict_label or "unknown"
