"""Cluster profile benchmark: replay, workers and the CoreDNS plugin on the running cluster profile.

Needs the profile up (`dnsentinel stack up --profile cluster`); starts nothing of it, stops
nothing of it. Every client authenticates as the component it stands for, over TLS, with the
cluster's settings file ($DS_CLUSTER_DIR/dnsentinel.toml) and passwords (secrets.env):

1. **replay**: a synthetic Zeek dns.log (bench/replay_bench.py's generator) replayed by the
   product's replay path (producers.replay + EventProducer: confluent-kafka, lz4, acks=all,
   idempotent) as SCRAM user ``replay`` into a topic of its own (RF 3, min ISR 2; created,
   granted to ``replay`` and deleted again by ``admin``); lines/s including the final flush.
2. **workers**: another such log replayed into the real queries topic; the cluster's running
   workers (one consumer group) consume and decide it. events/s = the events produced divided by
   the time from the first to the last of them counted by the workers' own
   ``dnsentinel_worker_events_in`` counters (Prometheus, polled every 0.25 s), with the CPU the
   worker processes used (from /proc) and what one event costs the data services: Elasticsearch
   bytes (primaries and replicas, after a refresh), Kafka segment bytes of the queries, signals
   and verdicts topics, Redis memory per new key, and the nodes' CPU (from /proc). These are the
   inputs of the sizing in deploy/multi/README.md.
3. **plugin**: dnsperf against the cluster's CoreDNS node 1 (Redis through the Sentinels over
   TLS, Kafka over SASL_SSL) and against a plain CoreDNS started here with node 1's own Corefile
   minus the ``dnsentinel`` block (same binary, same ``cache`` and resolver block), and against
   a copy with ``no_events`` added (Redis lookups only), which splits the plugin's cost between
   its lookups and its event producer. The query mix and its seeded verdicts are
   bench/plugin_bench.py's; runs alternate; the ratio of the medians, the ratio of CPU per query
   and the Kafka nodes' CPU per query are recorded. ``--pprof DIR`` writes a CPU profile of each
   copy's first run (plus an unchanged copy of node 1) there (``go tool pprof -top BINARY FILE``).

Afterwards the workers are given time to drain, then every verdict key, vetted entry and
Elasticsearch document of the bench's names is deleted (names the bench made up; the
``example.com``/``example.net`` first sightings of the plugin mix are left: they expire).

    .venv/bin/python bench/cluster_bench.py [--replay-lines 300000] [--worker-events 100000] [--skip plugin]

Not up (no cluster settings file): prints why and exits 0, so a plain `dnsentinel bench` still
runs. A node not healthy: exits 1. Run it when no fault test (tests/cluster/test_faults.py) is
running: a worker restarted mid-measurement ends the run, a killed Kafka or ES node just gives
wrong numbers.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import plugin_bench as pb  # noqa: E402  (dnsperf, CoreDNS start, the plugin's query mix)
from benchlib import machine, record  # noqa: E402
from replay_bench import make_log  # noqa: E402

if TYPE_CHECKING:
    from dnsentinel.settings import Settings

QUICK = os.environ.get("DNSENTINEL_BENCH_QUICK") == "1"


# ----------------------------------------------------------------------------- the profile


class Profile:
    """The running cluster profile: its dir, node table, secrets and a component's settings."""

    def __init__(self) -> None:
        from dnsentinel.cli.cluster import profile
        from dnsentinel.settings import get_settings

        base = get_settings()
        self.dir = profile.cluster_dir(base)
        self.env = profile.node_table()
        self.settings_file = profile.settings_file(base)
        self.state_dir = base.stack.state_dir
        if not self.settings_file.is_file() or not (self.dir / "secrets.env").is_file():
            print(f"cluster bench: skipped: the cluster profile is not set up (no {self.settings_file}); "
                  "start it with: dnsentinel stack up --profile cluster")
            raise SystemExit(0)
        sick = [f"{r.service}/{r.node} {r.state}" for r in profile.status(base) if not r.healthy]
        if sick:
            raise SystemExit(f"cluster bench: the cluster profile is not healthy ({', '.join(sick)}); "
                             "see dnsentinel stack status --profile cluster")
        self.secrets = profile.secrets(base)

    def settings_as(self, user: str) -> Settings:
        """The cluster's settings file with ``user`` and its password for Redis, Kafka and ES."""
        from dnsentinel.settings import Settings

        data = tomllib.loads(self.settings_file.read_text())
        pw = self.secrets[f"PASSWORD_{user.upper()}"]
        data["redis"].update(username=user, password=pw)
        data["kafka"].update(sasl_username=user, sasl_password=pw)
        data["elasticsearch"].update(username=user, password=pw)
        return Settings(**data)

    def use_admin_process_wide(self) -> None:
        """Make ``get_settings()`` (plugin_bench's seeding) the cluster as ``admin``."""
        from dnsentinel.settings import get_settings

        pw = self.secrets["PASSWORD_ADMIN"]
        os.environ.update({
            "DNSENTINEL_CONFIG": str(self.settings_file),
            "DNSENTINEL_REDIS__USERNAME": "admin", "DNSENTINEL_REDIS__PASSWORD": pw,
            "DNSENTINEL_KAFKA__SASL_USERNAME": "admin", "DNSENTINEL_KAFKA__SASL_PASSWORD": pw,
            "DNSENTINEL_ELASTICSEARCH__USERNAME": "admin", "DNSENTINEL_ELASTICSEARCH__PASSWORD": pw,
        })
        get_settings.cache_clear()

    def pid(self, node: str, pidfile: str) -> int:
        return int((self.dir / node / pidfile).read_text().split()[0])

    def workers(self) -> list[tuple[str, int, int]]:
        """(node, metrics port, pid) of each worker (deploy/cluster/apps.sh: web port + 100 + N - 1)."""
        base = int(self.env["WORKER_WEB_PORT"]) + 100
        return [(f"worker-{i}", base + i - 1, self.pid(f"worker-{i}", f"worker-{i}.pid"))
                for i in range(1, int(self.env["WORKER_NODES"]) + 1)]


