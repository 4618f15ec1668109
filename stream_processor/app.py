"""The Faust application: the queries topic in, verdicts out.

:func:`create_app` builds a :class:`WorkerApp` (Faust's App without its own consumer and
sensors) and the :class:`WorkerService` it runs: the worker's collaborators, each named (model
holder, verdict cache, Elasticsearch client and sink, batch processor, batch consumer), with
their lifecycle. Faust runs the service: lifecycle, web views, timers that poll the model
registry and flush Elasticsearch, the producer of verdicts and dead letters. The queries topic
is read by :class:`~dnsentinel.stream_processor.consumer.BatchConsumer` (librdkafka, whole
batches, consumer group ``worker.app_id``) rather than a Faust agent, whose per-message
machinery cost most of the worker's CPU (consumer.py). A batch's offsets are committed only
once the sink has written its counts, so only offsets whose effects are stored everywhere are
committed.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Awaitable, Callable, cast

import faust
from faust.app.base import BootStrategy
from faust.web import Request, Response, View

from dnsentinel.settings import Settings, get_settings
from dnsentinel.verdict_cache.es_schema import ensure_templates_async
from dnsentinel.stream_processor.activity import Fields
from dnsentinel.stream_processor.consumer import BatchConsumer, consumer_config
from dnsentinel.stream_processor.es_sink import EsSink
from dnsentinel.stream_processor.metrics import Metrics
from dnsentinel.stream_processor.ports import Token, VerdictStore
from dnsentinel.stream_processor.scorer import ModelHolder, ModelLoader
from dnsentinel.stream_processor.triage import Record
from dnsentinel.stream_processor.worker import BatchProcessor, Topics

if TYPE_CHECKING:
    from elasticsearch import AsyncElasticsearch

    from dnsentinel.stream_processor.detections.service import AlertCache, DetectionService
    from dnsentinel.stream_processor.rollup import RollupReport
    from faust.types.auth import CredentialsT

    from dnsentinel.models.detector import Scorer

log = logging.getLogger(__name__)

MAX_SCORE_NAMES = 10_000
"""The most names one ``POST /score`` may ask about."""


class _Boot(BootStrategy):
    enable_kafka_consumer = False  # the queries topic has its own batch consumer
    enable_sensors = False  # Faust's Monitor only watched the per-event stream we no longer use


class WorkerApp(faust.App):
    """Faust's App as the worker uses it, holding the :class:`WorkerService` it runs."""

    BootStrategy = _Boot
    worker_service: WorkerService | None = None

    async def on_stop(self) -> None:
        """Drain the worker first, while the producer still delivers what its last batch publishes."""
        if self.worker_service is not None:
            try:
                await self.worker_service.stop()
            except Exception:
                log.exception("the worker did not stop cleanly; unacked events are replayed")
        await super().on_stop()


def _registry_model(version: str | None) -> Scorer:
    from dnsentinel.models import device, load

    return load(version, placement=device.for_worker(device.configure()))


def _registry_version() -> str | None:
    from dnsentinel.models.registry import current_version

    return current_version()


def create_app(settings: Settings | None = None, *, model_loader: ModelLoader = _registry_model,
               current_version: Callable[[], str | None] | None = _registry_version,
               cache: VerdictStore | None = None, es: AsyncElasticsearch | None = None,
               metrics: Metrics | None = None, serve_metrics: bool = True) -> WorkerApp:
    """Build the worker app; the keyword arguments let tests swap in their own collaborators."""
    s = settings or get_settings()
    metrics = metrics or Metrics()
    app = _faust_app(s)
    models = ModelHolder(model_loader, current_version, metrics)
    service = app.worker_service = WorkerService(app=app, settings=s, models=models, metrics=metrics, cache=cache,
                                                 es=es, serve_metrics=serve_metrics)
    w = s.worker
    app.task(service.start)
    app.timer(interval=max(0.1, w.es_flush_interval_s / 2))(service.flush_tick)
    app.timer(interval=w.model_poll_s)(service.reload_tick)
    app.timer(interval=s.elasticsearch.retention_interval_s)(service.retention_tick)
    app.timer(interval=s.elasticsearch.rollup_interval_s)(service.rollup_tick)
    app.page("/health")(HealthView)
    app.page("/metrics")(MetricsView)
    app.page("/score")(ScoreView)
    return app


