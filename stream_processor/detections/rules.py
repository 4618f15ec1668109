"""Known malware behaviours as rules in data: a TOML file the operator can extend.

Some malware is recognised by *what* it looks up rather than how the names look. Trickbot's
spam module, replayed from a real capture, asked a dozen public-IP echo services for its own
address, then looked that address up in several DNS blocklists; spam bots resolve the mail
exchangers of many domains in a burst. Each rule says which queries it matches and how many
distinct ones a client must make in a window before it alerts:

- ``match = "names"``: the query name is one of ``names`` (``*.example.com`` matches below
  example.com too); counts distinct names.
- ``match = "dnsbl"``: a reversed IPv4 address under one of ``zones``; counts the distinct zones
  one address is looked up in (a host checking whether *its own* address is listed).
- ``match = "qtype"``: the query type is one of ``qtypes``; counts distinct registrable domains.

Mail servers legitimately do the last two all day: list them in a rule's ``exempt_clients``
(addresses or CIDR prefixes). The shipped rules are ``rules.toml`` beside this module; an
operator's file (``detections.rules_file``) replaces them. Errors name the file, the rule and
the field.
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dnsentinel.errors import ConfigError
from dnsentinel.verdict_cache.alerts import Signal
from dnsentinel.verdict_cache.names import registrable_domain
from dnsentinel.verdict_cache.vocabulary import Severity

SHIPPED = Path(__file__).with_name("rules.toml")
IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network


class Rule(BaseModel):
    """One behaviour rule as written in the rules file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field(pattern=r"^[a-z][a-z0-9_]{1,40}$")
    description: str
    severity: Severity = "medium"
    match: Literal["names", "dnsbl", "qtype"]
    names: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    qtypes: tuple[str, ...] = ()
    min_distinct: int = Field(3, ge=1)
    exempt_clients: tuple[str, ...] = ()

    @field_validator("names", "zones")
    @classmethod
    def _lower(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v.strip().lower().rstrip(".") for v in values)

    @field_validator("qtypes")
    @classmethod
    def _upper(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v.strip().upper() for v in values)

    @field_validator("exempt_clients")
    @classmethod
    def _networks(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for v in values:
            ipaddress.ip_network(v, strict=False)  # raises ValueError with the bad value
        return values

    def model_post_init(self, _ctx: object) -> None:
        needed = {"names": self.names, "dnsbl": self.zones, "qtype": self.qtypes}[self.match]
        if not needed:
            field_name = {"names": "names", "dnsbl": "zones", "qtype": "qtypes"}[self.match]
            raise ValueError(f"match = {self.match!r} needs a non-empty '{field_name}' list")


@dataclass
class RuleSet:
    """The compiled rules: per-query matching in the worker, per-client counting in the signals stage."""

    rules: dict[str, Rule]
    _exact: dict[str, list[str]] = field(default_factory=dict)
    _suffix: dict[str, list[str]] = field(default_factory=dict)
    _zones: dict[str, list[str]] = field(default_factory=dict)
    _qtypes: dict[str, list[str]] = field(default_factory=dict)
    _exempt: dict[str, list[IPNet]] = field(default_factory=dict)
    _domains: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        for rule in self.rules.values():
            for n in rule.names:
                table = self._suffix if n.startswith("*.") else self._exact
                table.setdefault(n.removeprefix("*."), []).append(rule.kind)
            for z in rule.zones:
                self._zones.setdefault(z, []).append(rule.kind)
            for q in rule.qtypes:
                self._qtypes.setdefault(q, []).append(rule.kind)
            self._exempt[rule.kind] = [ipaddress.ip_network(c, strict=False) for c in rule.exempt_clients]
        self._domains = {registrable_domain(s) or s for s in (*self._suffix, *self._zones)}

    def match(self, name: str, domain: str, qtype: str) -> tuple[str, ...]:
        """Kinds of the rules a query matches (most queries: none, after three dict lookups).

        ``domain`` is the name's registrable domain (or its grouping domain): suffixes and zones
        are only walked for names under a domain some rule mentions.
        """
        kinds = list(self._exact.get(name, ()))
        kinds += self._qtypes.get(qtype, ())
        if domain in self._domains:
            rest = name
            while "." in rest:
                rest = rest.split(".", 1)[1]
                kinds += self._suffix.get(rest, ())
                if rest in self._zones and _reversed_ipv4(name[: -len(rest) - 1]):
                    kinds += self._zones[rest]
        return tuple(dict.fromkeys(kinds))

    def exempt(self, kind: str, client: str) -> bool:
        nets = self._exempt.get(kind)
        if not nets:
            return False
        try:
            ip = ipaddress.ip_address(client)
        except ValueError:
            return False
        return any(ip in net for net in nets)

    def distinct_key(self, kind: str, sig: Signal) -> tuple[str, str]:
        """What one matching query contributes to the rule's count: (group, value)."""
        rule = self.rules[kind]
        if rule.match == "dnsbl":  # zones per looked-up address: group by the address
            parts = sig.name.split(".")
            return ".".join(reversed(parts[:4])), ".".join(parts[4:])
        if rule.match == "qtype":
            return "", sig.domain
        return "", sig.name


def _reversed_ipv4(labels: str) -> bool:
    parts = labels.split(".")
    return len(parts) == 4 and all(p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts)


def load(path: Path | None = None) -> RuleSet:
    """Read and validate a rules file (the shipped one by default); raises ConfigError naming what is wrong."""
    path = Path(path) if path else SHIPPED
    try:
        doc = tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"behaviour rules {path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"behaviour rules {path}: not valid TOML: {exc}") from None
    raw = doc.get("rule")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"behaviour rules {path}: expected one or more [[rule]] tables")
    rules: dict[str, Rule] = {}
    for i, entry in enumerate(raw, 1):
        where = f"behaviour rules {path}: rule {i} ({entry.get('kind', '?') if isinstance(entry, dict) else '?'})"
        try:
            rule = Rule.model_validate(entry)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "rule"
            raise ConfigError(f"{where}: {loc}: {first['msg']}") from None
        if rule.kind in rules:
            raise ConfigError(f"{where}: kind {rule.kind!r} is defined twice")
        rules[rule.kind] = rule
    return RuleSet(rules)
