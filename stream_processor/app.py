"""The Faust application: the queries topic in, verdicts out.

:func:`create_app` wires a :class:`~dnsentinel.stream_processor.worker.BatchProcessor`
to Faust: Faust runs the service (lifecycle, web views, timers that poll the
model registry and flush Elasticsearch, the producer of verdicts and dead
letters, a task following the Redis changes channel). The queries topic is
read by :class:`~dnsentinel.stream_processor.consumer.BatchConsumer` (librdkafka,
whole batches, consumer group ``worker.app_id``) rather than a Faust agent,
whose per-message machinery cost most of the worker's CPU (consumer.py). A
batch's offsets are committed only once the sink has written its counts, so
only offsets whose effects are stored everywhere are committed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

import faust
from faust.app.base import BootStrategy

from dnsentinel.settings import Settings, get_settings
from dnsentinel.stream_processor.es_schema import ensure_templates_async
from dnsentinel.stream_processor.consumer import BatchConsumer, consumer_config
from dnsentinel.stream_processor.es_sink import EsSink
from dnsentinel.stream_processor.metrics import Metrics
from dnsentinel.stream_processor.scorer import ModelHolder
from dnsentinel.stream_processor.worker import BatchProcessor, Topics

log = logging.getLogger(__name__)


def _broker_credentials(s: Settings) -> Any:
    k = s.kafka
    if k.security_protocol == "PLAINTEXT":
        return None
    import ssl

    ctx = None
    if k.security_protocol in ("SSL", "SASL_SSL"):
        ctx = ssl.create_default_context(cafile=str(k.ssl_cafile) if k.ssl_cafile else None)
        if k.ssl_certfile:
            ctx.load_cert_chain(str(k.ssl_certfile), str(k.ssl_keyfile) if k.ssl_keyfile else None)
    if k.security_protocol == "SSL":
        return faust.SSLCredentials(ctx)
    return faust.SASLCredentials(
        username=k.sasl_username, password=k.sasl_password.get_secret_value() if k.sasl_password else None,
        mechanism=k.sasl_mechanism or "PLAIN", ssl_context=ctx,
    )


def _default_loader(version: str | None) -> Any:
    from dnsentinel.models import load

    return load(version) if version else load()


def _default_current_version() -> str | None:
    from dnsentinel.models.registry import current_version

    return current_version()


def _default_cache(s: Settings) -> Any:
    from dnsentinel.verdict_cache.cache import VerdictCache

    return VerdictCache.from_settings(s)


def create_app(settings: Settings | None = None, *, model_loader: Callable[[str | None], Any] | None = None,
               current_version: Callable[[], str | None] | None = _default_current_version,
               cache: Any = None, es: Any = None, metrics: Metrics | None = None,
               serve_metrics: bool = True) -> faust.App:
    """Build the worker app; the keyword arguments let tests swap in their own collaborators."""
    s = settings or get_settings()
    w = s.worker
    metrics = metrics or Metrics()
    datadir = s.stack.state_dir / "faust" / w.app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)
    class _Boot(BootStrategy):
        enable_kafka_consumer = False  # the queries topic has its own batch consumer
        enable_sensors = False  # Faust's Monitor only watched the per-event stream we no longer use

    class _App(faust.App):
        BootStrategy = _Boot

    app = _App(
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
        topic_allow_declare=True,
        producer_linger_ms=5,
        producer_acks=-1,
        datadir=str(datadir),
    )
    queries_topic = app.topic(s.kafka.queries_topic, partitions=s.kafka.queries_partitions,
                              key_type=bytes, value_type=bytes)
    verdicts_topic = app.topic(s.kafka.verdicts_topic, partitions=s.kafka.verdicts_partitions, compacting=True,
                               key_type=bytes, value_type=bytes)
    dlq_topic = app.topic(s.kafka.dlq_topic, partitions=s.kafka.dlq_partitions,
                          retention=14 * 86400, key_type=bytes, value_type=bytes)

    holder = ModelHolder(model_loader or _default_loader, current_version, metrics)
    state: dict[str, Any] = {}

    async def publish(topic: str, key: bytes | None, value: bytes) -> Any:
        return await app.producer.send(topic, key, value, None, None, None)

    def ack(tokens: list[Any]) -> None:
        consumer: BatchConsumer | None = state.get("consumer")
        if consumer is not None:
            consumer.ack(tokens)

    @app.task
    async def _start() -> None:
        """Collaborators that need the loop: model, Redis, ES templates, metrics endpoint."""
        await holder.start()
        _tune_gc()
        c = cache if cache is not None else _default_cache(s)
        sink = None
        es_client = es
        if es_client is None:
            from elasticsearch import AsyncElasticsearch
            from elasticsearch.serializer import OrjsonSerializer

            # orjson: bulk bodies of thousands of documents per flush; the stdlib encoder was a top cost.
            es_client = AsyncElasticsearch(**s.elasticsearch.client_kwargs(), serializer=OrjsonSerializer())
        try:
            await ensure_templates_async(es_client, prefix=s.elasticsearch.index_prefix)
        except Exception as exc:  # ES down at start: verdicts still flow, the sink retries
            log.warning("cannot install elasticsearch templates now (%s); the sink retries its writes", exc)
            state["templates_pending"] = es_client
        sink = EsSink(es_client, metrics, chunk_size=w.es_bulk_chunk, max_retries=w.es_max_retries,
                      max_pending_actions=w.es_max_pending_actions, max_pending_events=w.es_max_pending_events)
        state["sink_task"] = asyncio.ensure_future(sink.run())
        await queries_topic.maybe_declare()
        await verdicts_topic.maybe_declare()
        await dlq_topic.maybe_declare()
        proc = BatchProcessor(
            cache=c, holder=holder, publish=publish, sink=sink, metrics=metrics,
            topics=Topics(s.kafka.queries_topic, s.kafka.verdicts_topic, s.kafka.dlq_topic),
            es_prefix=s.elasticsearch.index_prefix, batch_max=w.batch_max, lru_size=w.lru_size,
            max_new_per_domain_per_min=w.max_new_names_per_domain_per_min,
            activity_window_s=w.activity_window_s, index_raw_events=w.index_raw_events,
            flush_interval_s=w.es_flush_interval_s, ack=ack,
        )
        state["sink"] = sink
        state["proc"] = proc
        if serve_metrics:
            try:
                metrics.serve(w.metrics_port)
            except OSError as exc:
                log.warning("metrics port %d unavailable (%s); /metrics is still served by the web view",
                            w.metrics_port, exc)
        consumer = BatchConsumer(consumer_config(s.kafka.confluent_config(), w.app_id), s.kafka.queries_topic,
                                 w.batch_max, w.batch_within_s)
        state["consumer"] = consumer

        async def handle(records: list[Any], token: Any) -> None:
            if records:
                await proc.process(records, token)
            if proc.flush_due():
                proc.flush()

        task = state["consume_task"] = asyncio.ensure_future(consumer.run(handle))

        def _crashed(t: asyncio.Future) -> None:
            # A batch that cannot be finished (Kafka publish failed for good, the model raised) stops
            # the worker loudly: its offsets are not committed, the next start replays it.
            if not t.cancelled() and t.exception() is not None:
                log.critical("batch processing failed; stopping the worker", exc_info=t.exception())
                asyncio.ensure_future(app.crash(t.exception()))

        task.add_done_callback(_crashed)
        await _follow_changes(s, proc)

    @app.timer(interval=max(0.1, w.es_flush_interval_s / 2))
    async def _flush() -> None:
        proc = state.get("proc")
        if proc is not None and proc.flush_due():
            proc.flush()
        pending = state.pop("templates_pending", None)
        if pending is not None:
            try:
                await ensure_templates_async(pending, prefix=s.elasticsearch.index_prefix)
            except Exception:
                state["templates_pending"] = pending

    @app.timer(interval=w.model_poll_s)
    async def _reload_model() -> None:
        if holder.model is not None:
            await holder.maybe_reload()

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        sink: EsSink | None = state.get("sink")
        return web.json({
            "ok": holder.model is not None and "proc" in state,
            "model": holder.version,
            "es_backlog": sink.pending_actions if sink else None,
            "es_dropped": sink.dropped_actions if sink else None,
        })

    @app.page("/metrics")
    async def metrics_view(web: Any, request: Any) -> Any:
        from prometheus_client import generate_latest

        return web.bytes(generate_latest(metrics.registry), content_type="text/plain; version=0.0.4")

    from faust import web as faust_web

    @app.page("/score")
    class ScoreView(faust_web.View):
        """``POST {"domains": [...]}``: the offline decision per name (no cache, no writes): score, label, reason."""

        async def post(self, request: Any) -> Any:
            try:
                body = await request.json()
            except ValueError:
                body = None
            domains = body.get("domains") if isinstance(body, dict) else None
            if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains) or len(domains) > 10_000:
                return self.json({"error": "body must be {\"domains\": [up to 10000 strings]}"}, status=400)
            if holder.model is None:
                return self.json({"error": "no model loaded yet"}, status=503)
            scored = await holder.score(domains)
            return self.json({"model": scored.version, "results": [
                {"name": n, "score": round(sc, 4), "label": lb, "reason": why, "model": scored.version}
                for n, sc, lb, why in zip(domains, scored.scores, scored.labels, scored.reasons)
            ]})

    @app.service
    class _Shutdown(faust.Service):  # drains the ES queue on a clean stop
        async def on_stop(self) -> None:
            proc = state.get("proc")
            sink = state.get("sink")
            consumer: BatchConsumer | None = state.get("consumer")
            task = state.get("consume_task")
            if consumer is not None:
                consumer.stop()
                if task is not None:
                    try:
                        await asyncio.wait_for(task, 30.0)
                    except Exception as exc:  # a batch stuck on Redis: its events are replayed
                        log.warning("consumer loop did not stop cleanly (%r)", exc)
            if proc is not None:
                proc.flush()
            if sink is not None:
                await sink.stop(timeout=10.0)
            if consumer is not None:
                await asyncio.get_running_loop().run_in_executor(None, consumer.close)
            holder.close()

    app.dnsentinel_state = state  # type: ignore[attr-defined]
    app.dnsentinel_metrics = metrics  # type: ignore[attr-defined]
    return app


def _tune_gc() -> None:
    """Keep Python's cyclic GC off the hot path.

    The worker allocates a few small objects per event and keeps millions alive (TensorFlow's
    modules, the LRU, the document store); with the default thresholds young collections ran every
    700 allocations and older ones rescanned all of that, a fifth of the pipeline's CPU. The
    startup objects are frozen (never scanned again) and collections run less often; the
    per-event objects hold no cycles, so memory does not grow for it.
    """
    import gc
    import sys

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    # The loop thread gives up the GIL at every socket wait; with the ES document builder, the
    # consume thread and TensorFlow's Python side busy, each re-acquisition could wait a full
    # switch interval (5 ms), many times per batch. 1 ms bounds that wait.
    sys.setswitchinterval(0.001)


async def _follow_changes(s: Settings, proc: BatchProcessor) -> None:
    """Drop LRU entries announced on the Redis changes channel; reconnects clear the LRU."""
    import redis.asyncio as aioredis

    from dnsentinel.verdict_cache.keys import changes_channel

    channel = changes_channel(s.redis.key_prefix)
    while True:
        client = aioredis.Redis.from_url(s.redis.url, **s.redis.client_kwargs())
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
