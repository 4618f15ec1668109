"""Who may do what: the roles, the one permission table, and the check every action makes.

Hiding a button is a courtesy; the check is :func:`require`, which every function in
``actions.py`` (and so every page and the ``users`` CLI) calls before it changes anything.
A role is read from the user store on every page run, so a role taken away in Redis
applies at the next click, on every dashboard instance.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import get_args

from dnsentinel.errors import DnsentinelError
from dnsentinel.settings import Role

ROLES: tuple[Role, ...] = get_args(Role)
"""Least to most: each role may do everything the ones before it may."""

PERMISSIONS: dict[str, Role] = {
    "read": "viewer",            # every page that only shows
    "vet": "analyst",            # vetting decisions and their undo
    "alert_status": "analyst",   # acknowledging alerts (the behaviour detections of issue 15)
    "train": "admin",
    "promote": "admin",
    "rollback": "admin",
    "manage_users": "admin",
    "read_audit": "admin",
}
"""Action -> the least role allowed to do it."""


class Forbidden(DnsentinelError):
    """An actor tried an action above their role (shown to them, and audited as ``denied``)."""

    def __init__(self, actor: "Actor", action: str) -> None:
        self.actor, self.action = actor, action
        super().__init__(f"{actor.name} ({actor.role}) may not {action.replace('_', ' ')}: "
                         f"that needs the {PERMISSIONS[action]} role")


@dataclass(frozen=True)
class Actor:
    """Who does something, in which role, and from where (all three go into the audit)."""

    name: str
    role: Role
    address: str
    """The client's address as the dashboard saw it, or the CLI's host name."""

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role {self.role!r}: expected one of {', '.join(ROLES)}")


def rank(role: str) -> int:
    """0 for viewer … 2 for admin; an unknown role ranks below every real one."""
    return ROLES.index(role) if role in ROLES else -1  # type: ignore[arg-type]


def allows(role: str, action: str) -> bool:
    """Whether ``role`` may do ``action`` (an action missing from the table is a bug: KeyError)."""
    return rank(role) >= rank(PERMISSIONS[action])


def require(actor: Actor, action: str) -> None:
    """Raise :class:`Forbidden` unless ``actor``'s role allows ``action``."""
    if not allows(actor.role, action):
        raise Forbidden(actor, action)


def is_loopback(address: str | None) -> bool:
    """Whether a listen address reaches only this machine (``""``/None: every interface, so no)."""
    if not address:
        return False
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:
        return False
