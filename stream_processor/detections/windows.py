"""Event-time tumbling windows and alert episodes, shared by every detection.

Windows run on the events' own timestamps, so a replay of a 2018 log raises alerts stamped
2018 and live traffic raises them within a window. Time is kept **per key** (per client or
per domain), not as one stream-wide watermark: a replay that mixes logs from different years,
or a log whose lines are not in time order across hosts, must not make one host's events
"late" because another host's clock is ahead. A key's window closes when that key's own newest
event passes the window's end plus the allowed lateness, or when the window has had no event
for ``idle_flush_ms`` of wall time (a host that went quiet, the end of a replay). An event
for a window its key already closed is counted as ``late`` and opens that window again: what
it adds is judged on its own, and a finding lands in the same alert (see :class:`Episodes`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, Hashable, TypeVar

from dnsentinel.verdict_cache.alerts import alert_id

A = TypeVar("A")
K = TypeVar("K", bound=Hashable)


@dataclass(slots=True)
class _Open(Generic[A]):
    agg: A
    touched: float
    """Wall-clock time of the window's last event."""


class Windows(Generic[K, A]):
    """Aggregates of type ``A`` per key and tumbling window, closed by each key's own event time.

    Closing is checked once a second over the windows that *can* close: those whose end the
    newest event time of the whole stream has passed (a key's own time is never ahead of it),
    or all of them once the stream has been quiet for the idle time. Open windows are kept per
    start time, so the current minute's windows, the bulk of them, are not scanned.
    """

    def __init__(self, size_ms: int, lateness_ms: int, idle_flush_ms: int, factory: Callable[[], A],
                 max_open: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.size_ms, self.lateness_ms, self.idle_s = size_ms, lateness_ms, idle_flush_ms / 1000
        self.factory, self.max_open, self.clock = factory, max_open, clock
        self.open: dict[int, dict[K, _Open[A]]] = {}
        """Start time -> key -> its open window."""
        self.n_open = 0
        self.newest: dict[K, int] = {}
        """Per key: its newest event time (the key's watermark is this minus the lateness)."""
        self.closed_before: dict[K, int] = {}
        """Per key: its windows starting before this have been closed; events there are late."""
        self.max_ts = 0
        self.late = 0
        self.dropped = 0
        """Events not aggregated because ``max_open`` windows were open (counted, never silent)."""
        self._last_event = clock()

    def at(self, key: K, ts: int) -> A | None:
        """The aggregate to update for ``key`` at event time ``ts`` (None: ``max_open`` windows are open)."""
        start = ts - ts % self.size_ms
        if start < self.closed_before.get(key, -1):
            self.late += 1
        if ts > self.newest.get(key, -1):
            self.newest[key] = ts
            if ts > self.max_ts:
                self.max_ts = ts
        now = self._last_event = self.clock()
        bucket = self.open.get(start)
        if bucket is None:
            bucket = self.open[start] = {}
        entry = bucket.get(key)
        if entry is None:
            if self.n_open >= self.max_open:
                self.dropped += 1
                return None
            entry = bucket[key] = _Open(self.factory(), now)
            self.n_open += 1
        entry.touched = now
        return entry.agg

    def close(self) -> Iterator[tuple[K, int, A]]:
        """Pop every window its key's watermark has passed, or that went idle: (key, start, agg)."""
        now = self.clock()
        quiet = now - self._last_event >= self.idle_s
        horizon = self.max_ts - self.lateness_ms
        for start in sorted(self.open):
            if not quiet and start + self.size_ms > horizon:
                break
            bucket = self.open[start]
            end = start + self.size_ms
            done = [k for k, e in bucket.items()
                    if quiet or end <= self.newest[k] - self.lateness_ms or now - e.touched >= self.idle_s]
            for key in done:
                self.closed_before[key] = max(self.closed_before.get(key, -1), end)
                self.n_open -= 1
                yield key, start, bucket.pop(key).agg
            if not bucket:
                del self.open[start]
        if len(self.closed_before) > 4 * self.max_open:  # keys long quiet: forget them
            live = {k for bucket in self.open.values() for k in bucket}
            self.closed_before = {k: v for k, v in self.closed_before.items() if k in live}
            self.newest = {k: v for k, v in self.newest.items() if k in live}


@dataclass(slots=True)
class Episode:
    """One run of alerts for the same (kind, client, domain) without a quiet gap over the cool-down."""

    id: str
    first_seen: int
    last_seen: int
    count: int


class Episodes:
    """Turns per-window findings into stable alert ids: a host that keeps misbehaving updates one alert."""

    def __init__(self, cooldown_ms: int) -> None:
        self.cooldown_ms = cooldown_ms
        self.by_key: dict[tuple[str, str | None, str | None], Episode] = {}

    def record(self, kind: str, client: str | None, domain: str | None, first: int, last: int, count: int) -> Episode:
        """The episode this window's finding belongs to, extended by it (or a new one)."""
        key = (kind, client, domain)
        ep = self.by_key.get(key)
        if ep is None or first - ep.last_seen > self.cooldown_ms:
            ep = self.by_key[key] = Episode(alert_id(kind, client, domain, first), first, last, 0)
        ep.first_seen, ep.last_seen = min(ep.first_seen, first), max(ep.last_seen, last)
        ep.count += count
        return ep

    def forget_before(self, ts: int) -> None:
        """Drop episodes quiet since before ``ts - cooldown`` (bounded memory on a long stream)."""
        for key in [k for k, ep in self.by_key.items() if ep.last_seen < ts - self.cooldown_ms]:
            del self.by_key[key]
