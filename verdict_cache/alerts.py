"""Behaviour detections on Kafka: the signals workers share and the alerts they raise (SPEC §2.5, §2.6).

Two payloads, both Python-only (the plugin neither reads nor writes them):

- a **signal** is one query that may count towards a per-client detection (an NXDOMAIN,
  a name the model scored high, a name a behaviour rule matched). Queries are partitioned by
  domain, so one client's queries reach every worker; signals are re-keyed by client on
  ``dns.signals`` so that one worker sees all of a client's signals and can count them.
- an **alert** is what a detection concluded, published on ``dns.alerts`` (for a SIEM) and
  indexed in Elasticsearch. Its id is stable for one *episode* (same kind, client and domain,
  no quiet gap longer than the cool-down), so a host that keeps misbehaving updates one alert
  instead of raising one a minute.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from dnsentinel.verdict_cache import es_schema as S
from dnsentinel.verdict_cache.events import CONTRACT_VERSION, InvalidEvent, is_ip
from dnsentinel.verdict_cache.vocabulary import ALERT_STATUSES, SEVERITIES

__all__ = ["Alert", "MAX_EVIDENCE", "Signal", "alert_id"]

MAX_EVIDENCE = 20
"""Names kept as evidence in one alert (a sample: the counts say how many there were)."""

SEVERITY_SCORES = {"low": 21, "medium": 47, "high": 73, "critical": 99}
"""ECS ``event.severity`` per severity word (the risk-score bands Elastic Security uses)."""


@dataclass(slots=True)
class Signal:
    """One query that may count towards a per-client detection (value of ``dns.signals``, key = client)."""

    ts: int
    """Event time, epoch milliseconds."""
    client: str
    name: str
    domain: str
    """The registrable domain (SPEC §1.2; the PSL default rule gives one to unknown TLDs too), else the name."""
    nxdomain: bool = False
    resolved: bool = False
    """The query got an answer (NOERROR); False when it did not or the log does not say."""
    score: float | None = None
    """The model's calibrated score when the name was scored in this batch (None: not scored here)."""
    label: str | None = None
    """The name's verdict label when it had one (``uncertain`` names may turn malicious by an alert)."""
    rules: tuple[str, ...] = ()
    """Kinds of the behaviour rules the query matched."""

    def encode(self) -> bytes:
        obj: dict[str, Any] = {"v": CONTRACT_VERSION, "ts": self.ts, "client": self.client, "name": self.name,
                               "domain": self.domain}
        if self.nxdomain:
            obj["nx"] = True
        if self.resolved:
            obj["ok"] = True
        if self.score is not None:
            obj["score"] = round(float(self.score), 4)
        if self.label is not None:
            obj["label"] = self.label
        if self.rules:
            obj["rules"] = list(self.rules)
        return json.dumps(obj, separators=(",", ":")).encode()

    @classmethod
    def parse(cls, value: bytes) -> Signal:
        """Decode a ``dns.signals`` value; raises :class:`InvalidEvent` (counted, never fatal)."""
        obj = _object(value)
        try:
            return cls(int(obj["ts"]), str(obj["client"]), str(obj["name"]), str(obj["domain"]),
                       bool(obj.get("nx", False)), bool(obj.get("ok", False)),
                       None if obj.get("score") is None else float(obj["score"]),
                       None if obj.get("label") is None else str(obj["label"]),
                       tuple(str(r) for r in obj.get("rules", ())))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidEvent("bad_signal", f"{type(exc).__name__}: {exc}"[:200]) from None


def alert_id(kind: str, client: str | None, domain: str | None, episode_start_ms: int) -> str:
    """Stable id of one episode: the same inputs give the same id, so re-emitting is an update."""
    raw = f"{kind}|{client or '-'}|{domain or '-'}|{episode_start_ms}".encode()
    return hashlib.sha1(raw, usedforsecurity=False).hexdigest()[:24]


@dataclass(slots=True)
class Alert:
    """What a detection concluded about a client and/or a domain over an event-time span."""

    id: str
    kind: str
    severity: str
    summary: str
    first_seen: int
    last_seen: int
    """Event time of the first and last evidence query, epoch milliseconds."""
    count: int
    """Evidence queries in the episode."""
    evidence: list[str]
    """A sample of the names behind it (at most :data:`MAX_EVIDENCE`)."""
    detected_at: int
    """Wall-clock time the alert was (last) raised, epoch milliseconds: the alert latency is this minus ``last_seen``."""
    client: str | None = None
    domain: str | None = None
    clients: list[str] = field(default_factory=list)
    """For domain alerts (tunnels): the clients that queried it (a sample)."""
    details: dict[str, float] = field(default_factory=dict)
    """The measurements the detection decided on (unique names, NXDOMAIN ratio, score sum, ...)."""
    promoted: list[str] = field(default_factory=list)
    """Uncertain evidence names this alert made malicious (DGA host)."""
    status: str = "open"

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} is not one of {', '.join(SEVERITIES)}")
        if self.status not in ALERT_STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {', '.join(ALERT_STATUSES)}")
        if self.client is None and self.domain is None:
            raise ValueError("an alert names a client, a domain or both")
        self.evidence = self.evidence[:MAX_EVIDENCE]
        self.clients = self.clients[:MAX_EVIDENCE]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_es(self, observer: str | None = None) -> dict[str, Any]:
        """The ``alerts`` index document (ECS names, es_schema.ALERT_FIELDS); its ``_id`` is :attr:`id`."""
        doc: dict[str, Any] = {
            S.TIMESTAMP: self.detected_at, S.MESSAGE: self.summary,
            S.EVENT_KIND: "alert", S.EVENT_CATEGORY: ["network"], S.EVENT_TYPE: ["info"],
            S.EVENT_ACTION: self.kind, S.EVENT_SEVERITY: SEVERITY_SCORES[self.severity],
            S.EVENT_START: self.first_seen, S.EVENT_END: self.last_seen, S.EVENT_CREATED: self.detected_at,
            S.EVENT_DATASET: "dnsentinel.alerts", S.RULE_NAME: self.kind,
            S.ALERT_ID: self.id, S.ALERT_KIND: self.kind, S.ALERT_SEVERITY: self.severity, S.ALERT_STATUS: self.status,
            S.ALERT_COUNT: self.count, S.ALERT_EVIDENCE: self.evidence, S.ALERT_CLIENTS: self.clients,
            S.ALERT_DETAILS: self.details, S.ALERT_PROMOTED: self.promoted,
        }
        if self.client is not None:
            doc[S.CLIENT_ADDRESS] = self.client
            if is_ip(self.client):
                doc[S.CLIENT_IP] = self.client
        if self.domain is not None:
            doc[S.Q_REGISTERED] = self.domain
        if observer:
            doc[S.OBSERVER] = observer
        return doc

    def encode(self) -> bytes:
        """The ``dns.alerts`` value (key: the id)."""
        return json.dumps({"v": CONTRACT_VERSION, **self.to_dict()}, separators=(",", ":")).encode()

    @classmethod
    def parse(cls, value: bytes) -> Alert:
        obj = _object(value)
        obj.pop("v", None)
        try:
            return cls(**obj)
        except (TypeError, ValueError) as exc:
            raise InvalidEvent("bad_alert", str(exc)[:200]) from None


def _object(value: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(value)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidEvent("not_json", str(exc)[:200]) from None
    if type(obj) is not dict:
        raise InvalidEvent("not_object", "top level is not an object")
    if obj.get("v") != CONTRACT_VERSION:
        raise InvalidEvent("bad_version", f"v={obj.get('v')!r}")
    return obj