def service_cpu(p: Profile) -> dict[str, float]:
    """CPU seconds used so far by each data service's nodes together (from /proc; profile nodes only)."""
    pidfiles = {"kafka": list(p.dir.glob("kafka-*/kafka.pid")),
                "elasticsearch": list(p.dir.glob("elasticsearch/es-*/es.pid")),
                "redis": list(p.dir.glob("redis/redis-*/redis.pid"))}
    used: dict[str, float] = {}
    for service, files in pidfiles.items():
        total = 0.0
        for f in files:
            try:
                total += pb.cpu_seconds(int(f.read_text().split()[0]))
            except (OSError, ValueError):
                pass  # a node restarting: its share is missing from this figure
        used[service] = total
    return used


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before[k] for k in before}


def log_names(path: Path) -> set[str]:
    """The distinct query names of a Zeek TSV log (column 10)."""
    names = set()
    with open(path) as fh:
        for line in fh:
            if not line.startswith("#"):
                names.add(line.split("\t", 10)[9])
    return names


# ----------------------------------------------------------------------------- 1. replay


def topic_bytes(p: Profile, topic: str) -> int:
    """Bytes of a topic's log segments on every node (the profile's data dirs: all replicas)."""
    return sum(f.stat().st_size for f in p.dir.glob(f"kafka-*/data/{topic}-*/*.log"))


def replay_phase(p: Profile, lines: int, n_names: int, partitions: int, work: Path) -> dict:
    """Replay ``lines`` Zeek lines as ``replay`` into a fresh RF-3 topic; lines/s incl. the flush."""
    from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                       AdminClient, NewTopic, ResourcePatternType, ResourceType)

    from dnsentinel.producers.kafka_out import EventProducer
    from dnsentinel.producers.replay import ReplayOptions, replay

    admin_s = p.settings_as("admin")
    admin = AdminClient(admin_s.kafka.confluent_config())
    topic = f"bench.cluster.{random.randrange(1 << 32):08x}"
    grants = [AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:replay", "*", op,
                         AclPermissionType.ALLOW) for op in (AclOperation.WRITE, AclOperation.DESCRIBE)]
    path = work / "replay.log"
    make_log(path, lines, n_names, seed=random.randrange(1 << 30))
    admin.create_topics([NewTopic(topic, partitions, 3, config={"min.insync.replicas": "2"})])[topic].result(60)
    try:
        for fut in admin.create_acls(grants).values():
            fut.result(30)
        time.sleep(3)  # ACLs reach every broker's authorizer asynchronously
        sink = EventProducer(topic=topic, settings=p.settings_as("replay"))
        sink.check_reachable()
        load0, t, cpu, services0 = os.getloadavg()[0], time.perf_counter(), time.process_time(), service_cpu(p)
        summary = replay([str(path)], sink, ReplayOptions(fmt="zeek"))
        sink.close()
        took, cpu = time.perf_counter() - t, time.process_time() - cpu
        time.sleep(2)  # followers fetch the last batches
        return {"disk": topic_bytes(p, topic), "services_cpu": cpu_delta(services0, service_cpu(p)), "lines": summary.lines, "delivered": sink.delivered, "failed": dict(sink.failed), "s": took,
                "cpu_s": cpu, "load": (load0, os.getloadavg()[0]), "topic": topic, "partitions": partitions}
    finally:
        try:
            admin.delete_topics([topic])[topic].result(60)
            flt = AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:replay", "*",
                                   AclOperation.ANY, AclPermissionType.ANY)
            for fut in admin.delete_acls([flt]).values():
                fut.result(30)
        except Exception as exc:  # noqa: BLE001 - cleanup must not hide the result
            print(f"cluster bench: could not remove topic {topic} or its ACLs: {exc}", file=sys.stderr)
        path.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- 2. workers


