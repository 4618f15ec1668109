"""The words of the contract, defined once: decisions, labels, block actions, sources, reasons.

Every Python component imports these names instead of spelling the strings;
``tests/verdict_cache/make_vectors.py`` writes them into ``vectors.json``
(section ``vocabulary``) and the Go tests check the plugin's constants against
that section, so a word added or renamed here fails the Go build's tests until
the plugin follows. SPEC.md §1.4, §1.5 and §2.2 list them for people.
"""

from __future__ import annotations

from typing import Literal

# --- what the model and the offline decision say about a name -----------------------------

Label = Literal["malicious", "uncertain", "benign", "unscored"]
LABELS: tuple[Label, ...] = ("malicious", "uncertain", "benign", "unscored")
"""What the offline decision (``dnsentinel score``) and the worker say about a name."""

VerdictLabel = Literal["malicious", "uncertain", "benign"]
VERDICT_LABELS: tuple[VerdictLabel, ...] = ("malicious", "uncertain", "benign")
"""The labels that become a verdict in Redis; ``unscored`` names get none (and no vetting)."""

FLAGGED_LABELS: tuple[VerdictLabel, ...] = ("malicious", "uncertain")
"""The labels an analyst looks at (and a family guess is made for)."""

TRUTH_CLASSES: tuple[VerdictLabel, ...] = ("benign", "malicious")
"""The ground-truth classes of labelled data, in the order of their 0/1 training targets."""

Reason = Literal["model", "prior", "unscored", "alert"]
REASONS: tuple[Reason, ...] = ("model", "prior", "unscored", "alert")
"""Which layer decided: the model's calibrated score, the popularity prior, no judgement, or a
behaviour alert that turned an uncertain name malicious (a DGA host's evidence)."""

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

# --- what an analyst decides (vetted lists, SPEC §1.3) ------------------------------------

VettedAction = Literal["allow", "block", "honeypot"]
VETTED_ACTIONS: tuple[VettedAction, ...] = ("allow", "block", "honeypot")
"""What an analyst can put on a name; it wins over any model verdict (SPEC §1.3)."""

# --- what the DNS path decided and did (SPEC §1.4, §2.2) ----------------------------------

Decision = Literal["allow", "block", "honeypot", "malicious", "uncertain", "benign", "unknown"]
DECISIONS: tuple[Decision, ...] = (*VETTED_ACTIONS, *VERDICT_LABELS, "unknown")
"""The effective decision for a name: a vetted action, else a verdict label, else ``unknown``."""

BLOCKING_DECISIONS: tuple[Decision, ...] = ("block", "honeypot", "malicious")
"""The decisions on which the plugin answers with its block action (unless the client is exempt)."""

EXCLUDED = "excluded"
"""The plugin's metric label for a query it did not look up (outside its zones); never in an event."""

Action = Literal["pass", "nxdomain", "nodata", "refused", "null", "sinkhole", "honeypot"]
ACTIONS: tuple[Action, ...] = ("pass", "nxdomain", "nodata", "refused", "null", "sinkhole", "honeypot")
"""What the plugin did with a query: ``pass`` (fell through) or how it answered a block."""

BLOCKING_ACTIONS: tuple[Action, ...] = tuple(a for a in ACTIONS if a != "pass")
"""The actions that mean the client did not get the real answer."""

RpzAction = Literal["nxdomain", "sinkhole"]
RPZ_ACTIONS: tuple[RpzAction, ...] = ("nxdomain", "sinkhole")
"""The block actions an RPZ export can express for malicious names (``CNAME .`` or an address)."""

# --- where an event came from and how it travelled (SPEC §2.2) ----------------------------

Source = Literal["live", "replay", "loadgen"]
SOURCES: tuple[Source, ...] = ("live", "replay", "loadgen")
"""``live``: the plugin; ``replay``: a historical log; ``loadgen``: synthetic load."""

Proto = Literal["udp", "tcp"]
PROTOS: tuple[Proto, ...] = ("udp", "tcp")


# --- behaviour detections (SPEC §2.5) -------------------------------------------------------

AlertKind = Literal["dga_host", "tunnel", "ip_echo", "dnsbl_lookup", "mx_burst"]
ALERT_KINDS: tuple[AlertKind, ...] = ("dga_host", "tunnel", "ip_echo", "dnsbl_lookup", "mx_burst")
"""``dga_host``: a client resolving many random or non-existent names; ``tunnel``: many unique
encoded labels under one domain; the others are the shipped behaviour rules (an operator's
rules file may add kinds of its own, spelled like these)."""

Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high", "critical")

AlertStatus = Literal["open", "acknowledged", "closed"]
ALERT_STATUSES: tuple[AlertStatus, ...] = ("open", "acknowledged", "closed")


def as_dict() -> dict[str, list[str]]:
    """Every word list, for ``vectors.json`` (the Go side checks its constants against it)."""
    return {
        "labels": list(LABELS),
        "verdict_labels": list(VERDICT_LABELS),
        "flagged_labels": list(FLAGGED_LABELS),
        "truth_classes": list(TRUTH_CLASSES),
        "reasons": list(REASONS),
        "unscored_reasons": list(UNSCORED_REASONS),
        "vetted_actions": list(VETTED_ACTIONS),
        "decisions": list(DECISIONS),
        "blocking_decisions": list(BLOCKING_DECISIONS),
        "metric_decisions": [*DECISIONS, EXCLUDED],
        "actions": list(ACTIONS),
        "blocking_actions": list(BLOCKING_ACTIONS),
        "rpz_actions": list(RPZ_ACTIONS),
        "sources": list(SOURCES),
        "protos": list(PROTOS),
        "alert_kinds": list(ALERT_KINDS),
        "severities": list(SEVERITIES),
        "alert_statuses": list(ALERT_STATUSES),
    }
