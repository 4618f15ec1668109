"""Time ranges and histogram granularity for every page.

Kept free of Streamlit so the same logic serves the pages, the tests and the
benchmark. A range is snapped to whole seconds (and relative ranges to a few
seconds) so that repeated reruns hit the data cache instead of ES.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

PRESETS: dict[str, timedelta] = {
    "Last 15 minutes": timedelta(minutes=15),
    "Last hour": timedelta(hours=1),
    "Last 6 hours": timedelta(hours=6),
    "Last 24 hours": timedelta(days=1),
    "Last 7 days": timedelta(days=7),
    "Last 30 days": timedelta(days=30),
}

GRANULARITIES: dict[str, str] = {"minute": "1m", "hour": "1h", "day": "1d"}
"""Granularity name -> Elasticsearch ``fixed_interval``."""

_SNAP_S = 10


@dataclass(frozen=True)
class TimeRange:
    """A closed-open UTC interval; hashable, so it can key ``st.cache_data``."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("time range bounds must be timezone-aware")
        if self.end <= self.start:
            raise ValueError(f"time range ends ({self.end:%Y-%m-%d %H:%M}) before it starts ({self.start:%Y-%m-%d %H:%M})")

    @property
    def span(self) -> timedelta:
        return self.end - self.start

    def es_range(self, field: str) -> dict:
        """An ES ``range`` clause over ``field`` (epoch milliseconds: no time-zone surprises)."""
        return {"range": {field: {"gte": _ms(self.start), "lt": _ms(self.end), "format": "epoch_millis"}}}

    def bounds_ms(self) -> dict[str, int]:
        return {"min": _ms(self.start), "max": _ms(self.end) - 1}


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def last(span: timedelta, now: datetime | None = None) -> TimeRange:
    """The range ending now (rounded up to a few seconds, for cache hits)."""
    now = now or datetime.now(UTC)
    epoch = int(now.timestamp())
    end = datetime.fromtimestamp(epoch - epoch % _SNAP_S + _SNAP_S, UTC)
    return TimeRange(end - span, end)


def auto_granularity(span: timedelta) -> str:
    """Minute buckets up to 6 h, hours up to 14 days, else days: at most a few hundred bars."""
    if span <= timedelta(hours=6):
        return "minute"
    if span <= timedelta(days=14):
        return "hour"
    return "day"


def bucket_count(span: timedelta, granularity: str) -> int:
    step = {"minute": 60, "hour": 3600, "day": 86400}[granularity]
    return int(span.total_seconds() // step) + 1


MAX_BUCKETS = 5000
"""Refuse overrides such as minute buckets over 30 days: too many bars to draw or send."""