def events_in(workers: list[tuple[str, int, int]], wait_s: float = 60) -> list[float]:
    """Each worker's events_in counter; a worker whose metrics do not answer is waited for."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return [pb.metric(port, "dnsentinel_worker_events_in_total") for _, port, _ in workers]
        except OSError as exc:
            if time.monotonic() > deadline:
                raise SystemExit(f"cluster bench: a worker's metrics do not answer ({exc}); "
                                 "see dnsentinel stack status --profile cluster") from None
            time.sleep(1)


def same_workers(p: Profile, workers: list[tuple[str, int, int]]) -> None:
    """A worker restarted during a measurement resets its counters: the run means nothing then."""
    if [w[2] for w in p.workers()] != [w[2] for w in workers]:
        raise SystemExit("cluster bench: a worker restarted during the measurement (someone restarted the "
                         "apps, or a fault test ran); run the bench again")


class Counting(threading.Thread):
    """Poll the workers' events_in every 0.25 s: (monotonic time, total) samples."""

    def __init__(self, workers: list[tuple[str, int, int]]) -> None:
        super().__init__(daemon=True)
        self.workers, self.samples, self.done = workers, [], threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                self.samples.append((time.monotonic(), sum(events_in(self.workers))))
            except OSError:
                pass
            self.done.wait(0.25)


def redis_usage(admin: Settings) -> tuple[int, int]:
    """Keys and used memory of the Redis primary."""
    from dnsentinel.redis_client import sync_client

    r = sync_client(admin.redis)
    return int(r.dbsize()), int(r.info("memory")["used_memory"])


def es_usage(p: Profile) -> tuple[float, dict[str, int]]:
    """Bytes on disk of the pipeline's indices (primaries + replicas) and docs per index, after a refresh."""
    from dnsentinel.cli.cluster import es as cluster_es

    es = cluster_es.client(p.settings_as("admin").elasticsearch, request_timeout=120)
    pattern = ",".join(pipeline_indices(es, p.settings_as("admin").elasticsearch.index_prefix))
    es.indices.refresh(index=pattern)
    stats = es.indices.stats(index=pattern, metric="store,docs")
    total = stats["_all"]["total"]["store"]["size_in_bytes"]
    docs = {name: s["primaries"]["docs"]["count"] for name, s in stats["indices"].items()}
    return total, docs


def wait_drained(workers: list[tuple[str, int, int]], target: float, quiet_s: float, timeout_s: float) -> float:
    """Wait until the workers' events_in reaches ``target`` (or stops growing for ``quiet_s``)."""
    deadline, last, last_change = time.monotonic() + timeout_s, -1.0, time.monotonic()
    while time.monotonic() < deadline:
        total = sum(events_in(workers))
        if total >= target:
            return total
        if total != last:
            last, last_change = total, time.monotonic()
        elif time.monotonic() - last_change > quiet_s:
            return total
        time.sleep(0.5)
    return last


