"""The detections in two stages, as the worker runs them.

Stage 1, :class:`DomainStage`, sees every query of the partitions a worker owns (queries are
keyed by registrable domain): it runs the per-domain tunnel detection in place, and turns the
few queries that may matter per client (NXDOMAINs for judgeable names, flagged or high-score
names, behaviour-rule matches) into :class:`Signal`\\ s. The worker publishes those on
``dns.signals`` keyed by client, so stage 2, :class:`ClientStage`, sees all of one client's
signals in one worker and counts them: the DGA-host detection and the behaviour rules.

Both stages are plain objects with no I/O: tests drive them with hand-made events, and the
worker owns the Kafka, Redis and Elasticsearch side.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from dnsentinel.settings import DetectionSettings
from dnsentinel.stream_processor.detections import dga_host, tunnel
from dnsentinel.stream_processor.detections.rules import RuleSet
from dnsentinel.stream_processor.detections.windows import Episodes, Windows
from dnsentinel.verdict_cache.alerts import Alert, Signal
from dnsentinel.verdict_cache.vocabulary import FLAGGED_LABELS


def _now_ms() -> int:
    return int(time.time() * 1000)


class DomainStage:
    """Per-domain detection and signal selection on the query path (one call per valid event)."""

    def __init__(self, cfg: DetectionSettings, rules: RuleSet, popular: Callable[[str], bool] = lambda _d: False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg, self.rules, self.popular = cfg, rules, popular
        ms = 1000
        self.windows: Windows[str, tunnel.DomainWindow] = Windows(
            cfg.window_s * ms, cfg.lateness_s * ms, int(cfg.idle_flush_s * ms), tunnel.DomainWindow, clock=clock)
        self.episodes = Episodes(cfg.cooldown_s * ms)
        self.counts: Counter[str] = Counter()
        self._popular_cache: dict[str, bool] = {}

    def observe(self, ts: int, client: str, name: str, domain: str, qtype: str, nxdomain: bool,
                judgeable: bool, score: float | None = None, label: str | None = None,
                resolved: bool = False) -> Signal | None:
        """Count one query towards its domain's window; the signal to forward by client, if any."""
        if domain != name and not self._is_popular(domain):
            window = self.windows.at(domain, ts)
            if window is not None:
                window.add(ts, name[: -len(domain) - 1], qtype, client, len(name))
        kinds = self.rules.match(name, domain, qtype) if self.rules.rules else ()
        if kinds or (judgeable and (nxdomain or label in FLAGGED_LABELS
                                    or (score is not None and score >= self.cfg.dga_host.flag_score))):
            self.counts["signals"] += 1
            return Signal(ts, client, name, domain, nxdomain and judgeable, resolved, score, label, kinds)
        return None

    def _is_popular(self, domain: str) -> bool:
        if not self.cfg.tunnel.skip_popular:
            return False
        hit = self._popular_cache.get(domain)
        if hit is None:
            if len(self._popular_cache) > 200_000:
                self._popular_cache.clear()
            hit = self._popular_cache[domain] = self.popular(domain)
        return hit

    def close(self) -> list[Alert]:
        """Tunnel alerts of the windows the watermark (or an idle gap) has closed."""
        alerts = []
        for domain, _start, window in self.windows.close():
            found = tunnel.judge(window, self.cfg.tunnel)
            if found is None:
                continue
            ep = self.episodes.record("tunnel", None, domain, window.first, window.last, window.queries)
            clients = sorted(window.clients)
            alerts.append(Alert(
                ep.id, "tunnel", found.severity,
                f"{int(found.details['unique_subdomains'])} unique names under {domain} in {self.cfg.window_s} s "
                f"from {len(clients)} client(s): mean length {found.details['mean_length']}, "
                f"{found.details['entropy_bits']} bits/char, {found.details['payload_qtype_share']:.0%} payload types",
                ep.first_seen, ep.last_seen, ep.count, [f"{s}.{domain}" for s in found.evidence], _now_ms(),
                client=clients[0] if len(clients) == 1 else None, domain=domain, clients=clients,
                details=found.details))
            self.counts["alerts_tunnel"] += 1
        self.episodes.forget_before(self.windows.max_ts)
        return alerts


