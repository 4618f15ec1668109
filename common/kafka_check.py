"""The start-up check of Kafka: one line naming the brokers and the cause, not a hang.

librdkafka does not raise on a wrong SASL password or an untrusted certificate: it reports them
to the error callback and keeps retrying, and a metadata request just times out. So the check
asks for metadata in short rounds, serving the callback in between, and stops at the first
error that retrying cannot fix (authentication, TLS) with what it means and which setting to fix.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from dnsentinel.errors import ServiceUnavailable

if TYPE_CHECKING:
    from dnsentinel.settings import KafkaSettings

__all__ = ["check_kafka", "explain_kafka"]

FATAL_CODES = {"_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED", "_SSL", "TOPIC_AUTHORIZATION_FAILED",
               "CLUSTER_AUTHORIZATION_FAILED", "ILLEGAL_SASL_STATE", "UNSUPPORTED_SASL_MECHANISM", "_INVALID_ARG"}
"""Error names (``KafkaError.name()``) that no retry fixes: report at once."""


def check_kafka(k: KafkaSettings, timeout_s: float = 10.0, service: str = "kafka") -> None:
    """Ask the brokers for metadata; raise :class:`ServiceUnavailable` with a one-line cause."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    errors: list[Any] = []
    where = f"{service} at {k.bootstrap_servers}"
    try:
        admin = AdminClient({**k.confluent_config(), "error_cb": errors.append, "log_level": 0,
                             "socket.connection.setup.timeout.ms": int(max(timeout_s, 1) * 1000)})
    except KafkaException as exc:  # a bad setting (unknown mechanism, unreadable CA file)
        raise ServiceUnavailable(f"{where}: {explain_kafka(exc.args[0] if exc.args else exc, k)}") from None
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while True:
        try:
            admin.list_topics(timeout=min(1.0, max(deadline - time.monotonic(), 0.1)))
            return
        except KafkaException as exc:
            last = exc.args[0] if exc.args else exc
        admin.poll(0)  # serve error_cb
        fatal = next((e for e in errors if _fatal(e)), None)
        if fatal is not None:
            raise ServiceUnavailable(f"{where}: {explain_kafka(fatal, k)}")
        if time.monotonic() >= deadline:
            # "connecting to a SSL listener?" says more than the "all brokers down" that follows it
            cause = next((e for e in errors if "listener" in _text(e).lower()), errors[-1] if errors else last)
            raise ServiceUnavailable(f"{where}: {explain_kafka(cause, k, timeout_s)}")


def _fatal(err: Any) -> bool:
    """An error that retrying will not fix (librdkafka reports some only as transport errors)."""
    text = _text(err).lower()
    return _name(err) in FATAL_CODES or any(n in text for n in FATAL_TEXTS)


FATAL_TEXTS = ("sasl authentication error", "mechanism handshake failed", "ssl handshake failed",
               "certificate verify failed", "authentication failed")


def _name(err: Any) -> str:
    name = getattr(err, "name", None)
    return name() if callable(name) else ""


def _text(err: Any) -> str:
    text = getattr(err, "str", None)
    return " ".join((text() if callable(text) else str(err)).split())


def explain_kafka(err: Any, k: KafkaSettings, timeout_s: float | None = None) -> str:
    """A librdkafka error in a few words, with the setting to look at."""
    name, text = _name(err), _text(err)
    low = text.lower()
    if name in ("_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED") or "authentication failed" in low:
        if "invalid credentials" in low or "authentication failed" in low:
            return (f"authentication failed for user {k.sasl_username or '(none)'} "
                    f"(SASL {k.sasl_mechanism or 'PLAIN'}: wrong password or unknown user; kafka.sasl_password)")
        return f"SASL authentication failed ({text}); check kafka.sasl_mechanism and kafka.sasl_username"
    if "certificate verify failed" in low or "unable to get local issuer" in low or "self-signed" in low:
        if "hostname" in low or "ip address mismatch" in low:
            return "TLS certificate does not name this broker address (connect by a name in its subjectAltName)"
        return "TLS certificate not trusted (set kafka.ssl_cafile to the CA that signed it)"
    if "plaintext broker listener" in low:
        return f"the broker port is plain TCP, not TLS (kafka.security_protocol is {k.security_protocol})"
    if "connecting to a ssl listener" in low or "ssl listener" in low:
        return f"the broker closed the connection: is it a TLS listener? (kafka.security_protocol is {k.security_protocol})"
    if "sasl" in low and ("mechanism" in low or "handshake" in low):
        return f"SASL handshake failed ({text}); check kafka.security_protocol and kafka.sasl_mechanism"
    if name == "_SSL" or "ssl" in low:
        return f"TLS failed ({text})"
    if "refused" in low or name == "_ALL_BROKERS_DOWN" or name == "_TRANSPORT":
        return f"unreachable ({text})"
    if timeout_s is not None:
        return f"unreachable (no answer within {timeout_s:g} s: {text})"
    return text
