"""Logging in: bcrypt-checked users, the demo login's narrow rule, and failed-login limits.

The demo login (``analyst``, password in the README) exists only while no user is
configured **and** the dashboard listens on a loopback address, so a fresh local stack
is usable and an exposed one never is. It has every right (it is the only account).

Failed logins are counted per user name and per client address in Redis (shared by all
instances) over ``login_failure_window_s``; the failure that reaches the limit locks that
name or address for ``login_lockout_s``. While locked, not even the right password opens
a session (no oracle for a guesser); a successful login clears the name's count.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, MutableMapping

import bcrypt

from dnsentinel.dashboard.access import is_loopback
from dnsentinel.dashboard.sessions import Session, SessionStore, load_secret
from dnsentinel.dashboard.users import DEFAULT_ROUNDS, User, UserStore, password_matches
from dnsentinel.settings import DashboardSettings, Settings
from dnsentinel.verdict_cache.keys import dashboard_key

DEMO_USER = "analyst"
DEMO_PASSWORD = "dnsentinel"
SESSION_KEY = "dnsentinel_auth"
"""Where the page run's resolved :class:`Session` sits in ``st.session_state``."""


@lru_cache(maxsize=1)
def _demo_hash() -> bytes:
    return bcrypt.hashpw(DEMO_PASSWORD.encode(), bcrypt.gensalt(rounds=10))


@lru_cache(maxsize=1)
def _dummy_hash() -> bytes:
    """Checked against when the name is unknown, at a real user's cost (no timing oracle)."""
    return bcrypt.hashpw(b"no such user", bcrypt.gensalt(rounds=DEFAULT_ROUNDS))


def demo_user() -> User:
    return User(DEMO_USER, "admin", _demo_hash().decode(), source="demo")


class LoginLimiter:
    """Failed-login counters and lockouts per user name and per address (SPEC §3 ``fail:…``, ``lock:…``)."""

    def __init__(self, client: Any, prefix: str, cfg: DashboardSettings) -> None:
        self.client, self.prefix, self.cfg = client, prefix, cfg

    def _subjects(self, user: str, address: str) -> list[tuple[str, str, int]]:
        return [("user", user[:128], self.cfg.login_max_failures),
                ("addr", address, self.cfg.login_max_failures_per_address)]

    def locked_for(self, user: str, address: str) -> int:
        """Seconds until the longer of the name's and the address's lockouts ends (0: not locked)."""
        ttls = [self.client.ttl(dashboard_key(self.prefix, "lock", kind, ident))
                for kind, ident, _ in self._subjects(user, address)]
        return max([0, *(t for t in ttls if t and t > 0)])

    def failed(self, user: str, address: str) -> list[str]:
        """Count one failure; returns what it locked out (``user``, ``addr``), usually nothing."""
        tripped = []
        for kind, ident, limit in self._subjects(user, address):
            count_key = dashboard_key(self.prefix, "fail", kind, ident)
            self.client.set(count_key, 0, ex=self.cfg.login_failure_window_s, nx=True)
            if int(self.client.incr(count_key)) >= limit:
                self.client.set(dashboard_key(self.prefix, "lock", kind, ident), 1, ex=self.cfg.login_lockout_s)
                self.client.delete(count_key)
                tripped.append(kind)
        return tripped

    def succeeded(self, user: str) -> None:
        self.client.delete(dashboard_key(self.prefix, "fail", "user", user[:128]))


@dataclass(frozen=True)
class LoginResult:
    outcome: Literal["ok", "wrong", "locked"]
    user: User | None = None
    retry_in_s: int = 0
    tripped: tuple[str, ...] = ()
    """``user``/``addr`` when this very failure caused a lockout (audited once as ``lockout``)."""


@dataclass
class Accounts:
    """Users, login limits and sessions: everything about who is logged in, over one Redis client."""

    users: UserStore
    limiter: LoginLimiter
    sessions: SessionStore

    @classmethod
    def from_settings(cls, settings: Settings, client: Any | None = None) -> "Accounts":
        if client is None:
            from dnsentinel.redis_client import sync_client

            client = sync_client(settings.redis, decode_responses=True)
        d, prefix = settings.dashboard, settings.redis.key_prefix
        return cls(UserStore(client, prefix, d.users), LoginLimiter(client, prefix, d),
                   SessionStore(client, prefix, lambda: load_secret(settings), d.session_ttl_s))

    def demo_available(self, listen_address: str | None) -> bool:
        """The demo login exists only with no user configured and a loopback listen address."""
        return is_loopback(listen_address) and not self.users.any()

    def lookup(self, name: str, listen_address: str | None) -> User | None:
        """The account ``name`` logs in to now (the demo one only while it exists)."""
        if name == DEMO_USER and self.demo_available(listen_address):
            return demo_user()
        return self.users.get(name)

    def authenticate(self, name: str, password: str, address: str, listen_address: str | None) -> LoginResult:
        """Check a login form; costs one bcrypt check whether or not the name exists."""
        name = name.strip()
        wait = self.limiter.locked_for(name, address)
        if wait:
            return LoginResult("locked", retry_in_s=wait)
        user = self.lookup(name, listen_address) if name else None
        if password_matches(user.hash if user else _dummy_hash(), password) and user is not None:
            self.limiter.succeeded(name)
            return LoginResult("ok", user)
        tripped = tuple(self.limiter.failed(name, address))
        return LoginResult("locked" if tripped else "wrong", retry_in_s=self.limiter.cfg.login_lockout_s if tripped else 0,
                           tripped=tripped)


def current(state: MutableMapping[str, Any], now: float | None = None) -> Session | None:
    """The session this page run resolved (``app.py`` puts it there), or None once it expired."""
    session = state.get(SESSION_KEY)
    if not isinstance(session, Session):
        return None
    if session.remaining_s(now) <= 0:
        state.pop(SESSION_KEY, None)
        return None
    return session