def es_backlog_empty(workers: list[tuple[str, int, int]], timeout_s: float = 60) -> None:
    """Wait until no worker holds Elasticsearch actions back (so the indices have the run's documents)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if all(pb.metric(port, "dnsentinel_worker_es_backlog_actions") == 0 for _, port, _ in workers):
                return
        except OSError:
            pass
        time.sleep(1)


def worker_phase(p: Profile, events: int, n_names: int, work: Path, names: set[str]) -> dict:
    """Replay ``events`` into the queries topic; time the running workers through them."""
    from dnsentinel.producers.kafka_out import EventProducer
    from dnsentinel.producers.replay import ReplayOptions, replay

    workers = p.workers()
    path = work / "workers.log"
    make_log(path, events, n_names, seed=random.randrange(1 << 30))
    names |= log_names(path)
    admin = p.settings_as("admin")
    topics = {"queries": admin.kafka.queries_topic, "signals": admin.detections.signals_topic,
              "verdicts": admin.kafka.verdicts_topic}
    kafka0 = {k: topic_bytes(p, t) for k, t in topics.items()}
    redis0 = redis_usage(admin)
    signals0 = sum(pb.metric(port, "dnsentinel_worker_detection_signals_total") for _, port, _ in workers)
    bytes0, docs0 = es_usage(p)
    per0 = events_in(workers)
    cpu0 = [pb.cpu_seconds(pid) for _, _, pid in workers]
    services0 = service_cpu(p)
    counting = Counting(workers)
    counting.start()
    load0 = os.getloadavg()[0]
    sink = EventProducer(settings=p.settings_as("replay"))
    sink.check_reachable()
    replay([str(path)], sink, ReplayOptions(fmt="zeek"))
    sink.close()
    produced = sink.delivered
    reached = wait_drained(workers, sum(per0) + produced, quiet_s=30, timeout_s=900)
    counting.done.set()
    counting.join()
    same_workers(p, workers)
    services = cpu_delta(services0, service_cpu(p))
    cpu = [pb.cpu_seconds(pid) - c for (_, _, pid), c in zip(workers, cpu0)]
    per = [a - b for a, b in zip(events_in(workers), per0)]
    start = next((t for t, n in counting.samples if n > sum(per0)), None)
    if start is None:
        raise SystemExit("cluster bench: the workers consumed none of the replayed events; "
                         "see dnsentinel stack logs apps --profile cluster")
    end = next((t for t, n in counting.samples if n >= sum(per0) + produced), counting.samples[-1][0])
    es_backlog_empty(workers)
    time.sleep(2)
    bytes1, docs1 = es_usage(p)
    kafka = {k: topic_bytes(p, t) - kafka0[k] for k, t in topics.items()}
    redis1 = redis_usage(admin)
    signals = sum(pb.metric(port, "dnsentinel_worker_detection_signals_total") for _, port, _ in workers) - signals0
    new_docs = {i: docs1.get(i, 0) - docs0.get(i, 0) for i in docs1 if docs1.get(i, 0) != docs0.get(i, 0)}
    path.unlink(missing_ok=True)
    return {"produced": produced, "consumed": reached - sum(per0), "s": end - start, "per_worker": per,
            "cpu_s": cpu, "load": (load0, os.getloadavg()[0]), "names": n_names,
            "es_bytes": bytes1 - bytes0, "es_docs": new_docs, "kafka": kafka, "signals": signals,
            "redis_keys": redis1[0] - redis0[0], "redis_bytes": redis1[1] - redis0[1], "services_cpu": services}


# ----------------------------------------------------------------------------- 3. plugin


def corefile_copy(cluster_corefile: str, port: int, health: int, ready: int, metrics: int, *,
                  plugin: str = "off", pprof: int | None = None) -> str:
    """The cluster node's Corefile on ports of its own: without the dnsentinel block (``plugin="off"``),
    with it unchanged (``"full"``) or with ``no_events`` added (``"no_events"``: Redis lookups only);
    ``pprof`` adds CoreDNS's profiling endpoint on that port."""
    text = cluster_corefile
    if plugin == "off":
        text = re.sub(r"\n    dnsentinel \{.*?\n    \}\n", "\n", text, flags=re.S)
        if "dnsentinel {" in text:
            raise SystemExit("cluster bench: could not strip the dnsentinel block from the cluster's Corefile")
    elif plugin == "no_events":
        text, n = re.subn(r"^(    dnsentinel \{)$", r"\g<1>\n        no_events", text, flags=re.M)
        if n != 1:
            raise SystemExit("cluster bench: no dnsentinel block in the cluster's Corefile")
    text = re.sub(r"^\.:\d+ \{", f".:{port} {{", text, flags=re.M)
    for name, value in (("health", health), ("ready", ready), ("prometheus", metrics)):
        text = re.sub(rf"^(    {name} [^:\s]+):\d+$", rf"\g<1>:{value}", text, flags=re.M)
    if pprof is not None:
        text = re.sub(r"^(    errors)$", rf"\g<1>\n    pprof 127.0.0.1:{pprof}", text, flags=re.M)
    return text


def warm(port: int, mport: int, qfile: Path, names: int) -> None:
    """Replay the mix until nearly every lookup is answered from the plugin's local cache."""
    for attempt in range(8):
        before = pb.metric(mport, 'coredns_dnsentinel_cache_lookups_total{result="redis"')
        before += pb.metric(mport, "coredns_dnsentinel_redis_errors_total")
        pb.dnsperf(port, qfile, "-n", "1", "-q", "20")
        after = pb.metric(mport, 'coredns_dnsentinel_cache_lookups_total{result="redis"')
        after += pb.metric(mport, "coredns_dnsentinel_redis_errors_total")
        print(f"warm-up pass {attempt + 1}: {after - before:.0f} of {names} lookups not local", flush=True)
        if after - before < 0.01 * names:
            return


@dataclass
class Instance:
    """One CoreDNS the plugin phase measures: the cluster's node 1, or a copy of its Corefile started here."""

    port: int
    metrics: int
    pid: int
    proc: subprocess.Popen | None = None
    pprof: int | None = None


