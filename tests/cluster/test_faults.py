"""Faults on the cluster profile (issue 16): a node of each kind dies, the pipeline carries on.

Each test SIGKILLs one node of the running profile (the pid files the node scripts write under
``.state/cluster``), checks what the product promises while it is gone and after, then starts it
again with the node script's own ``start`` (which restarts what is missing) and waits for the
script's ``status`` to be healthy, in a ``finally``: the next test starts from a healthy cluster.
Cheapest first: bad credentials (no node dies), a worker, the Redis primary, a Kafka broker, an
Elasticsearch node.

What is asserted is behaviour (nothing lost, nothing counted twice, DNS kept answering, the
failover followed); the one timing bound is the issue's "a vetted block written after a Redis
failover is enforced by DNS within 5 s". Recovery times are measured and printed as
``RECOVERY <fault>: <what> <seconds>`` (run with ``-s``); docs/BENCHMARKS.md has them.

Run: ``.venv/bin/pytest -s tests/cluster/test_faults.py`` (the ``cluster`` fixture brings the
profile up if it is not already).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import string
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from polling import wait_for

from dnsentinel.cli.cluster import kafka as ck
from dnsentinel.settings import REPO_ROOT
from dnsentinel.verdict_cache.es_schema import COUNT, Q_NAME

pytestmark = [pytest.mark.cluster, pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]

SCRIPTS = REPO_ROOT / "deploy" / "cluster"
RESTORE_TIMEOUT_S = 420.0
"""A node script's ``start`` plus healthy ``status``: an Elasticsearch JVM on the loaded 2-core machine takes minutes."""
LOST_SHARE = 0.001
"""dnsperf's lost queries allowed while the Redis primary dies: 0.1 % of those sent. The plugin fails
open within its redis_timeout, so a Redis outage costs no answer at all; what can go is a UDP datagram
dropped on loopback when the 2-core machine stalls (socket buffer full). A plugin that waited on the dead
primary instead would lose everything sent during Sentinel's 5 s down-after period (~1,500 queries at
300 qps, 25 %), so the bound tells the two apart with room to spare."""
FAILOVER_ENFORCED_S = 5.0
"""The issue's bound: a vetted block written after the failover is enforced by DNS within 5 s."""


# --- helpers -------------------------------------------------------------------------------------


def _tag(n: int = 6) -> str:
    return "".join(random.choices(string.ascii_lowercase, k=n))


def _recovery(fault: str, what: str, seconds: float) -> None:
    print(f"RECOVERY {fault}: {what} {seconds:.1f} s", flush=True)


def wait_progress(measure: Callable[[], int], target: int, what: str, stall_s: float = 180.0,
                  cap_s: float = 1200.0, every: float = 2.0) -> int:
    """Poll ``measure()`` until it reaches ``target``; fail when it has not moved for ``stall_s``.

    For work that is slow but moving on a loaded machine (an Elasticsearch bulk backlog after
    another engineer's benchmark): only a stall is a failure, not the time it takes."""
    start = last_move = time.monotonic()
    best = measure()
    while best < target:
        now = time.monotonic()
        if now - last_move > stall_s or now - start > cap_s:
            pytest.fail(f"{what}: {best} of {target}, no progress for {now - last_move:.0f} s "
                        f"({now - start:.0f} s in all)", pytrace=False)
        time.sleep(every)
        got = measure()
        if got > best:
            best, last_move = got, time.monotonic()
    return best


def _script(service: str, *args: str, timeout_s: float = RESTORE_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPTS / f"{service}.sh"), *args], capture_output=True, text=True,
                          timeout=timeout_s, cwd=REPO_ROOT)


def _restore(service: str, *start_args: str) -> None:
    """``<service>.sh start [NODE]``, then its ``status`` healthy: the cluster as the next test wants it."""
    started = _script(service, "start", *start_args)
    assert started.returncode == 0, f"{service}.sh start {' '.join(start_args)} failed:\n{started.stdout}{started.stderr}"
    wait_for(lambda: _script(service, "status", timeout_s=60).returncode == 0, 180, f"{service}.sh status healthy")


def _pid(pidfile: Path) -> int:
    return int(pidfile.read_text().strip())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in _proc_state(pid)


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:", 1)[1].splitlines()[0].lower()
    except (OSError, IndexError):
        return "gone"


def _sigkill(pidfile: Path) -> float:
    """SIGKILL the node of ``pidfile``; returns the monotonic time of the kill once it is gone."""
    pid = _pid(pidfile)
    assert _alive(pid), f"{pidfile}: pid {pid} is not running before the test kills it"
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: not _alive(pid), 30, f"pid {pid} ({pidfile.parent.name}) to die")
    return killed


