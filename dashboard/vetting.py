"""Bulk vetting decisions and their undo.

A decision goes to Redis through ``VerdictCache.set_vetted`` (the DNS path
sees it within a second, SPEC §3) and to the audit index (who, when, before,
after). The previous records are kept so the last bulk action can be undone
exactly, including names that had no vetted record before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from dnsentinel.verdict_cache.vocabulary import VETTED_ACTIONS as ACTIONS

MAX_NOTE = 512


class VettedStore(Protocol):
    def set_vetted(self, name: str, action: str, by: str, note: str | None = None) -> Any: ...
    def remove_vetted(self, name: str, by: str) -> Any: ...


@dataclass
class BulkAction:
    """What one bulk action changed, enough to put every name back."""

    action: str
    by: str
    note: str | None
    before: dict[str, dict | None] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def _record(rec: Any) -> dict | None:
    """A VettedRecord (dataclass or dict) as a plain dict."""
    if rec is None:
        return None
    if isinstance(rec, dict):
        return dict(rec)
    return {k: getattr(rec, k, None) for k in ("action", "by", "at", "note")}


def _audit(name: str, by: str, before: dict | None, after: str, note: str | None) -> dict:
    return {"who": by, "name": name, "before": (before or {}).get("action") or "none",
            "after": after, "note": note or ""}


def apply(cache: VettedStore, store: Any, names: list[str], action: str, by: str, note: str | None = None) -> BulkAction:
    """Vet ``names``; a name that fails is reported in ``failed`` and the others go on."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
    note = (note or "").strip() or None
    if note and len(note) > MAX_NOTE:
        raise ValueError(f"note is {len(note)} characters; at most {MAX_NOTE}")
    result = BulkAction(action, by, note)
    for name in dict.fromkeys(names):
        try:
            result.before[name] = _record(cache.set_vetted(name, action, by, note))
        except Exception as exc:  # InvalidName, Redis errors: report per name and go on
            result.failed[name] = str(exc) or type(exc).__name__
    done = list(result.before)
    store.write_audit([_audit(n, by, result.before[n], action, note) for n in done])
    store.mark_vetting(done, action)
    return result


def undo(cache: VettedStore, store: Any, last: BulkAction, by: str) -> dict[str, str]:
    """Restore every name of ``last`` to its previous vetted state; returns failures by name."""
    failed: dict[str, str] = {}
    entries = []
    for name, before in last.before.items():
        try:
            if before is None:
                cache.remove_vetted(name, by)
            else:
                cache.set_vetted(name, before["action"], by, before.get("note"))
        except Exception as exc:
            failed[name] = str(exc) or type(exc).__name__
            continue
        entries.append({"who": by, "name": name, "before": last.action,
                        "after": (before or {}).get("action") or "none", "note": f"undo of {last.by}'s {last.action}"})
    store.write_audit(entries)
    store.mark_vetting([e["name"] for e in entries if e["after"] == "none"], "pending")
    return failed
