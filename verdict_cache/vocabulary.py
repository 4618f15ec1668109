"""The words of the decision, defined once: labels, why a name has its label, why it was not scored.

Every component (worker, CLI, Elasticsearch documents, dashboard) names a
decision with these strings; SPEC.md §1.5 lists them for people, and the Go
plugin never sees ``unscored`` (an unscored name has no verdict in Redis).
"""

from __future__ import annotations

from typing import Literal

Label = Literal["malicious", "uncertain", "benign", "unscored"]
LABELS: tuple[Label, ...] = ("malicious", "uncertain", "benign", "unscored")
"""What the offline decision (``dnsentinel score``) and the worker say about a name."""

VERDICT_LABELS: tuple[Label, ...] = ("malicious", "uncertain", "benign")
"""The labels that become a verdict in Redis; ``unscored`` names get none (and no vetting)."""

FLAGGED_LABELS: tuple[Label, ...] = ("malicious", "uncertain")
"""The labels an analyst looks at (and a family guess is made for)."""

Reason = Literal["model", "prior", "unscored"]
REASONS: tuple[Reason, ...] = ("model", "prior", "unscored")
"""Which layer decided: the model's calibrated score, the popularity prior, or no judgement."""

UnscoredReason = Literal["not_hostname", "reverse", "bare", "service", "special_use", "ip", "no_public_suffix"]
UNSCORED_REASONS: tuple[UnscoredReason, ...] = (
    "not_hostname",
    "reverse",
    "bare",
    "service",
    "special_use",
    "ip",
    "no_public_suffix",
)
"""Why a name is not a public DNS name the model may judge (see :func:`names.unscored_reason`)."""
