"""The one way dnsentinel builds Redis clients, and the one start-up check of them.

Every component asks :func:`sync_client` / :func:`async_client`, so one setting decides for all of them between a
single server (``redis.url``) and a Sentinel-managed master (``redis.sentinels``). A Sentinel
client asks the Sentinels for the master on every new connection and drops connections to a
master that became a replica, so the same client object keeps working across a failover.

Clients connect lazily; :func:`check_redis` connects once at start-up and turns what can go
wrong (wrong password, unknown user, untrusted certificate, nothing listening, no such master)
into one line naming the service, the address and the cause, instead of a stack trace later.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dnsentinel.errors import ServiceUnavailable

if TYPE_CHECKING:
    from dnsentinel.settings import RedisSettings

__all__ = ["async_client", "check_redis", "explain", "sync_client"]


def sync_client(r: RedisSettings, **extra: Any) -> Any:
    """A ``redis.Redis``: the Sentinels' current master when ``sentinels`` is set, else ``url``."""
    if r.sentinels:
        from redis.sentinel import Sentinel

        sentinel = Sentinel(r.sentinel_addresses(), sentinel_kwargs=sentinel_kwargs(r), **_data_kwargs(r))
        return sentinel.master_for(r.sentinel_master, **extra)
    import redis

    return redis.Redis.from_url(_url(r), **_url_kwargs(r), **extra)


def async_client(r: RedisSettings, **extra: Any) -> Any:
    """The ``redis.asyncio`` twin of :func:`sync_client` (the worker's changes channel)."""
    if r.sentinels:
        from redis.asyncio.sentinel import Sentinel

        sentinel = Sentinel(r.sentinel_addresses(), sentinel_kwargs=sentinel_kwargs(r), **_data_kwargs(r))
        return sentinel.master_for(r.sentinel_master, **extra)
    import redis.asyncio as aioredis

    return aioredis.Redis.from_url(_url(r), **_url_kwargs(r), **extra)


def sentinel_kwargs(r: RedisSettings) -> dict[str, Any]:
    """How to talk to a Sentinel: its own ACL user, the same timeouts and TLS as the data servers."""
    kwargs: dict[str, Any] = {"socket_timeout": r.socket_timeout_s, "socket_connect_timeout": r.connect_timeout_s}
    if r.sentinel_username:
        kwargs["username"] = r.sentinel_username
    if r.sentinel_password:
        kwargs["password"] = r.sentinel_password.get_secret_value()
    kwargs.update(r.tls_kwargs())
    return kwargs


def _data_kwargs(r: RedisSettings) -> dict[str, Any]:
    """Connection arguments of the master's connections under Sentinel (database from ``url``)."""
    return {**r.client_kwargs(), **r.tls_kwargs(), "db": _db(r.url)}


def _url_kwargs(r: RedisSettings) -> dict[str, Any]:
    # ``from_url`` picks TLS from the scheme (see _url) and refuses ``ssl=`` as an argument.
    return r.client_kwargs()


def _url(r: RedisSettings) -> str:
    """``url``, as ``rediss://`` when ``redis.ssl`` asks for TLS."""
    if r.tls and r.url.lower().startswith("redis://"):
        return "rediss://" + r.url[len("redis://"):]
    return r.url


def _db(url: str) -> int:
    from urllib.parse import urlsplit

    path = urlsplit(url).path.strip("/")
    return int(path) if path.isdigit() else 0


def _address(r: RedisSettings) -> str:
    """``host:port`` of the single server (``url``)."""
    from urllib.parse import urlsplit

    parts = urlsplit(r.url)
    return f"{parts.hostname or '127.0.0.1'}:{parts.port or 6379}"


# -- start-up check ------------------------------------------------------------------------------

def check_redis(r: RedisSettings, client: Any | None = None, service: str = "redis") -> None:
    """Connect and ``PING`` once; raise :class:`ServiceUnavailable` with a one-line cause.

    Under Sentinel the Sentinels are asked first (each one, so a wrong Sentinel password is
    reported as such rather than as "no master found"), then the master they name.
    ``client`` is the client the caller will use (made from ``r`` when not given).
    """
    import redis

    address = _address(r)
    if r.sentinels:
        host, port = _master_address(r)
        address = f"{host}:{port} (master {r.sentinel_master!r})"
    client = client if client is not None else sync_client(r)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise ServiceUnavailable(f"{service} at {address}: {explain(exc, r.username, r)}") from None


