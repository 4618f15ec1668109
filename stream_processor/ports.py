"""The worker's collaborators as small Protocols: what the pipeline needs of each, not who provides it.

:class:`~dnsentinel.stream_processor.worker.BatchProcessor` talks to Redis, the model, Kafka
and Elasticsearch only through these, so unit tests hand it fakes
(tests/stream_processor/fakes.py) and the app (app.py) the real ones:
:class:`~dnsentinel.verdict_cache.cache.VerdictCache`,
:class:`~dnsentinel.stream_processor.scorer.ModelHolder`, Faust's producer and
:class:`~dnsentinel.stream_processor.es_sink.EsSink`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Awaitable, Callable, Iterable, Mapping, Protocol, Sequence

if TYPE_CHECKING:  # annotations only: the consumer imports this module without the model or ES code
    from dnsentinel.verdict_cache.keys import Verdict
    from dnsentinel.stream_processor.activity import Fields
    from dnsentinel.stream_processor.es_sink import DocRef
    from dnsentinel.stream_processor.scorer import Scored
    from dnsentinel.stream_processor.triage import Parsed, Record
    from dnsentinel.verdict_cache.alerts import Signal

Token = dict[int, int] | None
"""What acknowledges one consumed batch: its highest offset per partition (None: nothing to commit)."""
Ack = Callable[[list[Token]], None]
"""Commits the batches of these tokens (their effects are stored everywhere)."""


class VerdictStore(Protocol):
    """The Redis side (SPEC §1.3-1.4): decisions for names, verdicts written."""

    def decide_many(self, names: Iterable[str]) -> Mapping[str, str]: ...

    def put_verdicts(self, verdicts: Iterable[Verdict]) -> object: ...


class BatchScorer(Protocol):
    """The model side: one call decides a list of scorable names."""

    async def score(self, names: Sequence[str]) -> Scored: ...

    def score_now(self, names: Sequence[str]) -> Scored:
        """The same, blocking, in the caller's thread (the verdict lane's own thread)."""
        ...


class BatchSource(Protocol):
    """Where the verdict lane's batches come from (consumer.py): called from the lane's own thread."""

    @property
    def stopping(self) -> bool: ...

    def fetch(self) -> tuple[list[Record], Token]:
        """The next batch and its ack token; blocks briefly, ``([], None)`` when nothing came."""
        ...


class Publisher(Protocol):
    """``await publish(topic, key, value)`` enqueues a Kafka message and returns its delivery future."""

    async def __call__(self, topic: str, key: bytes | None, value: bytes) -> Awaitable[object]: ...


class CountsSink(Protocol):
    """The Elasticsearch side: takes a flush's documents and calls ``on_done`` once they are stored."""

    def submit(self, docs: list[DocRef], actions: list[Fields] | None = None, events: int = 0,
               on_done: Callable[[], object] | None = None) -> None: ...


class DetectionHook(Protocol):
    """The behaviour detections as the batch pipeline feeds them (detections/service.py)."""

    def observe(self, parsed: Sequence[Parsed], known: dict[str, str], verdicts: Iterable[Verdict]) -> list[Signal]: ...

    async def after_batch(self, signals: list[Signal], deliveries: list[Awaitable[object]]) -> None: ...

    async def tick(self) -> None: ...