COPIES = {"plain": "off", "no_events": "no_events", "events": "full"}
"""The copies of node 1's Corefile started here: without the plugin, with Redis lookups only, unchanged
(``events`` only with ``--pprof``: node 1 itself has no profiling endpoint)."""


def start_copies(p: Profile, work: Path, kinds: list[str], pprof: bool) -> dict[str, Instance]:
    """Start each copy of node 1's Corefile in ``kinds`` (same binary, same credentials, ports of its own)."""
    node1 = (p.dir / "coredns-1" / "Corefile").read_text()
    pw = p.secrets["PASSWORD_COREDNS"]
    os.environ.update(DNSENTINEL_REDIS_PASSWORD=pw, DNSENTINEL_KAFKA_PASSWORD=pw)  # what coredns.sh exports
    out: dict[str, Instance] = {}
    for kind in kinds:
        port, metrics = pb.free_port(), pb.free_port()
        prof = pb.free_port() if pprof else None
        conf = work / f"{kind}.conf"
        conf.write_text(corefile_copy(node1, port, pb.free_port(), pb.free_port(), metrics, plugin=COPIES[kind],
                                      pprof=prof))
        # Own session, like coredns-1 (deploy/lib.sh spawn): in the bench's session (with dnsperf)
        # a copy got 2-3x coredns-1's QPS from the autogroup scheduler alone, not from its config.
        proc = pb.start(p.state_dir / "bin" / "coredns", conf, port, new_session=True)
        out[kind] = Instance(port, metrics, proc.pid, proc, prof)
    return out


def plugin_counters(mport: int) -> dict[str, float]:
    """The plugin's counters that say where its lookups and events went."""
    return {
        "local": pb.metric(mport, 'coredns_dnsentinel_cache_lookups_total{result="local"'),
        "remote": pb.metric(mport, 'coredns_dnsentinel_cache_lookups_total{result="redis"'),
        "produced": pb.metric(mport, "coredns_dnsentinel_events_produced_total"),
        "dropped": pb.metric(mport, "coredns_dnsentinel_events_dropped_total"),
        "redis_errors": pb.metric(mport, "coredns_dnsentinel_redis_errors_total"),
    }


def plugin_phase(p: Profile, n_names: int, seconds: int, runs: int, work: Path, names: set[str],
                 vetted_added: list[str], pprof_dir: Path | None = None) -> dict:
    """dnsperf, alternating: the cluster's coredns-1, a plain CoreDNS with its resolver block, and the
    plugin without events (Redis over TLS through the Sentinels, no Kafka): the last one splits the
    plugin's cost between its lookups and its event producer. With ``pprof_dir``, a CPU profile of
    each copy's first run (and of an unchanged copy of node 1) is written there."""
    from dnsentinel.redis_client import sync_client
    from dnsentinel.verdict_cache.keys import vetted_key

    admin = p.settings_as("admin")
    prefix = admin.redis.key_prefix
    r = sync_client(admin.redis)
    had = set(r.hkeys(vetted_key(prefix)))
    lines = pb.seed(n_names, prefix, random.Random(5))  # get_settings() is the cluster as admin here
    names |= {line.split()[0] for line in lines}
    vetted_added.extend(k.decode() if isinstance(k, bytes) else k for k in r.hkeys(vetted_key(prefix)) if k not in had)
    qfile = work / "queries.txt"
    qfile.write_text("\n".join(lines) + "\n")

    port = int(p.env["COREDNS_PORT"])
    kinds = ["plain", "no_events"] + (["events"] if pprof_dir else [])
    instances = start_copies(p, work, kinds, pprof_dir is not None)
    instances["cluster"] = Instance(port, port + 3, p.pid("coredns-1", "coredns.pid"))
    order = ["plain", "cluster", "no_events"] + (["events"] if pprof_dir else [])
    try:
        pb.dnsperf(instances["plain"].port, qfile, "-n", "1", "-q", "20")
        for kind in order[1:]:
            warm(instances[kind].port, instances[kind].metrics, qfile, n_names)
        # the workers score the mix's unknown names from the warm-up's events; each new verdict
        # invalidates the plugin's cached miss (client-side caching): measure after that settles
        wait_drained(p.workers(), float("inf"), quiet_s=5, timeout_s=300)
        for kind in order[1:]:
            warm(instances[kind].port, instances[kind].metrics, qfile, n_names)
        before = {k: plugin_counters(instances[k].metrics) for k in order[1:]}
        qps: dict[str, list[float]] = {k: [] for k in order}
        cpu_us: dict[str, list[float]] = {k: [] for k in order}
        kafka_us: dict[str, list[float]] = {k: [] for k in order}
        loads = [os.getloadavg()[0]]
        for _ in range(runs):
            for kind in order:
                inst = instances[kind]
                prof = None
                if pprof_dir is not None and inst.pprof is not None and not qps[kind]:
                    pprof_dir.mkdir(parents=True, exist_ok=True)
                    prof = pb.profile(inst.pprof, max(1, seconds - 2), pprof_dir / f"{kind}.pprof")
                cpu0, svc0 = pb.cpu_seconds(inst.pid), service_cpu(p)
                out = pb.dnsperf(inst.port, qfile, "-l", str(seconds), "-c", "4", "-q", "200")
                done = max(1, pb.completed(out))
                cpu_us[kind].append(1e6 * (pb.cpu_seconds(inst.pid) - cpu0) / done)
                kafka_us[kind].append(1e6 * cpu_delta(svc0, service_cpu(p))["kafka"] / done)
                qps[kind].append(pb.qps(out))
                loads.append(os.getloadavg()[0])
                if prof is not None:
                    prof.join()
                print(f"{kind}: {qps[kind][-1]:,.0f} qps, {cpu_us[kind][-1]:.1f} CPU us/query, Kafka nodes "
                      f"{kafka_us[kind][-1]:.1f} CPU us/query (load {loads[-1]:.1f})", flush=True)
        time.sleep(2)  # the producer's linger
        counters = {k: {c: v - before[k][c] for c, v in plugin_counters(instances[k].metrics).items()}
                    for k in order[1:]}
        return {"qps": qps, "cpu_us": cpu_us, "kafka_us": kafka_us, "load": (min(loads), max(loads)),
                **counters["cluster"], "counters": counters}
    finally:
        for inst in instances.values():
            if inst.proc is not None:
                inst.proc.send_signal(signal.SIGTERM)
                try:
                    inst.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    inst.proc.kill()


