"""The worker's latency work (issue 18), with fakes: the two lanes, the GC policy, lag and metrics."""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import sys
import urllib.request

import pytest

from dnsentinel.settings import Settings
from dnsentinel.stream_processor.app import GcPolicy
from dnsentinel.stream_processor.consumer import lags
from dnsentinel.stream_processor.metrics import Metrics

from .fakes import FakeModel, FakePublisher, event, records
from .test_sp_pipeline import make_proc, sample


def test_verdicts_reach_redis_before_the_completion_lane_runs():
    """handle() returns once the batch's verdicts are in Redis; messages, counts and the ack follow."""
    model = FakeModel({"evil.com": 0.99})
    proc, pub, acked = make_proc(model)

    async def run() -> None:
        await proc.handle(records([event("evil.com"), event("good.org")]), {0: 1})
        assert proc.cache.verdicts["evil.com"].label == "malicious"  # in Redis now
        assert pub.sent == [] and proc.agg.events == 0  # the completion lane has not run yet
        await proc.drain()
        assert [o["name"] for o in pub.on("verdicts")] == ["evil.com", "good.org"] and proc.agg.events == 2
        proc.flush()

    asyncio.run(run())
    assert acked == [{0: 1}]
    for stage in ("triage", "lookup", "score", "redis_write", "aggregate", "complete"):
        assert sample(proc.metrics, "dnsentinel_worker_stage_seconds_count", stage=stage) == 1, stage


def test_batches_complete_in_order_and_acks_follow_them():
    proc, pub, acked = make_proc(FakeModel())

    async def run() -> None:
        for i in range(20):  # more than the lane holds: the verdict lane waits for room
            await proc.handle(records([event(f"n{i}.com")], start=i), {0: i})
        await proc.drain()
        proc.flush()

    asyncio.run(run())
    assert [o["name"] for o in pub.on("verdicts")] == [f"n{i}.com" for i in range(20)]
    assert acked == [{0: i} for i in range(20)]


def test_a_failed_completion_stops_the_consume_loop_and_is_never_acked():
    proc, _, acked = make_proc(FakeModel())

    class Broken(FakePublisher):
        async def __call__(self, topic, key, value):
            raise RuntimeError("kafka is gone")

    proc.publish = Broken()

    async def run() -> None:
        await proc.handle(records([event("a.com")]), {0: 0})
        with pytest.raises(RuntimeError, match="completion lane"):
            for _ in range(100):
                await proc.handle([], None)
                await asyncio.sleep(0.01)
        proc.flush()

    asyncio.run(run())
    assert acked == []


def test_gc_policy_freezes_survivors_and_collects_in_full_on_schedule():
    now = [0.0]
    policy = GcPolicy(full_every_s=60, clock=lambda: now[0])
    try:
        policy.start()
        frozen = gc.get_freeze_count()
        keep = [[i] for i in range(1000)]  # new survivors
        policy.tick()
        assert gc.get_freeze_count() > frozen + 500
        now[0] = 61.0
        policy.tick()  # the hourly full collection unfreezes, collects, freezes again
        assert gc.get_freeze_count() > 0 and keep
    finally:
        gc.unfreeze()
        gc.set_threshold(700, 10, 10)
        sys.setswitchinterval(0.005)


def test_consumer_lag_from_librdkafka_statistics():
    stats = {"topics": {"q": {"partitions": {
        "0": {"hi_offset": 100, "app_offset": 90, "consumer_lag": 25},
        "1": {"hi_offset": 50, "app_offset": -1001, "consumer_lag": -1},
        "2": {"hi_offset": 70, "app_offset": 70, "consumer_lag": 0},
        "-1": {"hi_offset": -1, "app_offset": -1, "consumer_lag": -1}}}}}
    assert lags(json.dumps(stats), "q", {0, 1}) == {0: (25, 10), 1: (-1, -1)}
    m = Metrics()
    m.set_lag("q", lags(json.dumps(stats), "q", {0, 1, 2}))
    assert sample(m, "dnsentinel_worker_consumer_lag", topic="q", partition="0", of="committed") == 25
    assert sample(m, "dnsentinel_worker_consumer_lag", topic="q", partition="0", of="consumed") == 10
    assert m.registry.get_sample_value("dnsentinel_worker_consumer_lag",
                                       {"topic": "q", "partition": "1", "of": "committed"}) is None  # not known yet
    m.forget_lag("q", [0])
    assert m.registry.get_sample_value("dnsentinel_worker_consumer_lag",
                                       {"topic": "q", "partition": "0", "of": "committed"}) is None


def test_metrics_endpoint_binds_the_configured_host_only():
    assert Settings().worker.metrics_host == "127.0.0.1"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    m = Metrics()
    m.verdict_latency.observe(0.012)
    m.serve(port, "127.0.0.1")
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'dnsentinel_worker_first_event_to_verdict_seconds_bucket{le="0.015"} 1.0' in text
    assert "dnsentinel_worker_consumer_lag" in text
    others = [a for a in {i[4][0] for i in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
              if not a.startswith("127.")]
    for addr in others:  # not reachable on the machine's other addresses
        with pytest.raises(OSError):
            socket.create_connection((addr, port), timeout=1).close()