@dataclass(eq=False, kw_only=True)
class WorkerService:
    """One worker's collaborators and their lifecycle: started by a Faust task, stopped by the app.

    ``cache`` and ``es`` are made from the settings at start unless given; the rest of the
    running parts (sink, batch processor, consumer, their tasks) exist once :meth:`start` made them.
    """

    app: faust.App
    settings: Settings
    models: ModelHolder
    metrics: Metrics
    cache: VerdictStore | None = None
    es: AsyncElasticsearch | None = None
    serve_metrics: bool = True
    sink: EsSink | None = field(default=None, init=False)
    proc: BatchProcessor | None = field(default=None, init=False)
    consumer: BatchConsumer | None = field(default=None, init=False)
    detections: DetectionService | None = field(default=None, init=False)
    signals_consumer: BatchConsumer | None = field(default=None, init=False)
    _signals: asyncio.Future[None] | None = field(default=None, init=False)
    _consuming: asyncio.Future[None] | None = field(default=None, init=False)
    _sink_running: asyncio.Future[None] | None = field(default=None, init=False)
    _templates_pending: bool = field(default=False, init=False)
    gc: GcPolicy = field(init=False)

    def __post_init__(self) -> None:
        self.gc = GcPolicy(self.settings.worker.gc_full_collect_s)

    async def start(self) -> None:
        """The parts that need the loop: model, Redis, ES templates and sink, topics, metrics endpoint,
        consumer; then follow the Redis changes channel for as long as the worker runs."""
        s, w = self.settings, self.settings.worker
        await self.models.start()
        self.gc.start()
        self.metrics.watch_gc()
        cache = self.cache = self.cache if self.cache is not None else _default_cache(s)
        es = self.es = self.es if self.es is not None else _default_es(s)
        await self._install_templates(es)
        sink = self.sink = EsSink.from_settings(es, self.metrics, w)
        self._sink_running = asyncio.ensure_future(sink.run())
        await self._declare_topics()
        k = s.kafka
        detections = self._detections(cache, sink)
        proc = self.proc = BatchProcessor(
            cache=cache, scorer=self.models, publish=self.publish, sink=sink, metrics=self.metrics,
            topics=Topics(k.queries_topic, k.verdicts_topic, k.dlq_topic), es_prefix=s.elasticsearch.index_prefix,
            settings=w, ack=self.ack, detections=detections)
        if self.serve_metrics:
            try:
                self.metrics.serve(w.metrics_port, w.metrics_host)
            except OSError as exc:
                log.warning("metrics port %s:%d unavailable (%s); /metrics is still served by the web view",
                            w.metrics_host, w.metrics_port, exc)
        consumer = self.consumer = self._consumer(w.app_id, k.queries_topic, on_moved=sink.invalidate)
        self._consuming = asyncio.ensure_future(proc.run(consumer))  # the verdict lane in its own thread
        self._consuming.add_done_callback(self._crashed)
        if detections is not None:
            self._start_signals(detections)
        await _follow_changes(s, proc)

    def _detections(self, cache: VerdictStore, sink: EsSink) -> DetectionService | None:
        """The behaviour detections (detections/service.py), unless ``detections.enabled`` is off."""
        s = self.settings
        if not s.detections.enabled:
            return None
        from dnsentinel.stream_processor.detections.service import DetectionService

        models = self.models
        self.detections = DetectionService(
            settings=s.detections, publish=self.publish, cache=cast("AlertCache", cache), metrics=self.metrics,
            es_prefix=s.elasticsearch.index_prefix, verdicts_topic=s.kafka.verdicts_topic, sink=sink,
            popular=lambda d: models.model is not None and models.model.prior.vouches_for(d),
            observer=s.worker.app_id)
        return self.detections

    def _start_signals(self, detections: DetectionService) -> None:
        """Stage 2 of the detections: ``dns.signals`` (keyed by client) in its own consumer group."""
        s, w = self.settings, self.settings.worker
        consumer = self.signals_consumer = self._consumer(f"{w.app_id}-signals", s.detections.signals_topic)

        async def handle(records: list[Record], token: Token) -> None:
            await detections.on_signals(records, token)
            if token:
                consumer.ack([token])

        self._signals = asyncio.ensure_future(consumer.run(handle))
        self._signals.add_done_callback(self._crashed)

    def _consumer(self, group: str, topic: str, on_moved: Callable[[], object] | None = None) -> BatchConsumer:
        """A batch consumer of ``topic`` in ``group`` whose lag per partition goes to the metrics;
        ``on_moved`` runs whenever partitions are assigned or revoked."""
        s, w, m = self.settings, self.settings.worker, self.metrics

        def revoked(partitions: list[int]) -> None:
            m.forget_lag(topic, partitions)
            if on_moved is not None:
                on_moved()

        return BatchConsumer(consumer_config(s.kafka.confluent_config(), group), topic, w.batch_max, w.batch_within_s,
                             w.batch_linger_s, on_lag=lambda lags: m.set_lag(topic, lags), on_revoked=revoked,
                             on_assigned=(lambda _partitions: on_moved()) if on_moved is not None else None)

    async def _declare_topics(self) -> None:
        k = self.settings.kafka
        d = self.settings.detections
        for name, partitions, options in ((k.queries_topic, k.queries_partitions, {}),
                                          (k.verdicts_topic, k.verdicts_partitions, {"compacting": True}),
                                          (k.dlq_topic, k.dlq_partitions, {"retention": 14 * 86400}),
                                          (d.signals_topic, k.queries_partitions, {"retention": 86400}),
                                          (d.alerts_topic, 1, {"retention": 30 * 86400})):
            topic = self.app.topic(name, partitions=partitions, key_type=bytes, value_type=bytes, **options)
            await topic.maybe_declare()

    async def _install_templates(self, es: AsyncElasticsearch) -> None:
        """Index templates; while Elasticsearch is down verdicts still flow, and the flush timer retries."""
        try:
            await ensure_templates_async(es, prefix=self.settings.elasticsearch.index_prefix)
        except Exception as exc:
            if not self._templates_pending:
                log.warning("cannot install elasticsearch templates now (%s); the sink retries its writes", exc)
            self._templates_pending = True
        else:
            self._templates_pending = False

    async def publish(self, topic: str, key: bytes | None, value: bytes) -> Awaitable[object]:
        """The :class:`~dnsentinel.stream_processor.ports.Publisher` of verdicts and dead letters."""
        return cast(Awaitable[object], await self.app.producer.send(topic, key, value, None, None, None))

    def ack(self, tokens: list[Token]) -> None:
        if self.consumer is not None:
            self.consumer.ack(tokens)

    def _crashed(self, task: asyncio.Future[None]) -> None:
        """A batch that cannot be finished (Kafka publish failed for good, the model raised) stops the
        worker loudly: its offsets are not committed, the next start replays it."""
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            log.critical("batch processing failed; stopping the worker", exc_info=exc)
            asyncio.ensure_future(self.app.crash(exc))

    async def flush_tick(self) -> None:
        if self.proc is not None and self.proc.flush_due():
            self.proc.flush()
        self.gc.tick()
        if self._templates_pending and self.es is not None:
            await self._install_templates(self.es)

    async def retention_tick(self) -> None:
        """Apply the Elasticsearch retention (verdict_cache/es_schema.py); a failure is logged, retried next tick."""
        es = self.settings.elasticsearch
        try:
            deleted = await asyncio.to_thread(_apply_retention, self.settings)
        except Exception as exc:
            log.warning("elasticsearch retention not applied now (%s); next try in %.0fs", exc, es.retention_interval_s)
            return
        if deleted:
            log.info("retention: deleted %d index(es) past %d days: %s", len(deleted), es.retention_days,
                     ", ".join(deleted))

    async def rollup_tick(self) -> None:
        """Bring the hourly roll-up up to date (stream_processor/rollup.py); a failure is logged, retried next tick."""
        es = self.settings.elasticsearch
        try:
            report = await asyncio.to_thread(_roll_up, self.settings)
        except Exception as exc:
            log.warning("elasticsearch hourly roll-up not brought up to date now (%s); next try in %.0fs",
                        exc, es.rollup_interval_s)
            return
        if report.hours:
            log.info("roll-up: %d hour(s) rolled (%d documents from %d minute documents, %d stale deleted) in %.1fs",
                     report.hours, report.written, report.minute_docs, report.deleted, report.seconds)

    async def reload_tick(self) -> None:
        if self.models.model is not None:
            await self.models.maybe_reload()

    def health(self) -> Fields:
        sink = self.sink
        return {
            "ok": self.models.model is not None and self.proc is not None,
            "model": self.models.version,
            "es_backlog": sink.pending_actions if sink else None,
            "es_dropped": sink.dropped_actions if sink else None,
        }

    async def score(self, body: object) -> tuple[Fields, int]:
        """``{"domains": [...]}`` -> (the offline decision per name: score, label, reason; HTTP status)."""
        domains = body.get("domains") if isinstance(body, dict) else None
        if not (isinstance(domains, list) and all(isinstance(d, str) for d in domains)
                and len(domains) <= MAX_SCORE_NAMES):
            return {"error": f"body must be {{\"domains\": [up to {MAX_SCORE_NAMES} strings]}}"}, 400
        if self.models.model is None:
            return {"error": "no model loaded yet"}, 503
        scored = await self.models.score(domains)
        return {"model": scored.version, "results": [
            {"name": n, "score": round(sc, 4), "label": lb, "reason": why, "model": scored.version}
            for n, sc, lb, why in zip(domains, scored.scores, scored.labels, scored.reasons)
        ]}, 200

    async def stop(self) -> None:
        """A clean stop: the consume loop ends after its batch, the last counts reach Elasticsearch."""
        consumer, proc, sink = self.consumer, self.proc, self.sink
        if self.signals_consumer is not None:
            self.signals_consumer.stop()
            if self._signals is not None:
                try:
                    await asyncio.wait_for(self._signals, 30.0)
                except Exception as exc:
                    log.warning("signals loop did not stop cleanly (%r)", exc)
            await asyncio.get_running_loop().run_in_executor(None, self.signals_consumer.close)
        if consumer is not None:
            consumer.stop()
            if self._consuming is not None:
                try:
                    await asyncio.wait_for(self._consuming, 30.0)
                except Exception as exc:  # a batch stuck on Redis: its events are replayed
                    log.warning("consumer loop did not stop cleanly (%r)", exc)
        if proc is not None:
            try:
                await asyncio.wait_for(proc.drain(), 30.0)  # the completion lane's last batches
            except Exception as exc:  # not completed, so not acked: replayed by the next owner
                log.warning("completion lane did not drain cleanly (%r)", exc)
            proc.flush()
        if sink is not None:
            await sink.stop(timeout=10.0)
        if consumer is not None:
            await asyncio.get_running_loop().run_in_executor(None, consumer.close)
        self.models.close()


