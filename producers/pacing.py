"""Replay pacing: as fast as possible, a fixed event rate, or the log's own rhythm sped up."""

from __future__ import annotations

import time


class Pacer:
    """Sleeps just enough before each event; ``None`` settings mean no pacing at all."""

    def __init__(self, rate: float | None = None, speed: float | None = None) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")
        if speed is not None and speed <= 0:
            raise ValueError("speed must be positive")
        self.rate = rate
        self.speed = speed
        self.active = rate is not None or speed is not None
        self._start = time.monotonic()
        self._count = 0
        self._first_ts: int | None = None

    def wait(self, ts_ms: int) -> None:
        """Called before producing the event with log time ``ts_ms``."""
        self._count += 1
        if self.rate is not None:
            target = self._start + self._count / self.rate
        else:
            assert self.speed is not None
            if self._first_ts is None:
                self._first_ts = ts_ms
                self._start = time.monotonic()
                return
            # Out-of-order log lines (Zeek writes by connection end) never move time backwards.
            target = self._start + max(0, ts_ms - self._first_ts) / 1000.0 / self.speed
        delay = target - time.monotonic()
        if delay > 0.002:
            time.sleep(delay)
