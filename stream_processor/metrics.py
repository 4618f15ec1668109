"""Prometheus metrics of one worker (served on ``worker.metrics_port``).

Each :class:`Metrics` owns its registry so tests and several in-process
workers never collide on the global default registry.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 1, 2.5, 5, 10, 30)
_BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2000, 4000, 8000)


class Metrics:
    """Everything the issue asks to observe, prefixed ``dnsentinel_worker_``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        p = "dnsentinel_worker_"
        self.events_in = Counter(p + "events_in", "Query events consumed", registry=r)
        self.invalid = Counter(p + "invalid_events", "Events dead-lettered, by reason", ["reason"], registry=r)
        self.unscorable = Counter(p + "unscorable_names", "Valid events whose name is never scored, by reason",
                                  ["reason"], registry=r)
        self.cache_hits = Counter(p + "cache_hits", "Scorable names already known, by where they were found",
                                  ["where"], registry=r)
        self.scored = Counter(p + "scored_names", "Names scored by the model", registry=r)
        self.flood_limited = Counter(p + "flood_limited_names",
                                     "New names left unscored by the per-domain limit", registry=r)
        self.batches = Counter(p + "batches", "Batches taken from the stream", registry=r)
        self.batch_size = Histogram(p + "batch_size", "Events per batch taken from the stream",
                                    buckets=_BATCH_BUCKETS, registry=r)
        self.predict_size = Histogram(p + "predict_batch_size", "Names per model call",
                                      buckets=_BATCH_BUCKETS, registry=r)
        self.inference = Histogram(p + "inference_seconds", "Time of one model predict call", registry=r)
        self.verdicts = Counter(p + "verdicts", "Verdicts written, by label", ["label"], registry=r)
        self.verdict_latency = Histogram(p + "first_event_to_verdict_seconds",
                                         "From the first event of an unseen name to its verdict in Redis",
                                         buckets=_LATENCY_BUCKETS, registry=r)
        self.redis_latency = Histogram(p + "redis_seconds", "Redis round trips (lookups and writes)", registry=r)
        self.redis_errors = Counter(p + "redis_errors", "Redis failures", ["kind"], registry=r)
        self.es_backlog = Gauge(p + "es_backlog_actions", "Elasticsearch actions waiting to be written", registry=r)
        self.es_errors = Counter(p + "es_errors", "Elasticsearch failures, by kind", ["kind"], registry=r)
        self.es_dropped = Counter(p + "es_dropped_actions",
                                  "Elasticsearch actions dropped because the backlog exceeded its bound", registry=r)
        self.es_latency = Histogram(p + "es_bulk_seconds", "Time of one Elasticsearch bulk write", registry=r)
        self.model_version = Gauge(p + "model_info", "Model in use (value 1)", ["version"], registry=r)
        self.model_reloads = Counter(p + "model_reloads", "Hot model swaps", registry=r)
        self.lru_size = Gauge(p + "lru_names", "Names in the in-worker cache", registry=r)

    def serve(self, port: int) -> None:
        """Expose ``/metrics`` on ``port`` (a daemon thread, stopped with the process)."""
        start_http_server(port, registry=self.registry)