def _service(view: View) -> WorkerService:
    service = cast(WorkerApp, view.app).worker_service
    assert service is not None, "create_app sets it"
    return service


class HealthView(View):
    """``GET /health``: ``{"ok", "model", "es_backlog", "es_dropped"}``."""

    async def get(self, request: Request) -> Response:
        return self.json(_service(self).health())


class MetricsView(View):
    """``GET /metrics``: Prometheus text (also on ``worker.metrics_port``)."""

    async def get(self, request: Request) -> Response:
        from prometheus_client import generate_latest

        return self.bytes(generate_latest(_service(self).metrics.registry), content_type="text/plain; version=0.0.4")


class ScoreView(View):
    """``POST {"domains": [...]}``: the offline decision per name (no cache, no writes): score, label, reason."""

    async def post(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        result, status = await _service(self).score(body)
        return self.json(result, status=status)


def _faust_app(s: Settings) -> WorkerApp:
    w = s.worker
    datadir = s.stack.state_dir / "faust" / w.app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)
    return WorkerApp(
        w.app_id,
        broker=[f"kafka://{h.strip()}" for h in s.kafka.bootstrap_servers.split(",")],
        broker_credentials=_broker_credentials(s),
        key_serializer="raw",
        value_serializer="raw",
        store="memory://",
        web_enabled=True,
        web_port=w.web_port,
        web_bind="127.0.0.1",
        topic_partitions=s.kafka.queries_partitions,
        topic_replication_factor=s.kafka.replication_factor,  # Faust's own topics: min ISR holds for them too
        topic_allow_declare=True,
        producer_linger_ms=5,
        producer_acks=-1,
        datadir=str(datadir),
    )


