"""Redis of the cluster profile: the ACL file's users, and clients of the nodes.

deploy/cluster/redis.sh renders deploy/multi/redis/users.acl.tmpl with lib.sh's ``render``
(``@NAME@`` replaced by ``$NAME``); :func:`render` does the same here, so tests read exactly the
rules the cluster runs with. :func:`acl_users` parses those rules into each user's command set,
which tests/cluster/test_redis_acl.py compares with the commands each component's code issues.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from dnsentinel.settings import REPO_ROOT

TEMPLATES = REPO_ROOT / "deploy" / "multi" / "redis"
ACL_TEMPLATE = TEMPLATES / "users.acl.tmpl"
PRINCIPALS = ("admin", "coredns", "worker", "dashboard", "replication", "sentinel")
"""The ACL users of the data nodes (pki.sh makes a password for each; ``replay`` uses no Redis)."""
_PLACEHOLDER = re.compile(r"@([A-Z_][A-Z0-9_]*)@")


def password_hash(password: str) -> str:
    """The SHA-256 hex form an ACL file stores (``#<hex>``) instead of the clear password."""
    return hashlib.sha256(password.encode()).hexdigest()


def acl_values(passwords: Mapping[str, str], key_prefix: str = "dnsentinel") -> dict[str, str]:
    """The placeholders of users.acl.tmpl: ``PASSWORD_<USER>_SHA256`` per principal, ``KEY_PREFIX``."""
    values = {"KEY_PREFIX": key_prefix}
    for user, password in passwords.items():
        values[f"PASSWORD_{user.upper()}_SHA256"] = password_hash(password)
    return values


def render(text: str, values: Mapping[str, str]) -> str:
    """``@NAME@`` replaced by ``values[NAME]`` (lib.sh's ``render``); a missing name is a KeyError."""
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def render_acl(passwords: Mapping[str, str], key_prefix: str = "dnsentinel", template: Path = ACL_TEMPLATE) -> str:
    """The ACL file as redis.sh writes it: rendered, without comment and blank lines."""
    text = render(template.read_text(), acl_values(passwords, key_prefix))
    return "\n".join(ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")) + "\n"


@dataclass
class AclUser:
    """One ``user`` line: what it grants (commands as ``name`` or ``name|sub``, lower case)."""

    name: str
    enabled: bool = False
    all_commands: bool = False
    commands: set[str] = field(default_factory=set)
    keys: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    passwords: list[str] = field(default_factory=list)
    """Stored forms (``#<sha256>`` or ``><clear>``); a clear one is a finding."""


def acl_users(text: str) -> dict[str, AclUser]:
    """Parse an ACL file (only the rules this project uses: on/off, #/>, ~, &, reset*, +cmd, -@all, +@all)."""
    users: dict[str, AclUser] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0] != "user":
            continue
        user = users.setdefault(parts[1], AclUser(parts[1]))
        for rule in parts[2:]:
            if rule in ("on", "off"):
                user.enabled = rule == "on"
            elif rule[0] in "#>":
                user.passwords.append(rule)
            elif rule[0] == "~":
                user.keys.append(rule[1:])
            elif rule[0] == "&":
                user.channels.append(rule[1:])
            elif rule in ("+@all", "allcommands"):
                user.all_commands = True
            elif rule in ("-@all", "nocommands"):
                user.all_commands, user.commands = False, set()
            elif rule.startswith("+"):
                user.commands.add(rule[1:].lower())
            elif rule == "resetkeys":
                user.keys = []
            elif rule == "resetchannels":
                user.channels = []
    return users


def command_name(args: list[str]) -> str:
    """How ACL rules name a command line: ``get``, or ``client|tracking`` for container commands."""
    name = args[0].lower()
    if name in CONTAINER_COMMANDS and len(args) > 1:
        return f"{name}|{args[1].lower()}"
    return name


CONTAINER_COMMANDS = frozenset({"acl", "client", "cluster", "command", "config", "function", "latency", "memory",
                                "module", "object", "pubsub", "script", "sentinel", "slowlog", "xgroup", "xinfo"})
"""Commands whose subcommands ACL rules name separately (``+client|tracking``)."""


def tls_client(host: str, port: int, user: str, password: str, ca: Path | None, **extra: Any) -> Any:
    """A ``redis.Redis`` to one node over TLS as ``user`` (``ca`` None: the system's roots)."""
    import redis

    kwargs: dict[str, Any] = {"ssl": True, "socket_timeout": 5, "socket_connect_timeout": 5}
    if ca is not None:
        kwargs["ssl_ca_certs"] = str(ca)
    return redis.Redis(host=host, port=port, username=user, password=password, **kwargs, **extra)
