"""Exception types shared by every component.

One base class lets the CLI turn any expected failure into a one-line error
and a non-zero exit code, while real bugs still show a traceback.
"""


class DnsentinelError(Exception):
    """An expected failure the user can act on; the message says what to fix."""


class ConfigError(DnsentinelError):
    """Settings are missing, malformed or point at something that does not exist."""


class ServiceUnavailable(DnsentinelError):
    """A required service (Kafka, Redis, Elasticsearch, CoreDNS) cannot be reached."""
