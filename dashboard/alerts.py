"""Behaviour alerts for analysts: list, filter, acknowledge, close (``dnsentinel alerts`` and the Alerts page).

The workers write one ``alerts`` document per episode (ECS names, verdict_cache/es_schema.py
``ALERT_FIELDS``; SPEC §4). Everything here reads those documents or changes an alert's
status with a note; a status change is a partial update that the detections never overwrite
(the role check and the audit entry are ``actions.set_alert_status``'s).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Optional

import typer

from dnsentinel.dashboard.output import OutputFormat, elasticsearch_errors, emit, iso_utc, parse_when, table_time
from dnsentinel.verdict_cache import es_schema as S
from dnsentinel.verdict_cache.vocabulary import ALERT_STATUSES

MAX_ALERTS = 10_000


@dataclass(frozen=True)
class AlertRow:
    """One alert as analysts see it (the fields `dnsentinel alerts --format json` promises)."""

    id: str
    kind: str
    severity: str
    status: str
    client: str | None
    domain: str | None
    first_seen: int
    last_seen: int
    count: int
    summary: str
    evidence: list[str] = field(default_factory=list)
    clients: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    promoted: list[str] = field(default_factory=list)
    updated_by: str | None = None
    note: str | None = None

    @classmethod
    def from_source(cls, src: dict[str, Any]) -> AlertRow:
        g = src.get
        return cls(g(S.ALERT_ID, ""), g(S.ALERT_KIND, ""), g(S.ALERT_SEVERITY, ""), g(S.ALERT_STATUS, "open"),
                   g(S.CLIENT_ADDRESS), g(S.Q_REGISTERED), int(g(S.EVENT_START) or 0),
                   int(g(S.EVENT_END) or 0), int(g(S.ALERT_COUNT) or 0), g(S.MESSAGE, ""),
                   list(g(S.ALERT_EVIDENCE) or []), list(g(S.ALERT_CLIENTS) or []), dict(g(S.ALERT_DETAILS) or {}),
                   list(g(S.ALERT_PROMOTED) or []), g(S.ALERT_UPDATED_BY), g(S.ALERT_NOTE))

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "severity": self.severity, "status": self.status,
                "client": self.client, "domain": self.domain, "first_seen": iso_utc(self.first_seen),
                "last_seen": iso_utc(self.last_seen), "count": self.count, "summary": self.summary,
                "evidence": self.evidence, "clients": self.clients, "details": self.details,
                "promoted": self.promoted, "updated_by": self.updated_by, "note": self.note}


def build_query(since_ms: int | None = None, until_ms: int | None = None, kinds: list[str] | None = None,
                statuses: list[str] | None = None, client: str | None = None, domain: str | None = None) -> dict:
    """Alerts whose evidence overlaps [since, until] (event time), of these kinds, statuses, client or domain."""
    filters: list[dict[str, Any]] = []
    if since_ms is not None:
        filters.append({"range": {S.EVENT_END: {"gte": since_ms, "format": "epoch_millis"}}})
    if until_ms is not None:
        filters.append({"range": {S.EVENT_START: {"lte": until_ms, "format": "epoch_millis"}}})
    if kinds:
        filters.append({"terms": {S.ALERT_KIND: kinds}})
    if statuses:
        filters.append({"terms": {S.ALERT_STATUS: statuses}})
    if client:
        filters.append({"bool": {"should": [{"term": {S.CLIENT_ADDRESS: client}}, {"term": {S.ALERT_CLIENTS: client}}],
                                 "minimum_should_match": 1}})
    if domain:
        filters.append({"term": {S.Q_REGISTERED: domain}})
    return {"bool": {"filter": filters}} if filters else {"match_all": {}}


def list_alerts(es: Any, index: str, size: int = 500, **filters: Any) -> list[AlertRow]:
    """The newest alerts matching ``filters`` (see :func:`build_query`), most severe and recent first."""
    resp = es.search(index=index, query=build_query(**filters), size=min(size, MAX_ALERTS),
                     sort=[{S.EVENT_SEVERITY: "desc"}, {S.EVENT_END: "desc"}], ignore_unavailable=True)
    return [AlertRow.from_source(h["_source"]) for h in resp["hits"]["hits"]]


def set_status(es: Any, index: str, alert_id: str, status: str, by: str, note: str | None = None) -> str:
    """Acknowledge or close an alert (or reopen it); returns the status it had.

    Called through ``actions.set_alert_status``, which checks the role and writes the audit entry.
    """
    if status not in ALERT_STATUSES:
        raise ValueError(f"status {status!r} is not one of {', '.join(ALERT_STATUSES)}")
    current = es.get(index=index, id=alert_id)["_source"]
    before = current.get(S.ALERT_STATUS, "open")
    doc = {S.ALERT_STATUS: status, S.ALERT_UPDATED_BY: by, S.ALERT_UPDATED_AT: int(time.time() * 1000)}
    if note:
        doc[S.ALERT_NOTE] = note[:2000]
    es.update(index=index, id=alert_id, doc=doc, refresh="wait_for")
    return before


def alerts_cmd(
    since: Optional[str] = typer.Option(None, "--since", help="Evidence after: ISO time, epoch, or '2h'/'3d' ago."),
    until: Optional[str] = typer.Option(None, "--until", help="Evidence before: ISO time, epoch, or '1h' ago."),
    kind: Optional[list[str]] = typer.Option(None, "--kind", help="dga_host, tunnel, ip_echo, dnsbl_lookup, mx_burst, ... (repeatable)."),
    status: Optional[list[str]] = typer.Option(None, "--status", help="open, acknowledged, closed (repeatable)."),
    client: Optional[str] = typer.Option(None, "--client", help="Only alerts about this client."),
    out: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, csv or json."),
) -> None:
    """Behaviour alerts (DGA hosts, tunnels, malware behaviours), most severe and recent first.

    Examples:
      dnsentinel alerts --since 1d
      dnsentinel alerts --kind tunnel --format json
      dnsentinel alerts --since 2010-08-21 --until 2010-08-22 --status open --format csv > alerts.csv
    """
    from elasticsearch import Elasticsearch

    from dnsentinel.settings import get_settings
    from dnsentinel.verdict_cache.es_schema import index_name

    try:
        since_ms, until_ms = parse_when(since), parse_when(until)
    except ValueError as exc:
        raise typer.BadParameter(f"--since/--until: {exc}") from exc
    bad = [s for s in status or () if s not in ALERT_STATUSES]
    if bad:
        raise typer.BadParameter(f"--status {bad[0]!r}: expected one of {', '.join(ALERT_STATUSES)}")
    es = Elasticsearch(**get_settings().elasticsearch.client_kwargs())  # type: ignore[arg-type]
    with elasticsearch_errors():
        rows = list_alerts(es, index_name("alerts"), MAX_ALERTS, since_ms=since_ms, until_ms=until_ms,
                           kinds=kind, statuses=status, client=client)
    emit([r.as_dict() for r in rows], out, CSV_COLUMNS, lambda: _print_table(rows))


CSV_COLUMNS = ("id", "kind", "severity", "status", "client", "domain", "first_seen", "last_seen", "count", "summary")


def _print_table(rows: list[AlertRow]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} alerts")
    for col in ("severity", "kind", "status", "client / domain", "first seen (UTC)", "last seen (UTC)", "count",
                "summary"):
        table.add_column(col, justify="right" if col == "count" else "left", overflow="fold")
    for r in rows:
        d = r.as_dict()
        table.add_row(r.severity, r.kind, r.status, " / ".join(x for x in (r.client, r.domain) if x),
                      table_time(d["first_seen"]), table_time(d["last_seen"]), f"{r.count:,}", r.summary)
    Console(width=200).print(table)


def register(app: typer.Typer) -> None:
    app.command("alerts")(alerts_cmd)
