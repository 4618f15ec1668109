"""Prometheus metrics of one worker (served on ``worker.metrics_host``:``worker.metrics_port``).

Each :class:`Metrics` owns its registry so tests and several in-process
workers never collide on the global default registry.
"""

from __future__ import annotations

import gc
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_LATENCY_BUCKETS = (0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 1,
                    2.5, 5, 10, 30)
_STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
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
        self.model_registry_errors = Counter(p + "model_registry_errors",
                                             "Polls of the model registry that failed (the model in use stays)",
                                             registry=r)
        self.lru_size = Gauge(p + "lru_names", "Names in the in-worker cache", registry=r)
        self.signals = Counter(p + "detection_signals", "Queries forwarded to the per-client detections", registry=r)
        self.alerts = Counter(p + "alerts", "Behaviour alerts raised (or updated), by kind", ["kind"], registry=r)
        self.alert_latency = Histogram(p + "alert_latency_seconds",
                                       "From an alert's last evidence event to the alert (event-time windows)",
                                       buckets=(1, 5, 10, 20, 30, 45, 60, 90, 120, 300, 900, 3600), registry=r)
        self.promoted = Counter(p + "alert_promoted_names",
                                "Uncertain names a DGA-host alert made malicious", registry=r)
        self.newly_observed = Counter(p + "newly_observed_domains",
                                      "Registrable domains this deployment saw for the first time", registry=r)
        self.late_events = Gauge(p + "detection_late_events",
                                 "Events that arrived for an already closed window, by stage", ["stage"], registry=r)
        self.stage = Histogram(p + "stage_seconds",
                               "Time per batch in each step: transit (its oldest scorable event's time to triage done), "
                               "triage, lookup, score (model and Redis write), redis_write, lane_full (the verdict thread "
                               "waiting for room in the completion lane), complete (the completion lane's own "
                               "work), flush", ["stage"], buckets=_STAGE_BUCKETS, registry=r)
        self.gc_pause = Histogram(p + "gc_pause_seconds", "Cyclic garbage collections, by generation",
                                  ["generation"], buckets=_STAGE_BUCKETS, registry=r)
        self.consumer_lag = Gauge(p + "consumer_lag",
                                  "Messages behind the partition's high watermark: of the committed offset (as "
                                  "kafka-consumer-groups shows it) and of the last consumed one",
                                  ["topic", "partition", "of"], registry=r)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Expose ``/metrics`` on ``host:port`` (a daemon thread, stopped with the process)."""
        start_http_server(port, addr=host, registry=self.registry)

    def set_lag(self, topic: str, lags: dict[int, tuple[int, int]]) -> None:
        """Per partition (behind the committed offset, behind the consumed one); -1: not known yet."""
        for partition, (committed, consumed) in lags.items():
            for of, lag in (("committed", committed), ("consumed", consumed)):
                if lag >= 0:
                    self.consumer_lag.labels(topic=topic, partition=str(partition), of=of).set(lag)

    def forget_lag(self, topic: str, partitions: list[int]) -> None:
        """Partitions this worker no longer owns: their lag is another worker's to report."""
        for partition in partitions:
            for of in ("committed", "consumed"):
                try:
                    self.consumer_lag.remove(topic, str(partition), of)
                except KeyError:
                    pass

    def watch_gc(self) -> None:
        """Time every cyclic collection (``gc.callbacks``): a long one holds up every batch behind it."""
        started: dict[str, float] = {}
        pause = self.gc_pause

        def on_gc(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                started["t"] = time.perf_counter()
            elif "t" in started:
                pause.labels(generation=str(info.get("generation", -1))).observe(time.perf_counter() - started.pop("t"))

        gc.callbacks.append(on_gc)
