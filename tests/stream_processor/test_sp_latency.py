"""The worker's latency work (issue 18), with fakes: the two lanes, the GC policy, lag and metrics."""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import sys
import threading
import urllib.request

import pytest

from dnsentinel.settings import Settings
from dnsentinel.stream_processor.app import GcPolicy
from dnsentinel.stream_processor.consumer import lags
from dnsentinel.stream_processor.metrics import Metrics

from .fakes import FakeCache, FakeModel, FakePublisher, event, records
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


class ListSource:
    """A :class:`~dnsentinel.stream_processor.ports.BatchSource` over prepared batches; stops once they are out."""

    def __init__(self, batches: list[tuple[list, dict]]) -> None:
        self.batches = list(batches)
        self.stopping = False
        self.threads: set[str] = set()

    def fetch(self):
        self.threads.add(threading.current_thread().name)
        if self.batches:
            return self.batches.pop(0)
        self.stopping = True
        return [], None


class ThreadNoting(FakeCache):
    """Records which thread wrote each verdict."""

    def __init__(self) -> None:
        super().__init__()
        self.writers: set[str] = set()

    def put_verdicts(self, verdicts) -> None:
        self.writers.add(threading.current_thread().name)
        super().put_verdicts(verdicts)


def test_run_decides_in_the_verdict_thread_and_completes_in_order():
    cache = ThreadNoting()
    proc, pub, acked = make_proc(FakeModel(), cache)
    source = ListSource([(records([event(f"n{i}.com")], start=i), {0: i}) for i in range(20)])

    async def run() -> None:
        await proc.run(source)
        proc.flush()

    asyncio.run(run())
    assert source.threads == {"dnsentinel-verdict-lane"} and cache.writers == {"dnsentinel-verdict-lane"}
    assert [o["name"] for o in pub.on("verdicts")] == [f"n{i}.com" for i in range(20)]
    assert acked == [{0: i} for i in range(20)]
    assert proc.agg.events == 0 and sample(proc.metrics, "dnsentinel_worker_events_in_total") == 20


def test_a_stalled_completion_lane_does_not_hold_up_verdicts():
    """Kafka deliveries that do not come stall the completion lane; the verdict thread goes on
    writing verdicts to Redis for the batches behind (up to the lane's depth), none is acked early."""
    from dnsentinel.stream_processor.worker import LANE_DEPTH

    proc, _, acked = make_proc(FakeModel())
    gate: asyncio.Future[None] | None = None

    class Stalled(FakePublisher):
        async def __call__(self, topic, key, value):
            self.sent.append((topic, key, value))
            assert gate is not None
            return gate

    proc.publish = Stalled()
    n = 2 * LANE_DEPTH + 3  # more than both the lane and the batches awaiting deliveries hold
    source = ListSource([(records([event(f"s{i}.com")], start=i), {0: i}) for i in range(n)])

    async def run() -> None:
        nonlocal gate
        gate = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(proc.run(source))
        for _ in range(500):
            if len(proc.cache.verdicts) >= LANE_DEPTH:
                break
            await asyncio.sleep(0.01)
        assert len(proc.cache.verdicts) >= LANE_DEPTH  # in Redis while batch 0 still awaits its deliveries
        proc.flush()
        assert acked == [] and not task.done()
        gate.set_result(None)
        await task
        proc.flush()

    asyncio.run(run())
    assert set(proc.cache.verdicts) == {f"s{i}.com" for i in range(n)}
    assert acked == [{0: i} for i in range(n)]
    assert sample(proc.metrics, "dnsentinel_worker_stage_seconds_count", stage="lane_full") >= 1  # it waited


def test_a_failed_decision_stops_run_and_is_never_acked():
    class Broken(FakeModel):
        def predict(self, domains):
            raise RuntimeError("model exploded")

    proc, _, acked = make_proc(Broken())
    source = ListSource([(records([event("a.com")]), {0: 0})])

    async def run() -> None:
        with pytest.raises(RuntimeError, match="model exploded"):
            await proc.run(source)
        proc.flush()

    asyncio.run(run())
    assert acked == []


def test_completions_overlap_deliveries_and_tokens_stay_in_batch_order():
    """Batch 1 is aggregated while batch 0's verdict message is still undelivered, but its token
    becomes pending only after batch 0's; a delivery that fails stops run() with nothing acked after it."""
    proc, _, acked = make_proc(FakeModel())
    gates: dict[str, asyncio.Future[None]] = {}

    class PerName(FakePublisher):
        async def __call__(self, topic, key, value):
            self.sent.append((topic, key, value))
            return gates.setdefault(json.loads(value)["name"], asyncio.get_running_loop().create_future())

    proc.publish = PerName()
    source = ListSource([(records([event("slow.com")], start=0), {0: 0}),
                         (records([event("fast.com")], start=1), {0: 1}),
                         (records([event("broken.com")], start=2), {0: 2})])

    async def run() -> None:
        task = asyncio.ensure_future(proc.run(source))
        for _ in range(500):
            if "fast.com" in gates and proc.agg.events >= 2:
                break
            await asyncio.sleep(0.01)
        gates["fast.com"].set_result(None)
        await asyncio.sleep(0.05)
        proc.flush()
        assert acked == []  # fast.com's token waits for slow.com's delivery
        gates["slow.com"].set_result(None)
        for _ in range(500):
            if "broken.com" in gates:
                break
            await asyncio.sleep(0.01)
        gates["broken.com"].set_exception(RuntimeError("delivery failed"))
        with pytest.raises(RuntimeError, match="delivery failed"):
            await task
        proc.flush()

    asyncio.run(run())
    assert acked == [{0: 0}, {0: 1}]
