"""Analyst login: bcrypt-checked users from settings, sessions that expire.

Users come from ``dashboard.users`` (name -> bcrypt hash). When none are
configured, one demo user ``analyst`` with password ``dnsentinel`` exists, so a
fresh local stack is usable; configure real users before exposing the app.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, MutableMapping

import bcrypt

DEMO_USER = "analyst"
DEMO_PASSWORD = "dnsentinel"
_SESSION_KEY = "dnsentinel_auth"


@dataclass(frozen=True)
class Session:
    user: str
    expires_at: float

    def remaining_s(self, now: float | None = None) -> float:
        return self.expires_at - (time.time() if now is None else now)


@lru_cache(maxsize=1)
def _demo_hash() -> bytes:
    return bcrypt.hashpw(DEMO_PASSWORD.encode(), bcrypt.gensalt(rounds=10))


def users(configured: dict[str, str]) -> dict[str, bytes]:
    """Name -> bcrypt hash; the demo user only when nothing is configured."""
    if configured:
        return {name: hashed.encode() for name, hashed in configured.items()}
    return {DEMO_USER: _demo_hash()}


def check_password(configured: dict[str, str], user: str, password: str) -> bool:
    """Constant-time-ish check; an unknown user still costs one bcrypt round (no user probing)."""
    known = users(configured)
    hashed = known.get(user)
    try:
        ok = bcrypt.checkpw(password.encode(), hashed or _demo_hash())
    except ValueError:  # a malformed hash in the config
        return False
    return ok and hashed is not None


def login(state: MutableMapping[str, Any], configured: dict[str, str], user: str, password: str, ttl_s: int) -> bool:
    user = user.strip()
    if not user or not check_password(configured, user, password):
        return False
    state[_SESSION_KEY] = Session(user, time.time() + ttl_s)
    return True


def logout(state: MutableMapping[str, Any]) -> None:
    state.pop(_SESSION_KEY, None)


def current(state: MutableMapping[str, Any], now: float | None = None) -> Session | None:
    """The live session, or None (an expired one is dropped, forcing a new login)."""
    session = state.get(_SESSION_KEY)
    if not isinstance(session, Session):
        return None
    if session.remaining_s(now) <= 0:
        logout(state)
        return None
    return session
