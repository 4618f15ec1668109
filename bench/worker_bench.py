"""Stream processor benchmark: events/s through one worker, first-event-to-verdict p99 at a fixed rate.

Runs the real ``dnsentinel worker`` (a subprocess, the promoted model unless
``--table-model``) against the real Kafka, Redis and Elasticsearch, on
topics, key prefixes and index prefixes of its own (removed afterwards).

Phase 1 (throughput): ``--events`` events are produced up front with a
realistic repeat rate (most queries go to a Zipf-distributed set of popular
names, ``--unseen`` of them to never-seen names), then the worker is timed
from its first consumed event to its last (its own ``events_in`` counter).

Phase 2 (latency): events are produced at ``--rate``/s for ``--duration`` s;
for every unseen name, the time from its first event (its ``ts``, stamped when
produced) to its verdict **in Redis** (a thread polls the pending names' keys
every millisecond with one MGET) is recorded, and also to its message on the
verdicts topic; p50/p99 are printed next to the worker's own histogram, its
per-stage times, its garbage-collection pauses and its consumer lag.

    .venv/bin/python bench/worker_bench.py --events 300000 --rate 5000 --duration 30
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import signal
import string
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from dnsentinel.verdict_cache.keys import verdict_key
from dnsentinel.verdict_cache.names import routing_key

ROOT = Path(__file__).resolve().parent.parent
TLDS = ("com", "net", "org", "io", "de", "co.uk", "info")

sys.path.insert(0, str(ROOT / "tests" / "stream_processor"))
from sandbox import Sandbox, free_port  # noqa: E402  (the integration tests' isolated topics and prefixes)


def _rand_name(rng: random.Random) -> str:
    n = rng.randint(8, 18)
    return "".join(rng.choices(string.ascii_lowercase + string.digits, k=n)) + "." + rng.choice(TLDS)


class Load:
    """Query names with a realistic repeat rate: Zipf over popular names plus a share of unseen ones."""

    def __init__(self, popular: int, unseen: float, clients: int = 50, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        words = ["mail", "www", "api", "cdn", "login", "static", "img", "app"]
        self.popular = [f"{self.rng.choice(words)}.{_rand_name(self.rng)}" for _ in range(popular)]
        weights = [1.0 / (i + 1) ** 1.1 for i in range(popular)]
        self.cum = []
        total = 0.0
        for w in weights:
            total += w
            self.cum.append(total)
        self.total = total
        self.unseen = unseen
        self.clients = [f"10.0.{i // 250}.{i % 250}" for i in range(clients)]

    def next(self) -> tuple[str, bool]:
        if self.rng.random() < self.unseen:
            return _rand_name(self.rng), True
        import bisect

        return self.popular[bisect.bisect_left(self.cum, self.rng.random() * self.total)], False

    def event(self, name: str, ts: int | None = None) -> tuple[bytes, bytes]:
        obj = {"v": 1, "ts": ts or int(time.time() * 1000), "name": name, "qtype": "A",
               "client": self.rng.choice(self.clients), "source": "loadgen", "action": "pass",
               "decision": "unknown", "proto": "udp"}
        return routing_key(name), json.dumps(obj, separators=(",", ":")).encode()


class Bench(Sandbox):
    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__("bench")
        self.args = args
        self.s = self.settings
        self.tmp = Path(tempfile.mkdtemp(prefix="worker-bench-"))
        self.metrics_port = free_port()
        self.env = dict(os.environ)
        self.env.update(self.worker_env(self.tmp / "state", self.metrics_port))
        self.env.update({"DNSENTINEL_WORKER__BATCH_MAX": str(args.batch_max),
                         "DNSENTINEL_WORKER__BATCH_WITHIN_S": str(args.within)})
        from confluent_kafka import Producer

        self.producer = Producer({**self.s.kafka.confluent_config(), "partitioner": "murmur2_random",
                                  "linger.ms": 5, "compression.type": "lz4", "queue.buffering.max.messages": 1_000_000})
        self.proc: subprocess.Popen | None = None

    def start_worker(self) -> None:
        cmd = [sys.executable, "-m", "dnsentinel.cli.main", "worker", "-l", "warning"]
        if self.args.table_model:
            cmd = [sys.executable, str(ROOT / "tests" / "stream_processor" / "worker_runner.py")]
            (self.tmp / "scores.json").write_text("{}")
            (self.tmp / "version").write_text("table-bench")
            self.env.update({"SP_TEST_SCORES": str(self.tmp / "scores.json"),
                             "SP_TEST_VERSION_FILE": str(self.tmp / "version")})
        self.log = (self.tmp / "worker.log").open("wb")
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT,
                                     start_new_session=True)

    def _scrape(self) -> str:
        for attempt in range(5):
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).read().decode()
            except OSError:
                if attempt == 4:
                    raise
                time.sleep(0.5)
        raise AssertionError("unreachable")

    def metric(self, name: str) -> float:
        from prometheus_client.parser import text_string_to_metric_families

        text = self._scrape()
        total = 0.0
        for fam in text_string_to_metric_families(text):
            for sample in fam.samples:
                if sample.name == name:
                    total += sample.value
        return total

    def histogram(self, name: str, by: str | None = None) -> list[tuple[float, float]] | dict[str, list]:
        """A histogram's cumulative buckets (le, count); with ``by``, per value of that label."""
        from prometheus_client.parser import text_string_to_metric_families

        text = self._scrape()
        out: dict[str, list[tuple[float, float]]] = {}
        for fam in text_string_to_metric_families(text):
            for sample in fam.samples:
                if sample.name == name + "_bucket":
                    out.setdefault(sample.labels.get(by, "") if by else "", []).append(
                        (float(sample.labels["le"]), sample.value))
        out = {k: sorted(v) for k, v in out.items()}
        return out if by else out.get("", [])

    def wait_metric(self, name: str, at_least: float, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise SystemExit(f"worker exited; log: {self.tmp / 'worker.log'}")
            try:
                v = self.metric(name)
                if v >= at_least:
                    return v
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"timed out waiting for {name} >= {at_least}")

    def throughput(self) -> dict:
        a = self.args
        load = Load(a.popular, a.unseen, a.clients)
        t0 = time.perf_counter()
        for i in range(a.events):
            key, value = load.event(load.next()[0])
            while True:
                try:
                    self.producer.produce(self.queries, value=value, key=key)
                    break
                except BufferError:
                    self.producer.poll(0.05)
            if i % 10000 == 0:
                self.producer.poll(0)
        self.producer.flush(60)
        produce_s = time.perf_counter() - t0
        self.start_worker()
        self.wait_metric("dnsentinel_worker_events_in_total", 1, 300)
        start = time.perf_counter()
        cpu0 = self.cpu_seconds()
        first = self.metric("dnsentinel_worker_events_in_total")
        self.wait_metric("dnsentinel_worker_events_in_total", a.events, 900)
        elapsed = time.perf_counter() - start
        cpu = self.cpu_seconds() - cpu0
        rate = (a.events - first) / elapsed
        return {"events": a.events, "produce_s": round(produce_s, 1), "consume_s": round(elapsed, 2),
                "events_per_s": round(rate), "worker_cpu_s": round(cpu, 1),
                "events_per_worker_cpu_s": round((a.events - first) / cpu) if cpu else None,
                "scored": self.metric("dnsentinel_worker_scored_names_total")}

    def cpu_seconds(self) -> float:
        """CPU time (user + system, all threads) of the worker process so far."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def latency(self) -> dict:
        a = self.args
        load = Load(a.popular, a.unseen, a.clients, seed=11)
        watch = VerdictWatch(self)
        time.sleep(3.0)  # the reader joins its group before the load starts
        before = self.histogram("dnsentinel_worker_first_event_to_verdict_seconds")
        alerts0 = self.histogram("dnsentinel_worker_alert_latency_seconds")
        gc0 = self.histogram("dnsentinel_worker_gc_pause_seconds", by="generation")
        parts0 = self.stage_sums()
        cpu0, svc0, wall0 = self.cpu_seconds(), self.service_cpu(), time.perf_counter()
        actual = self._produce_at_rate(load, watch)
        self.producer.flush(30)
        time.sleep(5.0)
        wall = time.perf_counter() - wall0
        worker_cpu = self.cpu_seconds() - cpu0
        svc = {k: round((v - svc0.get(k, 0.0)) / wall, 2) for k, v in self.service_cpu().items()}
        stages = {}
        for k, (total1, n1) in self.stage_sums().items():
            total0, n0 = parts0.get(k, (0.0, 0.0))
            mean = (total1 - total0) / max(1, n1 - n0)
            stages[k] = {"calls": int(n1 - n0), "mean": round(mean, 1) if k == "batch_size" else f"{1000 * mean:.2f} ms"}
        watch.stop()
        after = self.histogram("dnsentinel_worker_first_event_to_verdict_seconds")
        counts = [(le, a_ - b_) for (le, a_), (_, b_) in zip(after, before)]
        worker_p99 = None
        if counts and counts[-1][1] > 0:
            worker_p99 = next(le for le, c in counts if c >= 0.99 * counts[-1][1])
        alerts = _diff(self.histogram("dnsentinel_worker_alert_latency_seconds"), alerts0)
        return {"rate_target": a.rate, "rate_actual": round(actual), "seconds": a.duration,
                "alerts": alerts[-1][1] if alerts else 0, "alert_latency_p50_le_s": _le_at(alerts, 0.5),
                "alert_latency_p99_le_s": _le_at(alerts, 0.99),
                **watch.summary(a.duration), "worker_histogram_p99_le_s": worker_p99,
                "worker_cpu_share": round(worker_cpu / wall, 2), "services_cpu_share": svc, "stages": stages,
                "gc_pauses": _gc_pauses(gc0, self.histogram("dnsentinel_worker_gc_pause_seconds", by="generation")),
                "consumer_lag_at_end": self.lag()}

    def _produce_at_rate(self, load: Load, watch: VerdictWatch) -> float:
        """``--rate`` events/s for ``--duration`` s, each new name announced to ``watch``; the rate achieved."""
        a = self.args
        tick = 0.01
        sent = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < a.duration:
            due = int((elapsed + tick) * a.rate)
            while sent < due:
                name, unseen = load.next()
                ts = int(time.time() * 1000)
                if unseen:
                    watch.new_name(name, ts)
                key, value = load.event(name, ts)
                try:
                    self.producer.produce(self.queries, value=value, key=key)
                except BufferError:
                    self.producer.poll(0.01)
                    continue
                sent += 1
            self.producer.poll(0)
            time.sleep(max(0.0, start + (sent / a.rate) - time.perf_counter()))
        return sent / (time.perf_counter() - start)

    def stage_sums(self) -> dict[str, tuple[float, float]]:
        """(sum, count) of the worker's per-stage histograms: where a batch spends its time."""
        from prometheus_client.parser import text_string_to_metric_families

        wanted = {"dnsentinel_worker_redis_seconds": "redis", "dnsentinel_worker_inference_seconds": "inference",
                  "dnsentinel_worker_es_bulk_seconds": "es_bulk", "dnsentinel_worker_batch_size": "batch_size",
                  "dnsentinel_worker_stage_seconds": "stage"}
        out: dict[str, list[float]] = {}
        for fam in text_string_to_metric_families(self._scrape()):
            for sample in fam.samples:
                for prefix, key in wanted.items():
                    if "stage" in sample.labels:
                        key = sample.labels["stage"]
                    if sample.name == prefix + "_sum":
                        out.setdefault(key, [0.0, 0.0])[0] += sample.value
                    elif sample.name == prefix + "_count":
                        out.setdefault(key, [0.0, 0.0])[1] += sample.value
        return {k: (v[0], v[1]) for k, v in out.items()}

    def lag(self) -> dict[str, float]:
        """The worker's consumer lag gauges, summed over partitions, per topic kind and offset kind."""
        from prometheus_client.parser import text_string_to_metric_families

        out: dict[str, float] = {}
        for fam in text_string_to_metric_families(self._scrape()):
            for sample in fam.samples:
                if sample.name == "dnsentinel_worker_consumer_lag":
                    key = f"{'signals' if sample.labels['topic'] == self.signals else 'queries'}:{sample.labels['of']}"
                    out[key] = out.get(key, 0.0) + sample.value
        return out

    def service_cpu(self) -> dict[str, float]:
        """CPU seconds so far of the processes listening on the Kafka, Redis and Elasticsearch ports."""
        ports = {"kafka": int(self.s.kafka.bootstrap_servers.split(",")[0].rsplit(":", 1)[1]),
                 "redis": int(self.s.redis.url.rsplit(":", 1)[1].split("/")[0]),
                 "elasticsearch": int(self.s.elasticsearch.url.rstrip("/").rsplit(":", 1)[1])}
        out: dict[str, float] = {}
        try:
            lines = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, timeout=10).stdout.splitlines()
        except (OSError, subprocess.SubprocessError):
            return out
        for svc, port in ports.items():
            for line in lines:
                cols = line.split()
                if len(cols) > 3 and cols[3].endswith(f":{port}") and "pid=" in line:
                    pid = line.split("pid=", 1)[1].split(",", 1)[0]
                    try:
                        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    except OSError:
                        break
                    out[svc] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
                    break
        return out

    def cleanup(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.drop()


class VerdictWatch:
    """When each new name's verdict arrived: in Redis (one MGET of the pending names' keys every
    millisecond) and on the verdicts topic (a consumer), each in its own thread."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.first_ts: dict[str, int] = {}
        self.in_redis: dict[str, float] = {}
        self.on_topic: dict[str, float] = {}
        self._new: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._deadline = float("inf")
        self._threads = [threading.Thread(target=f, daemon=True) for f in (self._consume, self._watch_redis)]
        for t in self._threads:
            t.start()

    def new_name(self, name: str, ts: int) -> None:
        if name not in self.first_ts:
            self.first_ts[name] = ts
            self._new.put(name)

    def _consume(self) -> None:
        from confluent_kafka import Consumer

        b = self.bench
        c = Consumer({**b.s.kafka.confluent_config(), "group.id": f"bench-reader-{b.sfx}",
                      "auto.offset.reset": "latest", "enable.auto.commit": False, "fetch.wait.max.ms": 10})
        c.subscribe([b.verdicts])
        while not self._stop.is_set():
            m = c.poll(0.05)
            if m is not None and not m.error():
                self.on_topic.setdefault(m.key().decode(), time.time() * 1000)
        c.close()

    def _watch_redis(self) -> None:
        from dnsentinel.redis_client import sync_client

        r = sync_client(self.bench.s.redis)
        pending: list[str] = []
        while not self._stop.is_set() or (pending and time.perf_counter() < self._deadline):
            while not self._new.empty():
                pending.append(self._new.get())
            if pending:
                values = r.mget([verdict_key(self.bench.redis_prefix, n) for n in pending])
                now = time.time() * 1000
                for n, v in zip(pending, values):
                    if v is not None:
                        self.in_redis[n] = now
                pending = [n for n, v in zip(pending, values) if v is None]
            time.sleep(0.001)

    def stop(self) -> None:
        self._deadline = time.perf_counter() + 5
        self._stop.set()
        for t in self._threads:
            t.join(10)

    def summary(self, duration: float) -> dict:
        """Percentiles from first event to verdict in Redis (the headline) and on the verdicts topic."""
        first, arrived = self.first_ts, self.in_redis
        lat = sorted(arrived[n] - ts for n, ts in first.items() if n in arrived)
        topic = sorted(self.on_topic[n] - ts for n, ts in first.items() if n in self.on_topic)
        # The phase starts with a burst of never-seen popular names (a fresh Zipf head to score);
        # the second half shows the steady state.
        mid_ms = min(first.values()) + duration * 500 if first else 0
        late = sorted(arrived[n] - ts for n, ts in first.items() if n in arrived and ts >= mid_ms)
        return {"unseen_names": len(first), "verdicts_seen": len(lat),
                "missing": sum(1 for n in first if n not in arrived),
                "p50_ms": _pct(lat, 0.5), "p99_ms": _pct(lat, 0.99),
                "verdicts_topic_p50_ms": _pct(topic, 0.5), "verdicts_topic_p99_ms": _pct(topic, 0.99),
                "second_half_p50_ms": _pct(late, 0.5), "second_half_p99_ms": _pct(late, 0.99),
                "max_ms": round(lat[-1], 1) if lat else None}


def _diff(after: list[tuple[float, float]], before: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """A cumulative histogram's buckets over one phase (after minus before)."""
    old = dict(before)
    return [(le, c - old.get(le, 0.0)) for le, c in after]


def _le_at(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The upper bound of the bucket holding the ``q`` quantile (None without observations)."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    return next(le for le, c in buckets if c >= q * buckets[-1][1])


def _pct(values: list[float], p: float) -> float | None:
    return round(values[min(len(values) - 1, int(p * len(values)))], 1) if values else None


def _gc_pauses(before: dict[str, list], after: dict[str, list]) -> dict[str, dict[str, float]]:
    """Collections during the phase per generation: how many, and how many took over 10 / 50 ms."""
    out = {}
    for gen, buckets in after.items():
        prev = dict(before.get(gen, []))
        counts = {le: c - prev.get(le, 0.0) for le, c in buckets}
        total = counts.get(float("inf"), 0.0)
        out[gen] = {"collections": total, "over_10ms": total - counts.get(0.01, 0.0),
                    "over_50ms": total - counts.get(0.05, 0.0)}
    return out


def pipeline_only(args: argparse.Namespace) -> dict:
    """The worker's own per-event code (BatchProcessor: validate, dedup, lookups, aggregate, ES docs),
    with in-memory stand-ins for Kafka, Redis, the model and Elasticsearch: events per CPU-second."""
    import asyncio
    from types import SimpleNamespace

    from dnsentinel.settings import WorkerSettings
    from dnsentinel.stream_processor.es_sink import Chunk, DocStore, EsSink, aggregate_docs
    from dnsentinel.stream_processor.metrics import Metrics
    from dnsentinel.stream_processor.scorer import ModelHolder
    from dnsentinel.stream_processor.triage import Record
    from dnsentinel.stream_processor.worker import BatchProcessor, Topics

    class Model:
        version, arch, thresholds = "table", "table", SimpleNamespace(allow=0.2, block=0.8)

        def predict(self, names):
            return [0.5] * len(names)

    class Cache:
        def __init__(self):
            self.d = {}

        def decide_many(self, names):
            return {n: self.d.get(n, "unknown") for n in names}

        def put_verdicts(self, vs):
            self.d.update((v.name, v.label) for v in vs)

    async def publish(topic, key, value):
        f = asyncio.get_running_loop().create_future()
        f.set_result(None)
        return f

    load = Load(args.popular, args.unseen, args.clients)
    recs = []
    for i in range(args.events):
        key, value = load.event(load.next()[0])
        recs.append(Record(key, value, "q", 0, i))
    store = DocStore()

    async def run() -> tuple[float, float]:
        if args.real_model:  # the promoted model on the device scoring.* chooses (bench/gpu.sh)
            from dnsentinel.models import load

            holder = ModelHolder(lambda v: load(v), None)
            await holder.start()
        else:
            holder = ModelHolder(lambda _v: Model(), None)
            holder.use(Model())
        sink = EsSink(None)
        proc = BatchProcessor(cache=Cache(), scorer=holder, publish=publish, sink=None, metrics=Metrics(),
                              topics=Topics("q", "v", "d"), es_prefix="b",
                              settings=WorkerSettings(batch_max=args.batch_max))
        c0, t0 = time.process_time(), time.perf_counter()
        per_flush = max(1, int(20_000 / args.batch_max))
        for i in range(0, len(recs), args.batch_max):
            await proc.process(recs[i:i + args.batch_max])
            if (i // args.batch_max) % per_flush == per_flush - 1:
                activity, verdicts, vetting, _ = proc.agg.drain()
                docs = aggregate_docs("b", activity, verdicts, vetting)
                sink.store = store
                sink._actions(Chunk(docs, [], 0, None))
        return time.process_time() - c0, time.perf_counter() - t0

    cpu, wall = asyncio.run(run())
    return {"events": len(recs), "events_per_cpu_s": round(len(recs) / cpu), "events_per_wall_s": round(len(recs) / wall)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--popular", type=int, default=20_000, help="distinct popular names (Zipf 1.1)")
    ap.add_argument("--unseen", type=float, default=0.01, help="share of queries for never-seen names")
    ap.add_argument("--clients", type=int, default=50, help="distinct client addresses (resolver-side NAT/forwarders)")
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--duration", type=float, default=90.0, help="seconds of load (over 75 s: alerts close on live traffic)")
    ap.add_argument("--batch-max", type=int, default=2048)
    ap.add_argument("--within", type=float, default=0.05)
    ap.add_argument("--table-model", action="store_true", help="a lookup-table model instead of the promoted CNN")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--pipeline-only", action="store_true",
                    help="only the worker's own code with in-memory stand-ins (no Kafka/Redis/ES)")
    ap.add_argument("--real-model", action="store_true",
                    help="with --pipeline-only: score with the promoted model (scoring.* picks the device)")
    args = ap.parse_args()
    if args.pipeline_only:
        print(json.dumps({"pipeline_only": pipeline_only(args), "loadavg": os.getloadavg()}))
        return
    b = Bench(args)
    try:
        load1 = os.getloadavg()
        out = {"throughput": b.throughput()}
        print(json.dumps(out), flush=True)
        if not args.skip_latency:
            out["latency"] = b.latency()
        out["config"] = {"batch_max": args.batch_max, "within_s": args.within, "popular": args.popular, "clients": args.clients,
                         "unseen": args.unseen, "model": "table" if args.table_model else "registry current",
                         "loadavg_start": [round(x, 1) for x in load1],
                         "loadavg_end": [round(x, 1) for x in os.getloadavg()], "cpus": os.cpu_count()}
        print(json.dumps(out, indent=2))
        _record(out, args)
    finally:
        b.cleanup()


def _record(out: dict, args: argparse.Namespace) -> None:
    """Headline numbers for `dnsentinel bench` (bench/benchlib.py)."""
    from benchlib import machine, record

    t = out["throughput"]
    cfg = f"{t['events']:,} events, Zipf over {args.popular:,} names, {args.unseen:.0%} unseen, {args.clients} clients"
    record("stream processor", "throughput, one worker", t["events_per_s"], "events/s", target=50_000,
           config=f"{cfg}; {t['events_per_worker_cpu_s']:,} events per worker CPU-second; {machine()}")
    lat = out.get("latency")
    if lat:
        rate = f"{lat['rate_target']:,} events/s"  # the row's name stays put; the rate achieved is in the config
        seen = (f"{lat['verdicts_seen']}/{lat['unseen_names']} new names, to the verdict in Redis, "
                f"{lat['rate_actual']:,} events/s achieved")
        record("stream processor", f"first event to verdict p99 at {rate}", lat["p99_ms"], "ms",
               target=100, higher_is_better=False, config=f"p50 {lat['p50_ms']} ms, {seen}; {machine()}")
        record("stream processor", f"first event to verdict p50 at {rate}", lat["p50_ms"], "ms",
               target=20, higher_is_better=False, config=f"{seen}; worker {lat['worker_cpu_share']} core; {machine()}")
        if lat.get("alert_latency_p99_le_s") is not None:
            record("detections", f"last evidence to alert p99 at {rate}", lat["alert_latency_p99_le_s"], "s",
                   higher_is_better=False,
                   config=(f"{int(lat['alerts'])} alerts (dga_host: the bench's random new names) over "
                           f"{lat['seconds']:.0f} s, 60 s windows + 15 s lateness, histogram bucket bound; "
                           f"p50 <= {lat['alert_latency_p50_le_s']} s; {machine()}"))


if __name__ == "__main__":
    main()
