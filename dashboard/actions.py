"""Every change of state the dashboard and ``dnsentinel users`` make: check, do, audit.

Each function first calls :func:`access.require` (a refusal is itself audited as
``denied``), then does the change through the module that owns it (vetting, training,
the quality gate, the registry, the user store), then writes one audit entry per change
through ``store.write_audit``. Pages hide what a role may not use, but this is the check
that counts: a page left open while its user is demoted gets a refusal here.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from dnsentinel.dashboard import audit, model_reports, training, vetting
from dnsentinel.dashboard.access import Actor, Forbidden, require
from dnsentinel.dashboard.auth import Accounts, LoginResult
from dnsentinel.dashboard.users import User
from dnsentinel.settings import TrainingCap


def _require(store: Any, actor: Actor, action: str) -> None:
    try:
        require(actor, action)
    except Forbidden as exc:
        with contextlib.suppress(Exception):  # the refusal stands even when its audit cannot be written
            store.write_audit([audit.by(actor, "denied", action, note=str(exc))])
        raise


class _Stamped:
    """The store as vetting sees it: its audit entries get the action, role and address."""

    def __init__(self, store: Any, actor: Actor, action: str) -> None:
        self._store = store
        self._extra = {"action": action, "role": actor.role, "address": actor.address}

    def write_audit(self, entries: list[dict]) -> None:
        self._store.write_audit([{**e, **self._extra} for e in entries])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


# -- analysts ---------------------------------------------------------------------------
def vet(actor: Actor, cache: Any, store: Any, names: list[str], decision: str, note: str | None) -> vetting.BulkAction:
    _require(store, actor, "vet")
    return vetting.apply(cache, _Stamped(store, actor, "vet"), names, decision, actor.name, note)


def undo_vet(actor: Actor, cache: Any, store: Any, last: vetting.BulkAction) -> dict[str, str]:
    _require(store, actor, "vet")
    return vetting.undo(cache, _Stamped(store, actor, "vet_undo"), last, actor.name)


def set_alert_status(actor: Actor, store: Any, alert_id: str, status: str, note: str | None = None) -> str:
    """Acknowledge, close or reopen a behaviour alert; returns the status it had."""
    from dnsentinel.dashboard import alerts
    from dnsentinel.verdict_cache.es_schema import index_name

    _require(store, actor, "alert_status")
    before = alerts.set_status(store.es, index_name("alerts", prefix=store.prefix), alert_id, status, actor.name,
                               note)
    store.write_audit([audit.by(actor, "alert_status", alert_id, before=before, after=status, note=note or "")])
    return before


# -- admins: models ---------------------------------------------------------------------
def start_training(actor: Actor, store: Any, registry: Path, request: training.JobRequest,
                   caps: dict[str, TrainingCap]) -> training.Job:
    _require(store, actor, "train")
    cap = caps.get(actor.role)
    if cap is None:
        raise ValueError(f"the {actor.role} role has no training cap (dashboard.training_caps), so it starts no runs")
    job = training.start(registry, request, actor.name, cap=cap)
    store.write_audit([audit.by(actor, "train", f"model:{job.name}", after="training", note=" ".join(job.argv[3:]))])
    return job


def promote(actor: Actor, store: Any, gate: Any, version: str, current: str | None, force: bool) -> None:
    """Through the quality gate (``gate.GateRefused`` propagates: nothing changed, nothing audited)."""
    _require(store, actor, "promote")
    gate.promote(version, force=force)
    note = "promote (forced past the quality gate)" if force else "promote"
    store.write_audit([audit.by(actor, "promote", "model:current", before=current or "none", after=version, note=note)])


def rollback(actor: Actor, store: Any, registry: Any, current: str | None) -> str:
    _require(store, actor, "rollback")
    restored = registry.rollback()
    after = str(model_reports.version_of(restored) if restored else registry.current_version())
    store.write_audit([audit.by(actor, "rollback", "model:current", before=current or "none", after=after, note="rollback")])
    return after


# -- admins: users ----------------------------------------------------------------------
def add_user(actor: Actor, store: Any, accounts: Accounts, name: str, password: str, role: str) -> User:
    _require(store, actor, "manage_users")
    user = accounts.users.add(name, password, role, actor.name)
    store.write_audit([audit.by(actor, "user_add", f"user:{user.name}", after=user.role)])
    return user


def remove_user(actor: Actor, store: Any, accounts: Accounts, name: str) -> User:
    """Remove a user and end every session of theirs."""
    _require(store, actor, "manage_users")
    user = accounts.users.remove(name, actor.name)
    ended = accounts.sessions.close_all(user.name)
    store.write_audit([audit.by(actor, "user_remove", f"user:{user.name}", before=user.role,
                                note=f"{ended} session(s) ended")])
    return user


def set_password(actor: Actor, store: Any, accounts: Accounts, name: str, password: str) -> User:
    """A new password ends every session opened with the old one."""
    _require(store, actor, "manage_users")
    _, after = accounts.users.set_password(name, password, actor.name)
    ended = accounts.sessions.close_all(after.name)
    store.write_audit([audit.by(actor, "user_passwd", f"user:{after.name}", before=after.role, after=after.role,
                                note=f"password changed; {ended} session(s) ended")])
    return after


def set_role(actor: Actor, store: Any, accounts: Accounts, name: str, role: str) -> User:
    """Applies at the user's next page run (roles are re-read on every run)."""
    _require(store, actor, "manage_users")
    before, after = accounts.users.set_role(name, role, actor.name)
    store.write_audit([audit.by(actor, "user_role", f"user:{after.name}", before=before.role, after=after.role)])
    return after


# -- everyone ---------------------------------------------------------------------------
def login(store: Any, accounts: Accounts, name: str, password: str, address: str,
          listen_address: str | None) -> tuple[LoginResult, str]:
    """Check a login; on success open a session and return its token (else ``""``).

    Failures and the lockouts they trip are audited; attempts while already locked are
    not (a flood of them would flood the audit). A session whose audit entry cannot be
    written is closed again: no login goes unrecorded.
    """
    name = name.strip()[:64]
    result = accounts.authenticate(name, password, address, listen_address)
    if result.outcome == "ok" and result.user is not None:
        token, _ = accounts.sessions.open(result.user.name, address)
        try:
            store.write_audit([audit.entry("login", f"user:{name}", name, address, result.user.role,
                                           after="session", note=result.user.source)])
        except Exception:
            accounts.sessions.close(token)
            raise
        return result, token
    entries = [audit.entry("login_failed", f"user:{name}", name, address)] if result.outcome == "wrong" or result.tripped else []
    entries += [audit.entry("lockout", f"user:{name}" if kind == "user" else f"address:{address}", name, address,
                            note=f"locked for {result.retry_in_s} s after repeated failures") for kind in result.tripped]
    store.write_audit(entries)
    return result, ""


def logout(actor: Actor, store: Any, accounts: Accounts, token: str, everywhere: bool = False) -> int:
    """End this session (on every tab and instance), or with ``everywhere`` all of the user's."""
    ended = accounts.sessions.close_all(actor.name) if everywhere else int(accounts.sessions.close(token) is not None)
    store.write_audit([audit.by(actor, "logout", f"user:{actor.name}", before="session",
                                note=f"{ended} session(s) ended" + (" (everywhere)" if everywhere else ""))])
    return ended