def _master_address(r: RedisSettings) -> tuple[str, int]:
    """The master the Sentinels name; errors say which Sentinel failed how."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    failures: dict[str, list[str]] = {}  # cause -> the Sentinels that failed so
    no_master: list[str] = []
    for host, port in r.sentinel_addresses():
        # No retries: a wrong password stays wrong, and the client's own retries would take seconds.
        sentinel = redis.Redis(host, port, retry=Retry(NoBackoff(), 0), **sentinel_kwargs(r))
        try:
            masters = sentinel.sentinel_masters()  # what redis-py's Sentinel client asks, ACL included
        except redis.RedisError as exc:
            failures.setdefault(explain(exc, r.sentinel_username, r, sentinel=True), []).append(f"{host}:{port}")
            continue
        finally:
            sentinel.close()
        state = masters.get(r.sentinel_master)
        if state and not (state.get("is_sdown") or state.get("is_odown")):
            return state["ip"], int(state["port"])
        no_master.append(f"{host}:{port}")
    failed = "; ".join(f"{'sentinels' if len(where) > 1 else 'sentinel'} at {', '.join(where)}: {cause}"
                       for cause, where in failures.items())
    if no_master:
        raise ServiceUnavailable(
            f"redis sentinels at {', '.join(no_master)}: no healthy master named {r.sentinel_master!r} "
            "(check redis.sentinel_master; a failover may be in progress)" + (f"; redis {failed}" if failed else ""))
    raise ServiceUnavailable(f"redis {failed}")


_TLS_CAUSES = (
    (("Hostname mismatch", "IP address mismatch", "doesn't match"),
     "TLS certificate does not name this address (connect by a name in its subjectAltName)"),
    (("certificate has expired",), "TLS certificate has expired"),
    (("CERTIFICATE_VERIFY_FAILED", "unable to get local issuer", "self-signed", "self signed"),
     "TLS certificate not trusted (set redis.ssl_ca_certs to the CA that signed it)"),
    (("WRONG_VERSION_NUMBER", "record layer failure", "packet length too long", "http request"),
     "TLS handshake failed: the server does not speak TLS here (use redis:// and redis.ssl = false)"),
    (("certificate required", "CERTIFICATE_REQUIRED", "tlsv13 alert", "sslv3 alert"),
     "TLS handshake refused by the server (does it want a client certificate? set redis.ssl_certfile/ssl_keyfile)"),
)


def explain(exc: BaseException, user: str | None, r: RedisSettings, sentinel: bool = False) -> str:
    """The cause of a Redis failure in a few words, with the setting to look at."""
    import redis

    text = " ".join(str(exc).split()) or type(exc).__name__
    who = user or "default"
    prefix = "redis.sentinel_" if sentinel else "redis."
    if isinstance(exc, redis.AuthenticationError) or text.startswith(("WRONGPASS", "invalid username-password")):
        if "required" in text.lower():
            return f"the server wants a password (set {prefix}username and {prefix}password)"
        return f"authentication failed for user {who} (WRONGPASS: wrong password, unknown or disabled user)"
    if isinstance(exc, redis.exceptions.NoPermissionError):
        return f"user {who} lacks a permission the client needs ({text})"
    if isinstance(exc, redis.exceptions.AuthenticationWrongNumberOfArgsError):
        return f"the server has no ACL users (Redis < 6); leave {prefix}username unset"
    for needles, cause in _TLS_CAUSES:
        if any(n.lower() in text.lower() for n in needles):
            return cause
    if sentinel and "unknown command" in text.lower() and "sentinel" in text.lower():
        return "not a Sentinel (it does not know the SENTINEL command): check the ports in redis.sentinels"
    if isinstance(exc, redis.TimeoutError) or "timed out" in text.lower():
        hint = "; a plain-TCP port? then drop rediss:// and redis.ssl" if r.tls else ""
        return f"unreachable (no answer within {max(r.connect_timeout_s, r.socket_timeout_s):g} s{hint})"
    if "refused" in text.lower():
        return "unreachable (connection refused: is it running on this port?)"
    if "not known" in text or "resolution" in text.lower():
        return "unreachable (the host name does not resolve)"
    if not r.tls and ("Connection reset" in text or "closed by server" in text.lower()):
        return "connection closed by the server (does it want TLS? use rediss:// or set redis.ssl)"
    return text
