"""Stand-ins for the worker's collaborators in unit tests (integration tests use the real ones)."""

from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace
from typing import Awaitable, Iterable, Sequence

from dnsentinel.verdict_cache.keys import Verdict
from dnsentinel.stream_processor.triage import Record


class FakeModel:
    """Scores by a lookup table (default 0.5): what a test needs to pin each label."""

    arch = "fake"

    def __init__(self, scores: dict[str, float] | None = None, version: str = "fake-1",
                 allow: float = 0.2, block: float = 0.8) -> None:
        self.scores = scores or {}
        self.version = version
        self.thresholds = SimpleNamespace(allow=allow, block=block)
        self.calls: list[list[str]] = []

    def predict(self, domains: Sequence[str]) -> list[float]:
        self.calls.append(list(domains))
        return [self.scores.get(d, 0.5) for d in domains]


class FakeCache:
    """A :class:`~dnsentinel.stream_processor.ports.VerdictStore` over dicts, recording lookups and writes."""

    def __init__(self, vetted: dict[str, str] | None = None) -> None:
        self.vetted = vetted or {}
        self.verdicts: dict[str, Verdict] = {}
        self.lookups: list[list[str]] = []

    def decide_many(self, names: Iterable[str]) -> dict[str, str]:
        self.lookups.append(list(names))
        out = {}
        for n in names:
            if n in self.vetted:
                out[n] = self.vetted[n]
            elif n in self.verdicts:
                out[n] = self.verdicts[n].label
            else:
                out[n] = "unknown"
        return out

    def put_verdicts(self, verdicts: Iterable[Verdict]) -> None:
        for v in verdicts:
            self.verdicts[v.name] = v


class FakePublisher:
    """A :class:`~dnsentinel.stream_processor.ports.Publisher` whose messages are delivered at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []

    async def __call__(self, topic: str, key: bytes | None, value: bytes) -> Awaitable[object]:
        self.sent.append((topic, key, value))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    def on(self, topic: str) -> list[dict]:
        return [json.loads(v) for t, _, v in self.sent if t == topic]


def event(name: str, client: str = "10.0.0.1", ts: int | None = None, **extra: object) -> bytes:
    obj = {"v": 1, "ts": ts if ts is not None else int(time.time() * 1000), "name": name, "qtype": "A",
           "client": client, "source": "loadgen", **extra}
    return json.dumps(obj).encode()


def records(values: Sequence[bytes], partition: int = 0, start: int = 0, topic: str = "q") -> list[Record]:
    return [Record(None, v, topic, partition, start + i) for i, v in enumerate(values)]
