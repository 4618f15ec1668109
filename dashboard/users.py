"""Dashboard users: names, bcrypt hashes and roles in one Redis hash.

Why Redis and not the settings file: every dashboard instance already reads Redis, so a
user added, demoted or removed with ``dnsentinel users`` applies on every instance at the
next page run, with no file to copy and no restart (sessions re-read the role each run).

``dashboard.users`` from the settings (name -> bcrypt hash) stays supported as
*bootstrap admins*: the accounts a deployment is configured with before anyone runs
``dnsentinel users``, e.g. from a secret file. They are admins (as every configured user
was before roles existed), are listed with source ``settings``, and can only be changed
where they are defined. A Redis user of the same name takes precedence.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import bcrypt

from dnsentinel.dashboard.access import ROLES
from dnsentinel.errors import DnsentinelError
from dnsentinel.settings import Role
from dnsentinel.verdict_cache.keys import dashboard_key

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 12
MAX_PASSWORD_BYTES = 72
"""bcrypt reads only this many bytes; a longer password would be silently cut, so it is refused."""
DEFAULT_ROUNDS = 12


class UserError(DnsentinelError):
    """A user command that cannot be done as asked (bad name, weak password, no such user …)."""


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    hash: str = field(repr=False)
    created_at: int = 0
    created_by: str = ""
    changed_at: int = 0
    changed_by: str = ""
    source: str = "redis"
    """``redis`` (managed with ``dnsentinel users``) or ``settings`` (a bootstrap admin)."""

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if k not in ("name", "source")})

    @classmethod
    def from_json(cls, name: str, text: str) -> "User":
        return cls(name=name, **{k: v for k, v in json.loads(text).items() if k in _FIELDS})

    def public(self) -> dict[str, Any]:
        """Everything but the hash, times as ISO 8601 UTC (for listings)."""
        out = {k: v for k, v in asdict(self).items() if k != "hash"}
        for key in ("created_at", "changed_at"):
            out[key] = _iso(out[key])
        return out


_FIELDS = {"role", "hash", "created_at", "created_by", "changed_at", "changed_by"}


def check_name(name: str) -> str:
    name = name.strip()
    if not _NAME.match(name):
        raise UserError(f"user name {name[:80]!r}: use 1-64 letters, digits, '.', '_', '@' or '-', "
                        "starting with a letter or digit")
    return name


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise UserError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    return role  # type: ignore[return-value]


def hash_password(password: str, rounds: int = DEFAULT_ROUNDS) -> str:
    """A bcrypt hash, after refusing passwords too short or too long for bcrypt."""
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password has {len(password)} characters; use at least {MIN_PASSWORD}")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise UserError(f"the password is over {MAX_PASSWORD_BYTES} bytes, bcrypt's limit; use a shorter one")
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()


def password_matches(hashed: str | bytes, password: str) -> bool:
    """bcrypt check; a malformed hash or an over-long password is simply no match."""
    try:
        return bcrypt.checkpw(password.encode(), hashed.encode() if isinstance(hashed, str) else hashed)
    except ValueError:
        return False


class UserStore:
    """The users hash (SPEC §3 ``<p>:v1:dashboard:users``) plus the bootstrap admins."""

    def __init__(self, client: Any, prefix: str, bootstrap: dict[str, str] | None = None,
                 rounds: int = DEFAULT_ROUNDS) -> None:
        self.client = client
        self.key = dashboard_key(prefix, "users")
        self.bootstrap = {name: User(name, "admin", hashed, source="settings", created_by="settings")
                          for name, hashed in (bootstrap or {}).items()}
        self.rounds = rounds

    def get(self, name: str) -> User | None:
        raw = self.client.hget(self.key, name)
        return User.from_json(name, _text(raw)) if raw else self.bootstrap.get(name)

    def all(self) -> list[User]:
        stored = {_text(n): User.from_json(_text(n), _text(v)) for n, v in self.client.hgetall(self.key).items()}
        return sorted({**self.bootstrap, **stored}.values(), key=lambda u: u.name)

    def any(self) -> bool:
        """Whether any user is configured (then the demo login no longer exists)."""
        return bool(self.bootstrap) or bool(self.client.hlen(self.key))

    def add(self, name: str, password: str, role: str, by: str) -> User:
        name, role = check_name(name), check_role(role)
        now = int(time.time())
        user = User(name, role, hash_password(password, self.rounds), now, by, now, by)
        if not self.client.hsetnx(self.key, name, user.to_json()):
            raise UserError(f"user {name!r} already exists; change it with `users passwd` or `users role`")
        return user

    def remove(self, name: str, by: str) -> User:
        user = self._stored(name)
        self.client.hdel(self.key, name)
        return user

    def set_password(self, name: str, password: str, by: str) -> tuple[User, User]:
        return self._change(name, by, hash=hash_password(password, self.rounds))

    def set_role(self, name: str, role: str, by: str) -> tuple[User, User]:
        return self._change(name, by, role=check_role(role))

    def _change(self, name: str, by: str, **changes: Any) -> tuple[User, User]:
        before = self._stored(name)
        after = replace(before, changed_at=int(time.time()), changed_by=by, **changes)
        self.client.hset(self.key, name, after.to_json())
        return before, after

    def _stored(self, name: str) -> User:
        """A Redis user (the only kind the CLI may change), or a UserError that says why not."""
        user = self.get(name)
        if user is None:
            raise UserError(f"no user {name!r}; `dnsentinel users list` shows them")
        if user.source == "settings":
            raise UserError(f"{name!r} is a bootstrap admin from the settings (dashboard.users); change it there")
        return user


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds") if seconds else ""


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