# ----------------------------------------------------------------------------- clean-up


def pipeline_indices(es: Any, prefix: str) -> list[str]:
    """The pipeline's indices (not the model registry's)."""
    found = es.indices.get(index=f"{prefix}-*", expand_wildcards="open")
    return sorted(i for i in found if not i.startswith(f"{prefix}-models-"))


def cleanup(p: Profile, names: set[str], vetted_added: list[str], indices_before: set[str]) -> None:
    """Delete the bench names' verdicts, first sightings, vetted entries and Elasticsearch documents."""
    from elasticsearch import helpers

    from dnsentinel.cli.cluster import es as cluster_es
    from dnsentinel.redis_client import sync_client
    from dnsentinel.verdict_cache.es_schema import Q_NAME, Q_REGISTERED
    from dnsentinel.verdict_cache.keys import seen_domain_key, verdict_key, vetted_key
    from dnsentinel.verdict_cache.names import registrable_domain

    admin = p.settings_as("admin")
    prefix = admin.redis.key_prefix
    shared = {"example.com", "example.net"}
    domains = sorted({d for n in names if (d := registrable_domain(n)) and d not in shared})
    r = sync_client(admin.redis)
    keys = [verdict_key(prefix, n) for n in names] + [seen_domain_key(prefix, d) for d in domains]
    for i in range(0, len(keys), 1000):
        r.delete(*keys[i:i + 1000])
    if vetted_added:
        r.hdel(vetted_key(prefix), *vetted_added)
    es = cluster_es.client(admin.elasticsearch, request_timeout=300)
    indices = pipeline_indices(es, admin.elasticsearch.index_prefix)
    listed = sorted(names)
    deleted = 0
    # scan + bulk delete: the profile's Elasticsearch has no reindex module (no _delete_by_query)
    for field, values in ((Q_NAME, listed), (Q_REGISTERED, domains)):
        for i in range(0, len(values), 10_000):
            hits = helpers.scan(es, index=",".join(indices), query={"query": {"terms": {field: values[i:i + 10_000]}}},
                                _source=False, size=2000)
            actions = ({"_op_type": "delete", "_index": h["_index"], "_id": h["_id"]} for h in hits)
            ok, _ = helpers.bulk(es, actions, chunk_size=2000, raise_on_error=False, refresh=True)
            deleted += ok
    # an index the bench's events made (activity of the synthetic logs' day) goes when empty
    for index in sorted(set(indices) - indices_before):
        if es.count(index=index)["count"] == 0:
            es.indices.delete(index=index)
    print(f"clean-up: {len(keys)} Redis keys, {len(vetted_added)} vetted entries, {deleted} ES documents deleted")


# ----------------------------------------------------------------------------- main