def _broker_credentials(s: Settings) -> CredentialsT | None:
    k = s.kafka
    if k.security_protocol == "PLAINTEXT":
        return None
    import ssl

    from dnsentinel.errors import ConfigError

    ctx = None
    if k.security_protocol in ("SSL", "SASL_SSL"):
        # The CA alone (no client certificate) is the usual SASL_SSL set-up: the password authenticates.
        try:
            ctx = ssl.create_default_context(cafile=str(k.ssl_cafile) if k.ssl_cafile else None)
            if k.ssl_certfile:
                ctx.load_cert_chain(str(k.ssl_certfile), str(k.ssl_keyfile) if k.ssl_keyfile else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"kafka TLS files (ssl_cafile={k.ssl_cafile}, ssl_certfile={k.ssl_certfile}): "
                              f"cannot load them ({getattr(exc, 'strerror', None) or exc})") from None
    if k.security_protocol == "SSL":
        return faust.SSLCredentials(ctx)
    return faust.SASLCredentials(
        username=k.sasl_username, password=k.sasl_password.get_secret_value() if k.sasl_password else None,
        mechanism=k.sasl_mechanism or "PLAIN", ssl_context=ctx,
    )


def _default_cache(s: Settings) -> VerdictStore:
    from dnsentinel.verdict_cache.cache import VerdictCache

    return VerdictCache.from_settings(s)


