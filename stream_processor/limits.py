"""What bounds the worker's work: the LRU of names already known, and the per-domain flood limit.

Both sit between triage and the model. The LRU spares Redis a round trip for the names that
repeat (most queries go to a few popular names); the flood limit spares the model a
random-subdomain flood (``<random>.victim.com``), which would otherwise make it score every
query. Neither does I/O, so their rules are unit-tested directly.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict
from typing import Callable


class LRU:
    """Names already known to Redis (label or vetted decision), so repeats skip the round trip.

    Thread-safe: the verdict lane's thread reads and fills it while the event loop applies the
    Redis changes channel (drop, clear)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._d: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str) -> str | None:
        with self._lock:
            v = self._d.get(name)
            if v is not None:
                self._d.move_to_end(name)
            return v

    def put(self, name: str, value: str) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._d[name] = value
            self._d.move_to_end(name)
            while len(self._d) > self.size:
                self._d.popitem(last=False)

    def drop(self, name: str) -> None:
        with self._lock:
            self._d.pop(name, None)

    def clear(self) -> None:
        with self._lock:
            self._d.clear()

    def __len__(self) -> int:
        return len(self._d)


class FloodLimiter:
    """At most ``limit`` new names per registrable domain per minute are scored.

    The excess is counted and left unscored until a later minute, which keeps the
    worker's capacity for everyone else.
    """

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._minute = -1
        self._counts: Counter[str] = Counter()

    def admit(self, registrable: str | None) -> bool:
        minute = int(self._clock() // 60)
        if minute != self._minute:
            self._minute = minute
            self._counts.clear()
        if registrable is None:
            return True
        if self._counts[registrable] >= self.limit:
            return False
        self._counts[registrable] += 1
        return True