def report_replay(a: dict) -> None:
    rate = a["lines"] / a["s"]
    cfg = (f"{a['lines']:,} lines, {a['partitions']} partitions RF 3 min ISR 2, lz4, acks=all, SASL_SSL SCRAM as "
           f"replay, 3 brokers; {a['lines'] / max(a['cpu_s'], 1e-9):,.0f} lines per CPU-second; "
           f"load {a['load'][0]:.1f}→{a['load'][1]:.1f}; {machine()}")
    print(f"replay: {rate:,.0f} lines/s ({a['delivered']:,} delivered, failed {a['failed'] or 0}, {a['s']:.1f} s, "
          f"{a['cpu_s']:.1f} CPU-s)")
    record("cluster", "replay into Kafka (3 nodes, TLS+SCRAM, RF 3)", rate, "lines/s", config=cfg)
    per_m = {k: 1e6 * v / a["delivered"] for k, v in a["services_cpu"].items()}
    print(f"CPU of the data services per million events produced: " + ", ".join(f"{k} {v:.0f} s" for k, v in per_m.items()))
    record("cluster", "Kafka CPU per million events produced (3 nodes)", per_m["kafka"], "CPU-s",
           higher_is_better=False, config=cfg)
    print(f"Kafka: {a['disk'] / 1e6:.1f} MB of log segments on the 3 nodes = {a['disk'] / a['delivered'] / 3:.0f} "
          f"B per event per replica (lz4)")
    record("cluster", "Kafka bytes per query event per replica (lz4)", a["disk"] / a["delivered"] / 3, "B",
           higher_is_better=False, config=cfg)


def report_workers(b: dict) -> None:
    rate, cpu = b["produced"] / b["s"], sum(b["cpu_s"])
    per_cpu = b["consumed"] / max(cpu, 1e-9)
    es_per_event = b["es_bytes"] / max(1, b["produced"])
    split = ", ".join(f"{n:,.0f} events / {c:.1f} CPU-s" for n, c in zip(b["per_worker"], b["cpu_s"]))
    cfg = (f"{b['produced']:,} events replayed, Zipf over {b['names']:,} names (all new to the cluster), "
           f"{len(b['per_worker'])} workers ({split}); load {b['load'][0]:.1f}→{b['load'][1]:.1f}; {machine()}")
    print(f"workers: {rate:,.0f} events/s over {b['s']:.1f} s; {b['consumed']:,.0f} consumed; {per_cpu:,.0f} events "
          f"per worker CPU-second; ES +{b['es_bytes'] / 1e6:.1f} MB ({es_per_event:.0f} B/event), docs {b['es_docs']}")
    record("cluster", "workers' throughput (2 workers, one group)", rate, "events/s", config=cfg)
    record("cluster", "events per worker CPU-second", per_cpu, "events/CPU-s", config=cfg)
    record("cluster", "Elasticsearch bytes per event (primaries + replicas)", es_per_event, "B",
           higher_is_better=False, config=f"docs added {b['es_docs']}; {cfg}")
    per_m = {k: 1e6 * v / max(1, b["produced"]) for k, v in b["services_cpu"].items()}
    print(f"CPU of the data services per million events decided (while replay also produced them): "
          + ", ".join(f"{k} {v:.0f} s" for k, v in per_m.items()))
    record("cluster", "Elasticsearch CPU per million events decided (3 nodes)", per_m["elasticsearch"], "CPU-s",
           higher_is_better=False, config=f"Kafka {per_m['kafka']:.0f} CPU-s (incl. producing them), Redis "
           f"{per_m['redis']:.0f} CPU-s per million; {cfg}")
    k = b["kafka"]
    print(f"Kafka segments added (3 replicas): queries {k['queries'] / 1e6:.1f} MB, signals {k['signals'] / 1e6:.1f} MB, "
          f"verdicts {k['verdicts'] / 1e6:.1f} MB; {b['signals']:,.0f} detection signals; Redis +{b['redis_keys']:,} keys, "
          f"+{b['redis_bytes'] / 1e6:.1f} MB")
    per_event = (k["queries"] + k["signals"] + k["verdicts"]) / 3 / max(1, b["produced"])
    record("cluster", "Kafka bytes per event per replica (queries + signals + verdicts)", per_event, "B",
           higher_is_better=False, config=f"queries {k['queries'] / 3 / max(1, b['produced']):.0f} B, signals "
           f"{k['signals'] / 3 / max(1, b['produced']):.0f} B, verdicts {k['verdicts'] / 3 / max(1, b['produced']):.0f} B; {cfg}")
    if b["redis_keys"] > 0:
        record("cluster", "Redis memory per new key (verdicts, first sightings)", b["redis_bytes"] / b["redis_keys"], "B",
               higher_is_better=False, config=f"+{b['redis_keys']:,} keys; {cfg}")


