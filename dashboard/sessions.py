"""Login sessions that survive a browser reload and end everywhere on logout.

A session is a random id with a server-side record in Redis (``session:<id>``, expiring
with the session) and a cookie holding ``<id>.<expiry>.<HMAC>``. The signature lets a
forged or altered cookie be refused without a lookup; the record is what makes a logout
(or a removed user, or a new password) end the session on every tab and every dashboard
instance at once, which a signed cookie alone could not do.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

from dnsentinel.settings import Role, Settings
from dnsentinel.verdict_cache.keys import dashboard_key

COOKIE = "dnsentinel_session"


@dataclass(frozen=True)
class Session:
    """A logged-in user as the pages see it; the role is re-read from the user store each run."""

    user: str
    expires_at: float
    role: Role = "viewer"
    token: str = ""

    def remaining_s(self, now: float | None = None) -> float:
        return self.expires_at - (time.time() if now is None else now)


def _sign(secret: bytes, payload: str) -> str:
    return hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()


def _split(token: str) -> tuple[str, int, str] | None:
    parts = token.split(".")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1]), parts[2]


class SessionStore:
    """Opens, resolves and closes sessions (SPEC §3 ``<p>:v1:dashboard:session:<id>``)."""

    def __init__(self, client: Any, prefix: str, secret: bytes | Callable[[], bytes], ttl_s: int) -> None:
        """``secret`` may be a function, read on first use (``dnsentinel users`` never needs it)."""
        self.client, self.prefix, self.ttl_s = client, prefix, ttl_s
        self._secret = secret

    @cached_property
    def secret(self) -> bytes:
        secret = self._secret() if callable(self._secret) else self._secret
        if len(secret) < 16:
            raise ValueError("the session secret must be at least 16 bytes")
        return secret

    def _record_key(self, sid: str) -> str:
        return dashboard_key(self.prefix, "session", sid)

    def _user_key(self, user: str) -> str:
        return dashboard_key(self.prefix, "sessions", user)

    def open(self, user: str, address: str, now: float | None = None) -> tuple[str, int]:
        """A new session: ``(token, expires at unix seconds)``."""
        now = time.time() if now is None else now
        sid, expires = secrets.token_urlsafe(24), int(now + self.ttl_s)
        record = json.dumps({"user": user, "address": address, "created": int(now), "expires": expires})
        pipe = self.client.pipeline()
        pipe.set(self._record_key(sid), record, ex=self.ttl_s)
        pipe.sadd(self._user_key(user), sid)
        pipe.expire(self._user_key(user), self.ttl_s)
        pipe.execute()
        payload = f"{sid}.{expires}"
        return f"{payload}.{_sign(self.secret, payload)}", expires

    def _valid(self, token: str, now: float | None) -> tuple[str, int] | None:
        parts = _split(token or "")
        if parts is None:
            return None
        sid, expires, sig = parts
        if not hmac.compare_digest(sig, _sign(self.secret, f"{sid}.{expires}")):
            return None
        if expires <= (time.time() if now is None else now):
            return None
        return sid, expires

    def resolve(self, token: str, now: float | None = None) -> tuple[str, int] | None:
        """``(user, expires at)`` of a live session, or None (bad signature, expired, logged out)."""
        valid = self._valid(token, now)
        if valid is None:
            return None
        raw = self.client.get(self._record_key(valid[0]))
        if not raw:
            return None
        return json.loads(raw)["user"], valid[1]

    def close(self, token: str) -> str | None:
        """End one session everywhere; returns its user (None when it was not live)."""
        valid = self._valid(token, None)
        if valid is None:
            return None
        raw = self.client.get(self._record_key(valid[0]))
        self.client.delete(self._record_key(valid[0]))
        if not raw:
            return None
        user = json.loads(raw)["user"]
        self.client.srem(self._user_key(user), valid[0])
        return user

    def close_all(self, user: str) -> int:
        """End every session of ``user`` (removed, new password, or 'log out everywhere')."""
        sids = [s.decode() if isinstance(s, bytes) else s for s in self.client.smembers(self._user_key(user))]
        ended = sum(int(self.client.delete(self._record_key(sid))) for sid in sids)  # some may have expired
        self.client.delete(self._user_key(user))
        return ended


def load_secret(settings: Settings) -> bytes:
    """``dashboard.session_secret``, or the one generated once into the state dir (mode 0600)."""
    configured = settings.dashboard.session_secret
    if configured is not None:
        return configured.get_secret_value().encode()
    path = settings.stack.state_dir / "dashboard" / "session.key"
    if not path.exists():
        _create_secret(path)
    return path.read_text().strip().encode()


def _create_secret(path: Path) -> None:
    """Write a fresh key atomically; when another process wins the race, its key is kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