def _http_ok(url: str, timeout_s: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return resp.status == 200
    except OSError:
        return False


def _metrics(port: int) -> dict[str, float]:
    """Prometheus text of ``port``: ``name{labels}`` -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def _total(samples: dict[str, float], name: str) -> float:
    return sum(v for k, v in samples.items() if k == name or k.startswith(name + "{"))


def _dns(port: int, name: str, timeout_s: float = 2.0) -> tuple[str, bool]:
    """(rcode, blocked) of ``name`` A from the CoreDNS on ``port``: blocked = NXDOMAIN/REFUSED/EDE/sinkhole."""
    import dns.edns
    import dns.message
    import dns.query
    import dns.rcode

    reply = dns.query.udp(dns.message.make_query(name, "A", use_edns=0), "127.0.0.1", port=port, timeout=timeout_s)
    rcode = dns.rcode.to_text(reply.rcode())
    answers = [rr.to_text() for rrset in reply.answer for rr in rrset]
    ede = any(o.otype == dns.edns.OptionType.EDE for o in reply.options)
    return rcode, rcode != "NOERROR" or ede or (bool(answers) and answers[0] in ("0.0.0.0", "::"))


def _dga_names(n: int, run: str) -> list[str]:
    """Fresh DGA-looking names (the load generator's), unique to this run."""
    from dnsentinel.producers.loadgen import synthetic_dga

    rng = random.Random(run)
    return [f"{run}{synthetic_dga(rng)}" for _ in range(n)]


@dataclass
class Ports:
    coredns: list[int]
    coredns_metrics: list[int]
    workers: list[int]
    dashboard: int
    sentinels: list[int]
    redis: dict[str, int]


def _ports(cluster: Any) -> Ports:
    n = cluster.nodes
    dns = [int(n["COREDNS_PORT"]) + 10 * i for i in range(int(n["COREDNS_NODES"]))]
    return Ports(dns, [p + 3 for p in dns],
                 [int(n["WORKER_WEB_PORT"]) + i for i in range(int(n["WORKER_NODES"]))], int(n["DASHBOARD_PORT"]),
                 [int(n["SENTINEL_PORT"]) + i for i in range(int(n["SENTINEL_NODES"]))],
                 {"redis-primary": int(n["REDIS_PRIMARY_PORT"]), "redis-replica": int(n["REDIS_REPLICA_PORT"])})


def _cache(cluster: Any, user: str = "admin") -> Any:
    from dnsentinel.verdict_cache.cache import VerdictCache

    return VerdictCache.from_settings(cluster.settings_as(user))


def _es(cluster: Any) -> Any:
    from elasticsearch import Elasticsearch

    return Elasticsearch(**cluster.settings_as("admin").elasticsearch.client_kwargs())


def _activity(es: Any, prefix: str, names: list[str]) -> dict[str, int]:
    """The activity documents' counts per name (``dnsentinel.activity.count`` summed), refreshed first."""
    es.indices.refresh(index=f"{prefix}-activity-*", ignore_unavailable=True, allow_no_indices=True)
    res = es.search(index=f"{prefix}-activity-*", size=0, query={"terms": {Q_NAME: names}},
                    aggs={"n": {"terms": {"field": Q_NAME, "size": len(names) + 10},
                                "aggs": {"c": {"sum": {"field": COUNT}}}}},
                    ignore_unavailable=True, allow_no_indices=True)
    return {b["key"]: int(b["c"]["value"]) for b in res["aggregations"]["n"]["buckets"]}


def _workers_healthy(ports: Ports) -> bool:
    return all(_http_ok(f"http://127.0.0.1:{p}/health") for p in ports.workers)


def _wait_workers_healthy(ports: Ports, what: str, timeout_s: float = 30) -> None:
    """Every worker answers /health within ``timeout_s``: on this loaded 2-core box a worker that just
    took over partitions or followed a failover can leave its web view unanswered for a few seconds
    (one 3 s probe failed that way in CI while the worker was alive and consuming)."""
    wait_for(lambda: _workers_healthy(ports), timeout_s, f"every worker answering /health {what}", every=1)


def _worker_pids(cluster: Any) -> dict[str, int]:
    return {f"worker-{i + 1}": _pid(cluster.dir / f"worker-{i + 1}" / f"worker-{i + 1}.pid")
            for i in range(int(cluster.nodes["WORKER_NODES"]))}


# --- replayed events: the product's own producer, timed ------------------------------------------


@dataclass
class Events:
    """A replay of ``lines`` (jsonl query events) with each event's produce time."""

    names: list[str]
    """Distinct names, in the order of their first event."""
    lines: list[str]
    per_name: dict[str, int]
    sent_at: list[float] = field(default_factory=list)
    first_at: dict[str, float] = field(default_factory=dict)

    def names_first_sent(self, start: float, end: float) -> list[str]:
        return [n for n, t in self.first_at.items() if start <= t < end]


def _events(run: str, unique: int, repeats: int) -> Events:
    """``unique`` new names; ``repeats`` more events on some of them (clients and minutes vary)."""
    rng = random.Random(run)
    names = [f"{run}{i}-{''.join(rng.choices(string.ascii_lowercase, k=8))}.com" for i in range(unique)]
    seq = names + [rng.choice(names) for _ in range(repeats)]
    rng.shuffle(seq)
    now = time.time()
    lines = [json.dumps({"ts": round(now + i / 1000, 3), "name": n, "qtype": "A", "client": f"10.16.{i % 7}.{i % 5 + 1}"})
             for i, n in enumerate(seq)]
    per_name: dict[str, int] = {}
    order: list[str] = []
    for n in seq:
        if n not in per_name:
            order.append(n)
        per_name[n] = per_name.get(n, 0) + 1
    return Events(order, lines, per_name)


class _TimedSink:
    """The replay's sink (EventProducer) noting when each event was handed to it."""

    def __init__(self, producer: Any, events: Events) -> None:
        self.producer, self.events = producer, events

    def produce(self, key: bytes, value: str | bytes) -> None:
        now = time.monotonic()
        self.events.sent_at.append(now)
        name = json.loads(value)["name"] if isinstance(value, (bytes, str)) else ""
        self.events.first_at.setdefault(name, now)
        self.producer.produce(key, value)


@contextmanager
def _replaying(cluster: Any, events: Events, rate: float, tmp: Path) -> Iterator[dict[str, Any]]:
    """Replay ``events`` in a thread as the ``replay`` user (acks=all, idempotent), at ``rate`` events/s.

    Yields a dict that gets ``producer`` (the EventProducer) at once and ``summary`` when done."""
    from dnsentinel.producers.kafka_out import EventProducer
    from dnsentinel.producers.replay import ReplayOptions, replay

    path = tmp / f"events-{len(events.lines)}.jsonl"
    path.write_text("\n".join(events.lines) + "\n")
    producer = EventProducer(settings=ck.client_settings(cluster.settings_as("replay"), "replay", cluster.dir))
    producer.check_reachable()
    out: dict[str, Any] = {"producer": producer}

    def run() -> None:
        try:
            out["summary"] = replay([str(path)], _TimedSink(producer, events), ReplayOptions(fmt="jsonl", rate=rate))
            out["undelivered"] = producer.close(180)
        except Exception as exc:  # reported by the test, not lost in the thread
            out["error"] = exc

    thread = threading.Thread(target=run, name="fault-replay", daemon=True)
    thread.start()
    out["thread"] = thread
    yield out
    thread.join(300)
    assert not thread.is_alive(), "the replay did not finish within 300 s"


class _VerdictWatch:
    """Polls Redis for the verdicts of ``names``; notes when each first appeared (monotonic)."""

    def __init__(self, cluster: Any, names: list[str], every: float = 0.25) -> None:
        self.cache = _cache(cluster)
        self.pending = set(names)
        self.seen: dict[str, float] = {}
        self.errors = 0
        self._stop = threading.Event()
        self._every = every
        self._thread = threading.Thread(target=self._run, name="verdict-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and self.pending:
            batch = list(self.pending)
            try:
                got = set()
                for i in range(0, len(batch), 2000):
                    got |= set(self.cache.get_verdicts(batch[i:i + 2000]))
            except Exception:  # a failover in progress: try again
                self.errors += 1
                got = set()
            now = time.monotonic()
            for n in got:
                self.seen[n] = now
            self.pending -= got
            self._stop.wait(self._every)

    def first_after(self, names: list[str], t0: float) -> float | None:
        """Seconds from ``t0`` to the first verdict among ``names`` (None: none yet)."""
        times = [self.seen[n] for n in names if n in self.seen and self.seen[n] >= t0]
        return min(times) - t0 if times else None

    def last_of(self, names: list[str], t0: float) -> float | None:
        times = [self.seen.get(n) for n in names]
        return None if not times or None in times else max(times) - t0  # type: ignore[type-var]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.cache.close()


def _assert_counted_once(cluster: Any, events: Events, delivered: int, stall_s: float = 180) -> None:
    """Every name has a verdict, and the activity counts equal the delivered events exactly (stable).

    Waits as long as the counts keep moving: a worker's Elasticsearch backlog (other load on the
    shared cluster) delays them, only a stall fails."""
    cache = _cache(cluster)
    try:
        wait_progress(lambda: len(cache.get_verdicts(events.names)), len(events.names),
                      "new names with a verdict in Redis", stall_s=stall_s)
    finally:
        cache.close()
    es = _es(cluster)
    prefix = cluster.settings_as("admin").elasticsearch.index_prefix

    def counted() -> int:
        total = sum(_activity(es, prefix, events.names).values())
        assert total <= delivered, f"activity counts {total} > {delivered} events delivered: counted twice"
        return total

    wait_progress(counted, delivered, "events counted in Elasticsearch's activity documents", stall_s=stall_s)
    time.sleep(5)  # a replay that double counts shows up in the next flushes
    got = _activity(es, prefix, events.names)
    assert sum(got.values()) == delivered, f"activity counts {sum(got.values())} != {delivered} delivered events"
    wrong = {n: (got.get(n), k) for n, k in events.per_name.items() if got.get(n) != k}
    assert not wrong, f"{len(wrong)} names whose activity count differs from their events, e.g. {list(wrong.items())[:5]}"
    es.close()


def _check_replay(out: dict[str, Any], events: Events) -> int:
    """The replay finished without error; returns the events Kafka acknowledged."""
    assert "error" not in out, f"the replay failed: {out['error']!r}"
    producer = out["producer"]
    assert out.get("undelivered") == 0, f"{out.get('undelivered')} events undelivered at close; failed {producer.failed}"
    assert producer.sent == len(events.lines), f"{producer.sent} of {len(events.lines)} events produced"
    assert not producer.failed, f"deliveries failed: {dict(producer.failed)}"
    return producer.delivered


# --- 5. wrong credentials and an untrusted CA: the product's processes -----------------------------


def _worker_env(cluster: Any, tmp: Path, **override: str) -> dict[str, str]:
    """The environment apps.sh gives a worker, on free ports and its own state dir, plus ``override``."""
    pw = cluster.password("worker")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DNSENTINEL_")}
    env.update({
        "DNSENTINEL_CONFIG": str(cluster.settings_file), "DNSENTINEL_STACK__STATE_DIR": str(tmp / "state"),
        "DNSENTINEL_REDIS__USERNAME": "worker", "DNSENTINEL_REDIS__PASSWORD": pw,
        "DNSENTINEL_KAFKA__SASL_USERNAME": "worker", "DNSENTINEL_KAFKA__SASL_PASSWORD": pw,
        "DNSENTINEL_ELASTICSEARCH__USERNAME": "worker", "DNSENTINEL_ELASTICSEARCH__PASSWORD": pw,
        "DNSENTINEL_WORKER__WEB_PORT": str(_free_port()), "DNSENTINEL_WORKER__METRICS_PORT": str(_free_port()),
        "DNSENTINEL_WORKER__APP_ID": f"fault-{_tag()}",  # never joins the cluster's group, even if it started
    })
    env.update(override)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_worker(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "python"), "-m", "dnsentinel.cli.main", "worker",
                           "--loglevel", "warning"], env=env, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)


@pytest.mark.parametrize(("case", "service", "cause"), [
    ("kafka-password", "kafka", "authentication failed"),
    ("redis-password", "redis", "authentication failed"),
    ("es-password", "elasticsearch", "authentication failed"),
    ("untrusted-ca", "redis", "not trusted"),
])
def test_1_worker_with_bad_credentials_exits_with_one_line(cluster: Any, tmp_path: Path, case: str, service: str,
                                                           cause: str) -> None:
    """A worker that cannot log in exits at once (preflight), one line naming the service and cause."""
    override: dict[str, str] = {}
    if case == "kafka-password":
        override["DNSENTINEL_KAFKA__SASL_PASSWORD"] = "not-the-password"
    elif case == "redis-password":
        override["DNSENTINEL_REDIS__PASSWORD"] = "not-the-password"
    elif case == "es-password":
        override["DNSENTINEL_ELASTICSEARCH__PASSWORD"] = "not-the-password"
    else:  # a CA of its own that signed none of the cluster's certificates
        subprocess.run([str(REPO_ROOT / "deploy" / "multi" / "pki.sh"), str(tmp_path / "other")], check=True,
                       capture_output=True)
        other = str(tmp_path / "other" / "pki" / "ca.crt")
        override.update(DNSENTINEL_REDIS__SSL_CA_CERTS=other, DNSENTINEL_KAFKA__SSL_CAFILE=other,
                        DNSENTINEL_ELASTICSEARCH__CA_CERTS=other)
    t0 = time.monotonic()
    done = _run_worker(_worker_env(cluster, tmp_path, **override))
    took = time.monotonic() - t0
    lines = [ln for ln in (done.stdout + done.stderr).splitlines() if ln.strip()]
    print(f"worker with {case}: exit {done.returncode} after {took:.1f} s: {lines}")
    assert done.returncode != 0, f"the worker did not exit with an error: {lines}"
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert len(lines) == 1, f"expected one line, got {len(lines)}: {lines}"
    assert service in lines[0].lower() and cause in lines[0].lower(), lines[0]
    assert cluster.password("worker") not in lines[0]


def test_2_coredns_with_a_wrong_redis_password_logs_it_and_answers(cluster: Any, tmp_path: Path) -> None:
    """CoreDNS whose Redis password is wrong: one clear log line, every query answered (fail open), counted."""
    node = "coredns-9"  # the profile's Corefile for a ninth node: ports of its own
    corefile = _script("coredns", "corefile", node, timeout_s=30)
    assert corefile.returncode == 0, corefile.stderr
    base = int(cluster.nodes["COREDNS_PORT"]) + 80
    port, metrics = base, base + 3
    (tmp_path / "Corefile").write_text(corefile.stdout)
    env = {**os.environ, "DNSENTINEL_REDIS_PASSWORD": "not-the-password",
           "DNSENTINEL_KAFKA_PASSWORD": cluster.password("coredns")}
    log = (tmp_path / "coredns.log").open("w")
    binary = REPO_ROOT / ".state" / "bin" / "coredns"
    proc = subprocess.Popen([str(binary), "-conf", str(tmp_path / "Corefile")], cwd=tmp_path, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        def answered() -> str | None:
            try:
                return _dns(port, f"probe-{_tag()}.example.com", 1.0)[0]
            except Exception:
                return None

        wait_for(answered, 60, f"{node} answering on {port}")
        names = [f"{_tag(10)}.com" for _ in range(20)]
        rcodes = [_dns(port, n)[0] for n in names]
        assert set(rcodes) == {"NOERROR"}, f"fail open means the upstream's answer: {rcodes}"
        errors = _total(_metrics(metrics), "coredns_dnsentinel_redis_errors_total")
        assert errors >= len(names), f"{errors} Redis errors counted for {len(names)} queries that failed open"
        def clear_line() -> list[str]:  # logged by the plugin's background dial: poll for it
            return [ln for ln in (tmp_path / "coredns.log").read_text().splitlines()
                    if "redis" in ln.lower() and re.search(r"WRONGPASS|auth", ln, re.I)]

        redis_lines = wait_for(clear_line, 30, f"{node} logging why Redis refused it")
        text = (tmp_path / "coredns.log").read_text()
        print(f"{node}: {errors:.0f} fail-opens counted; its Redis line: {redis_lines[0]}")
        assert "panic" not in text and "goroutine" not in text, text[-3000:]
        assert cluster.password("coredns") not in text
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


# --- 4. a worker dies ------------------------------------------------------------------------------


def test_3_worker_killed_group_rebalances_nothing_lost_nothing_doubled(cluster: Any, tmp_path: Path) -> None:
    ports = _ports(cluster)
    _wait_workers_healthy(ports, "before the test")
    run = f"fw{_tag(4)}"
    events = _events(run, unique=1500, repeats=1500)
    watch = _VerdictWatch(cluster, events.names)
    pidfile = cluster.dir / "worker-1" / "worker-1.pid"
    survivor = _worker_pids(cluster)["worker-2"]
    try:
        with _replaying(cluster, events, rate=100, tmp=tmp_path) as out:
            wait_for(lambda: len(events.sent_at) >= 500, 60, "500 events produced before the kill")
            killed = _sigkill(pidfile)
            print(f"worker-1 SIGKILLed after {len(events.sent_at)} events produced, {len(watch.seen)} names scored")
        delivered = _check_replay(out, events)
        # Rebalance: the events sent in the first 2 s after the kill land on all partitions, half of
        # them worker-1's; their last verdict comes once worker-2 has taken those partitions over.
        just_after = events.names_first_sent(killed, killed + 2)
        wait_for(lambda: watch.last_of(just_after, killed) is not None, 240,
                 "verdicts of the names first sent just after the kill (the group rebalancing to worker-2)")
        _recovery("worker-1 SIGKILL", "first verdict after the kill", watch.first_after(events.names, killed) or 0)
        _recovery("worker-1 SIGKILL", "rebalance (last verdict of names sent in the 2 s after the kill)",
                  watch.last_of(just_after, killed) or 0)
        _assert_counted_once(cluster, events, delivered)
        assert _alive(survivor), "worker-2 did not carry on"
        wait_for(lambda: _http_ok(f"http://127.0.0.1:{ports.workers[1]}/health"), 30, "worker-2 answering /health")
    finally:
        watch.stop()
        _restore("apps", "worker-1")
    _wait_workers_healthy(ports, "after worker-1 is back")


# --- 3. the Redis primary dies under dnsperf -------------------------------------------------------


def _sentinel_master(cluster: Any, ports: Ports) -> int | None:
    """The master's port as the first answering Sentinel names it."""
    import redis

    r = cluster.settings_as("admin").redis
    from dnsentinel.redis_client import sentinel_kwargs

    for p in ports.sentinels:
        client = redis.Redis("127.0.0.1", p, **sentinel_kwargs(r))
        try:
            addr = client.sentinel_get_master_addr_by_name(r.sentinel_master)
            if addr:
                return int(addr[1])
        except redis.RedisError:
            continue
        finally:
            client.close()
    return None


def _dnsperf(port: int, qfile: Path, seconds: int, qps: int) -> subprocess.Popen[str]:
    return subprocess.Popen(["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(qfile), "-l", str(seconds),
                             "-Q", str(qps), "-t", "2", "-c", "4"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _dnsperf_result(out: str) -> dict[str, int]:
    def num(label: str) -> int:
        m = re.search(rf"{label}:\s+(\d+)", out)
        assert m, f"dnsperf printed no '{label}':\n{out}"
        return int(m.group(1))

    return {"sent": num("Queries sent"), "completed": num("Queries completed"), "lost": num("Queries lost")}


def test_4_redis_primary_killed_during_dnsperf(cluster: Any, tmp_path: Path) -> None:
    ports = _ports(cluster)
    old_port = _sentinel_master(cluster, ports)
    assert old_port in ports.redis.values(), f"the Sentinels name no master of the profile ({old_port})"
    old_node = next(n for n, p in ports.redis.items() if p == old_port)
    run = f"fr{_tag(4)}"
    # Unique names: every lookup misses the plugin's local cache and CoreDNS's cache, so each one
    # needs Redis (and fails open while there is no primary).
    qps, seconds = 300, 20
    names = [f"{run}{i}.{_tag(8)}.com" for i in range(qps * seconds + 500)]
    qfile = tmp_path / "queries.txt"
    qfile.write_text("".join(f"{n} A\n" for n in names))
    vetted = [f"{run}-vetted{i}.org" for i in range(20)]
    dashboard = _cache(cluster, "dashboard")  # vetting as the dashboard does it (WAIT for the replica)
    admin = _cache(cluster)
    before = _metrics(ports.coredns_metrics[0])
    perf = _dnsperf(ports.coredns[0], qfile, seconds, qps)
    promoted_at: float | None = None
    try:
        time.sleep(3)
        for n in vetted:  # decisions made just before the kill, the last one right before it
            dashboard.set_vetted(n, "block", by="fault-test", note="written just before the primary dies")
        assert dashboard.counts["unreplicated"] == 0, "a vetted change was not acknowledged by the replica"
        killed = _sigkill(cluster.dir / "redis" / old_node / "redis.pid")
        promoted = wait_for(lambda: (p := _sentinel_master(cluster, ports)) != old_port and p, 60,
                            "the Sentinels promoting the replica")
        promoted_at = time.monotonic()
        _recovery("redis primary SIGKILL", "Sentinel promotion", promoted_at - killed)
        assert promoted in ports.redis.values() and promoted != old_port

        # The plugin follows: a block written after the failover is enforced within 5 s (a name never queried).
        fresh = f"{run}-after-failover.org"
        admin.set_vetted(fresh, "block", by="fault-test")
        written = time.monotonic()
        deadline = written + FAILOVER_ENFORCED_S
        blocked = False
        while time.monotonic() < deadline and not blocked:
            blocked = _dns(ports.coredns[0], fresh, 1.0)[1]
            if not blocked:
                time.sleep(0.1)
        took = time.monotonic() - written
        assert blocked, f"a vetted block written after the failover was not enforced by DNS after {took:.1f} s"
        _recovery("redis primary SIGKILL", "vetted block enforced by DNS after the failover (from the write)", took)
        _recovery("redis primary SIGKILL", "kill to the first block enforced on the new primary", time.monotonic() - killed)

        # The workers follow: a name queried now gets its verdict written on the new primary.
        probe = f"{run}-probe.{_tag(10)}.net"
        asked = time.monotonic()
        _dns(ports.coredns[0], probe)
        wait_for(lambda: admin.get_verdicts([probe]), 60, f"a worker's verdict for {probe} after the failover", every=0.1)
        _recovery("redis primary SIGKILL", "worker verdict on the new primary (query to verdict)", time.monotonic() - asked)

        out, _ = perf.communicate(timeout=seconds + 60)
        after = _metrics(ports.coredns_metrics[0])
        res = _dnsperf_result(out)
        print(f"dnsperf: {res}")
        assert res["completed"] > qps * seconds // 2, out
        assert res["lost"] <= LOST_SHARE * res["sent"], f"{res['lost']} of {res['sent']} queries lost (bound {LOST_SHARE:.1%}):\n{out}"
        fail_opens = _total(after, "coredns_dnsentinel_redis_errors_total") - _total(before, "coredns_dnsentinel_redis_errors_total")
        print(f"fail-opens counted by coredns-1: {fail_opens:.0f}")
        assert fail_opens > 0, "the plugin counted no failed (fail-open) lookup while there was no primary"

        # No vetted decision lost: every one written before the kill is on the new primary.
        kept = admin.get_vetted(vetted)
        lost = [n for n in vetted if n not in kept or kept[n].action != "block"]
        assert not lost, f"vetted decisions lost in the failover: {lost}"
    finally:
        if perf.poll() is None:
            perf.kill()
            perf.communicate()
        dashboard.close()
        admin.close()
        _restore("redis")  # the killed node comes back as a replica of the new primary
    assert _sentinel_master(cluster, ports) != old_port
    lines = _script("redis", "status", timeout_s=60).stdout
    assert re.search(rf"^{old_node} \S+ healthy replica of", lines, re.M), lines


# --- 1. a Kafka broker dies under replay load --------------------------------------------------------


def _leader_of_queries(cluster: Any) -> int:
    from confluent_kafka.admin import AdminClient

    s = cluster.settings_as("admin")
    meta = AdminClient(s.kafka.confluent_config()).list_topics(s.kafka.queries_topic, timeout=30)
    return meta.topics[s.kafka.queries_topic].partitions[0].leader


def _isr_full(cluster: Any) -> bool:
    from confluent_kafka.admin import AdminClient

    s = cluster.settings_as("admin")
    meta = AdminClient(s.kafka.confluent_config()).list_topics(timeout=30)
    return all(len(p.isrs) == len(p.replicas) for name, t in meta.topics.items() if not name.startswith("__")
               for p in t.partitions.values())


def test_5_kafka_broker_killed_under_replay_load(cluster: Any, tmp_path: Path) -> None:
    ports = _ports(cluster)
    _wait_workers_healthy(ports, "before the test")
    workers = _worker_pids(cluster)
    broker = _leader_of_queries(cluster)
    run = f"fk{_tag(4)}"
    events = _events(run, unique=2000, repeats=2000)
    watch = _VerdictWatch(cluster, events.names)
    try:
        with _replaying(cluster, events, rate=250, tmp=tmp_path) as out:
            wait_for(lambda: len(events.sent_at) >= 1300, 60, "a third of the events produced before the kill")
            killed = _sigkill(cluster.dir / f"kafka-{broker}" / "kafka.pid")
            print(f"kafka-{broker} (leader of the queries topic's partition 0) SIGKILLed after {len(events.sent_at)} events")
        delivered = _check_replay(out, events)
        after_kill = events.names_first_sent(killed, float("inf"))
        wait_for(lambda: watch.first_after(after_kill, killed) is not None, 240, "a verdict for a name sent after the kill")
        _recovery(f"kafka-{broker} SIGKILL", "first verdict of a name sent after the kill", watch.first_after(after_kill, killed) or 0)
        just_after = events.names_first_sent(killed, killed + 2)
        wait_for(lambda: watch.last_of(just_after, killed) is not None, 240, "verdicts of the names sent just after the kill")
        _recovery(f"kafka-{broker} SIGKILL", "last verdict of the names sent in the 2 s after the kill",
                  watch.last_of(just_after, killed) or 0)
        _assert_counted_once(cluster, events, delivered)
        assert _worker_pids(cluster) == workers and all(_alive(p) for p in workers.values()), "a worker restarted or died"
        # Alive (the pids above) and answering: a loaded 2-core box can miss one 3 s probe, so allow 30 s.
        _wait_workers_healthy(ports, "after the broker kill")
    finally:
        watch.stop()
        t0 = time.monotonic()
        _restore("kafka", str(broker))
        wait_for(lambda: _isr_full(cluster), 180, "every partition's replicas back in sync", every=2)
        _recovery(f"kafka-{broker} SIGKILL", "restart until every replica is in sync", time.monotonic() - t0)


# --- 2. an Elasticsearch node dies -------------------------------------------------------------------


def _es_master(cluster: Any) -> int:
    es = _es(cluster)
    try:
        name = es.cat.master(format="json")[0]["node"]
    finally:
        es.close()
    m = re.search(r"(\d+)$", name)
    assert m, f"the elected master {name!r} is not named es-N"
    return int(m.group(1))


def test_6_elasticsearch_node_killed(cluster: Any, tmp_path: Path) -> None:
    from elasticsearch import Elasticsearch

    from dnsentinel.dashboard.store import Store

    ports = _ports(cluster)
    node = _es_master(cluster)  # the elected master: the harder case (an election as well)
    run = f"fe{_tag(4)}"
    dga = _dga_names(24, run)
    events = _events(f"{run}r", unique=300, repeats=300)
    cache = _cache(cluster)
    dash = cluster.settings_as("dashboard")
    store = Store(Elasticsearch(**dash.elasticsearch.client_kwargs()), dash.elasticsearch.index_prefix)
    watch = _VerdictWatch(cluster, dga + events.names)
    try:
        killed = _sigkill(cluster.dir / "elasticsearch" / f"es-{node}" / "es.pid")
        print(f"es-{node} (the elected master) SIGKILLed")
        with _replaying(cluster, events, rate=200, tmp=tmp_path) as out:
            for n in dga:  # queried on coredns-1 ...
                _dns(ports.coredns[0], n)
        delivered = _check_replay(out, events)
        wait_for(lambda: len(cache.get_verdicts(dga)) == len(dga), 120, "a verdict for every name queried on coredns-1")
        _recovery(f"es-{node} SIGKILL", "first verdict after the kill", watch.first_after(dga + events.names, killed) or 0)
        decisions = cache.decide_many(dga)
        from dnsentinel.verdict_cache.vocabulary import BLOCKING_DECISIONS

        # ... and decided on coredns-2: blocked exactly where the verdict says block. A lookup slower
        # than redis_timeout on the loaded machine fails open (answered, counted as a Redis error) and
        # is finished in the background, so the next query of that name is blocked.
        def blocks(n: str) -> bool:
            return decisions.get(n) in BLOCKING_DECISIONS

        errors_before = _total(_metrics(ports.coredns_metrics[1]), "coredns_dnsentinel_redis_errors_total")
        answers = {n: _dns(ports.coredns[1], n) for n in dga}
        failed_open = _total(_metrics(ports.coredns_metrics[1]), "coredns_dnsentinel_redis_errors_total") - errors_before
        wrong = {n: (decisions.get(n), answers[n]) for n in dga if answers[n][1] != blocks(n)}
        assert all(blocks(n) for n in wrong), f"coredns-2 blocked names the verdicts allow: {wrong}"
        assert len(wrong) <= failed_open, f"coredns-2 let through {len(wrong)} blocked names, {failed_open:.0f} failed open: {wrong}"
        asked = {n: 2 for n in dga}  # queries of each name, all counted as activity: one per coredns so far

        def ask_again(n: str) -> bool:
            asked[n] += 1
            return _dns(ports.coredns[1], n)[1]

        for n in wrong:
            wait_for(lambda: ask_again(n), 10, f"{n} blocked on coredns-2 after its failed-open lookup", every=0.5)
        print(f"coredns-2: {len(wrong)} first lookups failed open (slow Redis round trip), blocked on the next query")
        n_blocked = sum(1 for n in dga if blocks(n))
        print(f"{n_blocked} of {len(dga)} DGA-looking names blocked on coredns-2 while es-{node} is down")
        assert n_blocked > 0, f"none of the DGA-looking names was blocked: {decisions}"

        # The dashboard keeps answering: its health, and a store query with its own user.
        assert _http_ok(f"http://127.0.0.1:{ports.dashboard}/_stcore/health"), "the dashboard stopped answering"
        doc = wait_for(lambda: store.verdict(dga[0]), 120, f"the dashboard's store finding the verdict of {dga[0]}")
        assert doc, doc
        assert all(_alive(p) for p in _worker_pids(cluster).values()), "a worker died with one Elasticsearch node down"
        _wait_workers_healthy(ports, "with one Elasticsearch node down")
    finally:
        watch.stop()
        cache.close()
        t0 = time.monotonic()
        _restore("elasticsearch")
        _recovery(f"es-{node} SIGKILL", "restart until the cluster is green (3 nodes)", time.monotonic() - t0)
    # Written while the node was down, indexed exactly once now it is back (every query of the DGA names).
    _assert_counted_once(cluster, events, delivered)
    es = _es(cluster)
    prefix = cluster.settings_as("admin").elasticsearch.index_prefix
    wait_progress(lambda: sum(_activity(es, prefix, dga).values()), sum(asked.values()),
                  "the DGA names' activity (each query on coredns-1 and coredns-2)")
    time.sleep(5)  # a double count would show up in the next flushes
    got = _activity(es, prefix, dga)
    assert got == asked, f"activity of the DGA names differs from their queries: {got} != {asked}"
    es.close()