def report_plugin(c: dict, n_names: int, seconds: int, runs: int) -> None:
    med = {k: statistics.median(v) for k, v in c["qps"].items()}
    cpu = {k: statistics.median(v) for k, v in c["cpu_us"].items()}
    kafka = {k: statistics.median(v) for k, v in c["kafka_us"].items()}
    runs_of = "; ".join(f"{k} {[round(q) for q in v]}" for k, v in c["qps"].items())
    cfg = (f"coredns-1 of the profile (Sentinel + TLS to Redis, SASL_SSL to Kafka) vs plain CoreDNS with the same "
           f"Corefile minus dnsentinel, and the plugin with no_events; plugin_bench's mix of {n_names} names; "
           f"dnsperf -c 4 -q 200 -l {seconds} x{runs}; {runs_of} qps; coredns-1: {c['local']:.0f} local cache hits, "
           f"{c['remote']:.0f} Redis round trips; {c['produced']:.0f} events produced, {c['dropped']:.0f} dropped, "
           f"{c['redis_errors']:.0f} Redis errors; load {c['load'][0]:.1f}-{c['load'][1]:.1f}; {machine()}")
    for k in med:
        print(f"plugin: {k} {med[k]:,.0f} qps, {cpu[k]:.1f} CPU us/query, Kafka nodes {kafka[k]:.1f} CPU us/query")
    record("cluster", "plain CoreDNS QPS (median)", med["plain"], "qps", config=cfg)
    record("cluster", "cluster CoreDNS QPS (median)", med["cluster"], "qps", config=cfg)
    record("cluster", "cluster plugin QPS / plain QPS (medians)", 100 * med["cluster"] / med["plain"], "%", target=90,
           config=cfg)
    record("cluster", "cluster plugin without events QPS / plain QPS (medians)", 100 * med["no_events"] / med["plain"],
           "%", config=f"CPU us/query no_events {cpu['no_events']:.1f}; {cfg}")
    record("cluster", "CPU-bound QPS ratio (plain / cluster plugin CPU per query)", 100 * cpu["plain"] / cpu["cluster"],
           "%", target=90, config=f"CPU us/query plain {cpu['plain']:.1f}, cluster {cpu['cluster']:.1f}; {cfg}")
    record("cluster", "Kafka nodes CPU per query while coredns-1 runs", kafka["cluster"], "us", higher_is_better=False,
           config=f"while plain runs {kafka['plain']:.1f} us; {cfg}")
    record("cluster", "plugin events dropped", c["dropped"], "events", target=0, higher_is_better=False, config=cfg)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replay-lines", type=int, default=100_000 if QUICK else 300_000)
    ap.add_argument("--replay-names", type=int, default=50_000)
    ap.add_argument("--partitions", type=int, default=6, help="partitions of the replay phase's topic")
    ap.add_argument("--worker-events", type=int, default=30_000 if QUICK else 100_000)
    ap.add_argument("--worker-names", type=int, default=3_000,
                    help="distinct names of the worker phase (each new to the cluster: scored once)")
    ap.add_argument("--plugin-names", type=int, default=10_000)
    ap.add_argument("--seconds", type=int, default=5 if QUICK else 8, help="length of each dnsperf run")
    ap.add_argument("--runs", type=int, default=3, help="dnsperf runs per instance (alternating)")
    ap.add_argument("--pprof", type=Path, help="write CPU profiles (CoreDNS pprof) of the plugin phase's copies here")
    ap.add_argument("--skip", action="append", default=[], choices=["replay", "workers", "plugin"])
    args = ap.parse_args()

    p = Profile()
    p.use_admin_process_wide()
    names: set[str] = set()
    vetted_added: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="cluster-bench-"))
    print(f"cluster bench: {p.dir}, load {os.getloadavg()[0]:.1f}", flush=True)
    from dnsentinel.cli.cluster import es as cluster_es

    admin_es = p.settings_as("admin").elasticsearch
    indices_before = set(pipeline_indices(cluster_es.client(admin_es), admin_es.index_prefix))
    try:
        if "replay" not in args.skip:
            report_replay(replay_phase(p, args.replay_lines, args.replay_names, args.partitions, work))
        if "workers" not in args.skip:
            report_workers(worker_phase(p, args.worker_events, args.worker_names, work, names))
        if "plugin" not in args.skip:
            report_plugin(plugin_phase(p, args.plugin_names, args.seconds, args.runs, work, names, vetted_added, args.pprof),
                          args.plugin_names, args.seconds, args.runs)
    finally:
        if names:
            print("waiting for the workers to drain the bench's events before cleaning up...", flush=True)
            try:
                workers = p.workers()
                wait_drained(workers, float("inf"), quiet_s=10, timeout_s=180)
                es_backlog_empty(workers)
            except (OSError, SystemExit) as exc:
                print(f"cluster bench: could not wait for the workers ({exc}); cleaning up now", file=sys.stderr)
            cleanup(p, names, vetted_added, indices_before)
        for f in work.iterdir():
            f.unlink()
        work.rmdir()


if __name__ == "__main__":
    main()