@dataclass(slots=True)
class RuleWindow:
    """One client's matches of one rule in one window: distinct values per group."""

    groups: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    names: list[str] = field(default_factory=list)
    first: int = 0
    last: int = 0
    count: int = 0


@dataclass(frozen=True, slots=True)
class ClientAlert:
    """An alert on a client, and the uncertain names it turns malicious (DGA host only)."""

    alert: Alert
    promote: list[str]


class ClientStage:
    """Per-client detections over the signals of one client (DGA host, behaviour rules)."""

    def __init__(self, cfg: DetectionSettings, rules: RuleSet, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg, self.rules = cfg, rules
        size, late, idle = cfg.window_s * 1000, cfg.lateness_s * 1000, int(cfg.idle_flush_s * 1000)
        self.hosts: Windows[str, dga_host.HostWindow] = Windows(size, late, idle, dga_host.HostWindow, clock=clock)
        self.matches: Windows[tuple[str, str], RuleWindow] = Windows(size, late, idle, RuleWindow, clock=clock)
        self.episodes = Episodes(cfg.cooldown_s * 1000)
        self.counts: Counter[str] = Counter()

    def on_signal(self, sig: Signal) -> None:
        if sig.nxdomain or sig.score is not None or sig.label is not None:
            host = self.hosts.at(sig.client, sig.ts)
            if host is not None:
                host.add(sig)
        for kind in sig.rules:
            if kind not in self.rules.rules or self.rules.exempt(kind, sig.client):
                continue
            window = self.matches.at((sig.client, kind), sig.ts)
            if window is None:
                continue
            group, value = self.rules.distinct_key(kind, sig)
            window.groups[group].add(value)
            window.first = sig.ts if not window.first else min(window.first, sig.ts)
            window.last, window.count = max(window.last, sig.ts), window.count + 1
            if len(window.names) < 50 and sig.name not in window.names:
                window.names.append(sig.name)

    def close(self) -> list[ClientAlert]:
        """Alerts of the client windows the watermark (or an idle gap) has closed."""
        out = [self._host_alert(client, w) for client, _s, w in self.hosts.close()]
        out += [self._rule_alert(client, kind, w) for (client, kind), _s, w in self.matches.close()]
        self.episodes.forget_before(max(self.hosts.max_ts, self.matches.max_ts))
        return [a for a in out if a is not None]

    def _host_alert(self, client: str, window: dga_host.HostWindow) -> ClientAlert | None:
        found = dga_host.judge(window, self.cfg.dga_host)
        if found is None:
            return None
        d = found.details
        ep = self.episodes.record("dga_host", client, None, window.first, window.last, int(d["distinct_domains"]))
        self.counts["alerts_dga_host"] += 1
        summary = (f"{client} resolved names under {int(d['distinct_domains'])} suspicious domains in "
                   f"{self.cfg.window_s} s: "
                   f"{int(d['nxdomain_names'])} NXDOMAIN, {int(d['flagged_names'])} flagged, "
                   f"score sum {d['score_sum']}")
        alert = Alert(ep.id, "dga_host", found.severity, summary, ep.first_seen, ep.last_seen, ep.count,
                      found.evidence, _now_ms(), client=client, details=d)
        return ClientAlert(alert, found.uncertain if self.cfg.dga_host.promote_uncertain else [])

    def _rule_alert(self, client: str, kind: str, window: RuleWindow) -> ClientAlert | None:
        rule = self.rules.rules[kind]
        group, values = max(window.groups.items(), key=lambda kv: len(kv[1]))
        if len(values) < rule.min_distinct:
            return None
        ep = self.episodes.record(kind, client, None, window.first, window.last, window.count)
        self.counts[f"alerts_{kind}"] += 1
        about = f" for {group}" if group else ""
        summary = f"{client}: {rule.description.split(' (')[0].lower()} — {len(values)} distinct{about}"
        alert = Alert(ep.id, kind, rule.severity, summary, ep.first_seen, ep.last_seen, ep.count, window.names,
                      _now_ms(), client=client, details={"distinct": len(values), "queries": window.count})
        return ClientAlert(alert, [])