def _apply_retention(s: Settings) -> list[str]:
    from elasticsearch import Elasticsearch

    from dnsentinel.verdict_cache.es_schema import apply_retention

    es = s.elasticsearch
    with Elasticsearch(**es.client_kwargs()) as client:  # type: ignore[arg-type]
        return apply_retention(client, es.retention_days, prefix=es.index_prefix)


def _roll_up(s: Settings) -> RollupReport:
    from elasticsearch import Elasticsearch

    from dnsentinel.stream_processor.rollup import roll_up

    es = s.elasticsearch
    with Elasticsearch(**es.client_kwargs()) as client:  # type: ignore[arg-type]
        # A day's composite pages over a busy cluster can take longer than a DNS-path request may.
        return roll_up(client.options(request_timeout=120), es.index_prefix, settle_s=es.rollup_settle_s, max_hours=24 * 7)


def _default_es(s: Settings) -> AsyncElasticsearch:
    from elasticsearch import AsyncElasticsearch
    from elasticsearch.serializer import OrjsonSerializer

    # orjson: bulk bodies of thousands of documents per flush; the stdlib encoder was a top cost.
    return AsyncElasticsearch(**s.elasticsearch.client_kwargs(), serializer=OrjsonSerializer())


class GcPolicy:
    """Keep Python's cyclic GC off the verdict path.

    The worker allocates a few small objects per event and keeps millions alive (TensorFlow's
    modules, the LRU, the document store). With the default thresholds young collections ran every
    700 allocations and older ones rescanned all of that, a fifth of the pipeline's CPU; with
    thresholds of 50,000/20/100 alone, young collections still paused 10-180 ms and older ones up to
    0.4 s at 5,000 events/s, each holding up every batch behind it (the verdict p99).

    So: the start-up objects are frozen (never scanned again), and every flush tick (a few times a
    second) freezes what survived since the last one, so a collection only ever scans the objects
    of the last fraction of a second. Per-event objects hold no reference cycles and are freed by
    reference counting, frozen or not; only cyclic garbage that was frozen before it died waits for
    the full collection every ``worker.gc_full_collect_s`` (one pause of about a second an hour).
    """

    def __init__(self, full_every_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.full_every_s = full_every_s
        self._clock = clock
        self._last_full = clock()

    def start(self) -> None:
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        # The loop thread gives up the GIL at every socket wait; with the ES document builder, the
        # consume thread and TensorFlow's Python side busy, each re-acquisition could wait a full
        # switch interval (5 ms), many times per batch. 1 ms bounds that wait.
        sys.setswitchinterval(0.001)

    def tick(self) -> None:
        now = self._clock()
        if now - self._last_full >= self.full_every_s:
            self._last_full = now
            t0 = time.perf_counter()
            gc.unfreeze()
            found = gc.collect()
            log.info("full garbage collection: %d unreachable objects in %.2f s", found, time.perf_counter() - t0)
        gc.freeze()


async def _follow_changes(s: Settings, proc: BatchProcessor) -> None:
    """Drop LRU entries announced on the Redis changes channel; reconnects clear the LRU."""
    from dnsentinel.redis_client import async_client
    from dnsentinel.verdict_cache.keys import changes_channel

    channel = changes_channel(s.redis.key_prefix)
    while True:
        client = async_client(s.redis)  # under Sentinel: the current master
        try:
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            await pubsub.subscribe(channel)
            proc.lru.clear()  # whatever changed while we were not listening
            while True:
                msg = await pubsub.get_message(timeout=1.0)
                if msg and msg.get("type") == "message":
                    data = msg["data"]
                    proc.on_change(data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("redis changes channel lost (%s); reconnecting", exc)
            await asyncio.sleep(1.0)
        finally:
            try:
                await client.aclose()
            except Exception:
                pass
