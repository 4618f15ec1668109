"""CoreDNS plugin benchmark: the dnsentinel plugin's cache-hit path against plain CoreDNS.

Builds coredns-plugin/cmd/coredns, starts two instances of it on free loopback ports (never
the stack's 1053) that answer from the same fixed local source (`template`): one with the
dnsentinel plugin (real Redis with a random key prefix, real Kafka with a random topic), one
without. A realistic query mix (mostly unknown/benign names, a few malicious verdicts and
vetted blocks, A and AAAA) is replayed once to warm the plugin's client-side cache, then
dnsperf measures, alternating plain and plugin runs:

* throughput: dnsperf flat out (`-l SECONDS -c 4 -q 200`), the median run of each, and the
  CPU time each CoreDNS process spent per answered query (from /proc): on a shared, loaded
  machine the CPU per query is the steadier measure, and plain/plugin CPU per query is the
  QPS ratio the plugin would reach when CPU-bound;
* latency: a fixed rate (`-Q RATE -v`), per-query latencies from dnsperf's verbose lines,
  p50 and p99 of each.

Targets (issue 5): plugin QPS >= 90% of plain, p99 added <= 0.5 ms, zero dropped events.
Run: `.venv/bin/python bench/plugin_bench.py [--seconds 10] [--names 20000]`.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine, record  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = """    template IN A . {
        answer "{{ .Name }} 60 IN A 192.0.2.1"
    }
    template IN AAAA . {
        answer "{{ .Name }} 60 IN AAAA 2001:db8::1"
    }"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def corefile(port: int, metrics_port: int, plugin_block: str | None, pprof_port: int | None = None) -> str:
    plugin = ""
    if plugin_block is not None:
        plugin = "    dnsentinel {\n" + plugin_block + "    }\n"
    pprof = f"    pprof 127.0.0.1:{pprof_port}\n" if pprof_port else ""
    return f".:{port} {{\n    bind 127.0.0.1\n    prometheus 127.0.0.1:{metrics_port}\n{pprof}{plugin}{TEMPLATE}\n}}\n"


def profile(port: int, seconds: int, out: Path) -> threading.Thread:
    """Fetch a CPU profile of a CoreDNS instance (its `pprof` plugin) in the background."""
    def fetch() -> None:
        url = f"http://127.0.0.1:{port}/debug/pprof/profile?seconds={seconds}"
        out.write_bytes(urllib.request.urlopen(url, timeout=seconds + 30).read())

    t = threading.Thread(target=fetch)
    t.start()
    return t


def start(binary: Path, conf: Path, port: int, new_session: bool = False) -> subprocess.Popen:
    """Start CoreDNS and wait until it answers. ``new_session``: in a session of its own, as the
    deploy scripts start services; with the kernel's autogroup scheduling (on by default) a
    session shares the CPU with other sessions as one group, so instances compared against a
    deployed one must be started the same way."""
    proc = subprocess.Popen([str(binary), "-conf", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=new_session)
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            probe = subprocess.run(
                ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-n", "1", "-t", "1"],
                input=b"probe.example A\n", capture_output=True, timeout=5,
            )
            if b"Queries completed:    1" in probe.stdout:
                return proc
        except subprocess.TimeoutExpired:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"coredns exited: {proc.stderr.read().decode()}")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"coredns on port {port} did not answer within 15 s")


def dnsperf(port: int, qfile: Path, *args: str) -> str:
    out = subprocess.run(
        ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(qfile), *args],
        capture_output=True, text=True, check=True,
    )
    return out.stdout


def qps(out: str) -> float:
    return float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))


def completed(out: str) -> int:
    return int(re.search(r"Queries completed:\s+(\d+)", out).group(1))


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (from /proc; clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def lost(out: str) -> int:
    return int(re.search(r"Queries lost:\s+(\d+)", out).group(1))


def latencies(out: str) -> list[float]:
    return [float(line.rsplit(" ", 1)[1]) for line in out.splitlines() if line.startswith("> ")]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def metric(port: int, name: str) -> float:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name if "{" in name else (name + "{", name + " ")):
            total += float(line.rsplit(" ", 1)[1])
    return total


def build(out: Path) -> None:
    if not shutil.which("go"):
        raise SystemExit("go is not installed")
    subprocess.run(["go", "build", "-o", str(out), "./cmd/coredns"], cwd=ROOT / "coredns-plugin", check=True)


def seed(names: int, prefix: str, rng: random.Random) -> list[str]:
    """Write the verdicts and vetted entries of the mix; return the query lines."""
    from dnsentinel.redis_client import sync_client
    from dnsentinel.settings import get_settings

    settings = get_settings()
    r = sync_client(settings.redis)
    pipe = r.pipeline(transaction=False)
    now = int(time.time())
    lines = []
    for i in range(names):
        roll = rng.random()
        name = f"host{i}.site{i % 5000}.example.com"
        if roll < 0.05:  # malicious model verdict: blocked
            name = f"x{i:x}qzv{rng.randrange(1 << 30):x}.com"
            pipe.set(f"{prefix}:v1:verdict:{name}", f"m|0.9981|bench-1|{now}")
        elif roll < 0.08:  # under a vetted block
            name = f"w{i}.blocked{i % 50}.example.net"
            pipe.hset(f"{prefix}:v1:vetted", f"blocked{i % 50}.example.net", '{"action":"block","by":"bench","at":0}')
        elif roll < 0.30:  # benign verdict
            pipe.set(f"{prefix}:v1:verdict:{name}", f"b|0.0100|bench-1|{now}")
        elif roll < 0.35:  # uncertain verdict
            pipe.set(f"{prefix}:v1:verdict:{name}", f"u|0.5000|bench-1|{now}")
        # else: unknown
        lines.append(f"{name} {'AAAA' if rng.random() < 0.2 else 'A'}")
    pipe.execute()
    return lines


def cleanup_redis(prefix: str) -> None:
    from dnsentinel.redis_client import sync_client
    from dnsentinel.settings import get_settings

    r = sync_client(get_settings().redis)
    keys = list(r.scan_iter(match=f"{prefix}:*", count=10000))
    for i in range(0, len(keys), 1000):
        r.delete(*keys[i : i + 1000])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=10, help="length of each throughput run")
    ap.add_argument("--runs", type=int, default=4, help="throughput runs per instance (alternating)")
    ap.add_argument("--names", type=int, default=10000, help="distinct names in the query mix")
    ap.add_argument("--rate", type=int, default=2000, help="queries/s of the latency runs")
    ap.add_argument("--profile", type=Path, help="write CPU profiles (pprof) of each instance's first "
                    "throughput run into this folder (adds the `pprof` plugin to both Corefiles)")
    args = ap.parse_args()

    from confluent_kafka.admin import AdminClient, NewTopic

    from dnsentinel.settings import get_settings

    settings = get_settings()
    rng = random.Random(5)
    suffix = f"{random.randrange(1 << 32):08x}"
    prefix, topic = f"bench-{suffix}", f"bench-queries-{suffix}"
    work = Path(tempfile.mkdtemp(prefix="plugin-bench-"))
    binary = work / "coredns"
    procs: list[subprocess.Popen] = []
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    redis_addr = settings.redis.url.split("://", 1)[1].split("/", 1)[0].split("@")[-1]
    try:
        build(binary)
        admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(timeout=30)
        qfile = work / "queries.txt"
        qfile.write_text("\n".join(seed(args.names, prefix, rng)) + "\n")

        plain_port, plain_mport = free_port(), free_port()
        plug_port, plug_mport = free_port(), free_port()
        block = (
            f"        redis {redis_addr}\n        redis_prefix {prefix}\n"
            f"        kafka {settings.kafka.bootstrap_servers}\n        topic {topic}\n"
            f"        server_id bench\n        cache_size {2 * args.names}\n        cache_ttl 10m\n"
        )
        pprof_ports = {"plain": free_port(), "plugin": free_port()} if args.profile else {}
        (work / "plain.conf").write_text(corefile(plain_port, plain_mport, None, pprof_ports.get("plain")))
        (work / "plugin.conf").write_text(corefile(plug_port, plug_mport, block, pprof_ports.get("plugin")))
        procs.append(start(binary, work / "plain.conf", plain_port))
        procs.append(start(binary, work / "plugin.conf", plug_port))

        # warm the client-side cache: replay the mix until nearly every lookup is local (a
        # lookup that times out on a loaded machine is not cached, so one pass is not enough)
        dnsperf(plain_port, qfile, "-n", "1", "-q", "20")
        for attempt in range(8):
            before = metric(plug_mport, 'coredns_dnsentinel_cache_lookups_total{result="redis"')
            before += metric(plug_mport, "coredns_dnsentinel_redis_errors_total")
            dnsperf(plug_port, qfile, "-n", "1", "-q", "20")
            after = metric(plug_mport, 'coredns_dnsentinel_cache_lookups_total{result="redis"')
            after += metric(plug_mport, "coredns_dnsentinel_redis_errors_total")
            print(f"warm-up pass {attempt + 1}: {after - before:.0f} of {args.names} lookups not local", flush=True)
            if after - before < 0.01 * args.names:
                break
        err0 = metric(plug_mport, "coredns_dnsentinel_redis_errors_total")
        hits0 = metric(plug_mport, 'coredns_dnsentinel_cache_lookups_total{result="local"')
        miss0 = metric(plug_mport, 'coredns_dnsentinel_cache_lookups_total{result="redis"')

        runs: dict[str, list[float]] = {"plain": [], "plugin": []}
        cpu_us: dict[str, list[float]] = {"plain": [], "plugin": []}
        loss: dict[str, int] = {"plain": 0, "plugin": 0}
        pids = {"plain": procs[0].pid, "plugin": procs[1].pid}
        for _ in range(args.runs):
            for kind, port in (("plain", plain_port), ("plugin", plug_port)):
                prof = None
                if args.profile and not runs[kind]:
                    args.profile.mkdir(parents=True, exist_ok=True)
                    prof = profile(pprof_ports[kind], max(1, args.seconds - 2), args.profile / f"{kind}.pprof")
                cpu0 = cpu_seconds(pids[kind])
                out = dnsperf(port, qfile, "-l", str(args.seconds), "-c", "4", "-q", "200")
                if prof is not None:
                    prof.join()
                cpu_us[kind].append(1e6 * (cpu_seconds(pids[kind]) - cpu0) / max(1, completed(out)))
                runs[kind].append(qps(out))
                loss[kind] += lost(out)
                print(f"{kind}: {runs[kind][-1]:,.0f} qps, {cpu_us[kind][-1]:.1f} CPU us/query "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
        lat: dict[str, list[float]] = {}
        for kind, port in (("plain", plain_port), ("plugin", plug_port)):
            lat[kind] = latencies(dnsperf(port, qfile, "-l", "5", "-Q", str(args.rate), "-v"))

        hits = metric(plug_mport, 'coredns_dnsentinel_cache_lookups_total{result="local"') - hits0
        misses = metric(plug_mport, 'coredns_dnsentinel_cache_lookups_total{result="redis"') - miss0
        time.sleep(2)  # let the producer linger and deliver
        produced = metric(plug_mport, "coredns_dnsentinel_events_produced_total")
        dropped = metric(plug_mport, "coredns_dnsentinel_events_dropped_total")
        redis_err = metric(plug_mport, "coredns_dnsentinel_redis_errors_total") - err0

        plain_q, plug_q = statistics.median(runs["plain"]), statistics.median(runs["plugin"])
        plain_cpu, plug_cpu = statistics.median(cpu_us["plain"]), statistics.median(cpu_us["plugin"])
        p50 = {k: 1000 * pct(v, 0.50) for k, v in lat.items()}
        p99 = {k: 1000 * pct(v, 0.99) for k, v in lat.items()}
        cfg = (f"{args.names} names (5% malicious, 3% vetted block, 22% benign, 5% uncertain, rest unknown; "
               f"80% A), dnsperf -c 4 -q 200 -l {args.seconds} x{args.runs}, latency at {args.rate} qps; {machine()}")
        print(f"plain runs {[round(q) for q in runs['plain']]}, plugin runs {[round(q) for q in runs['plugin']]}, lost {loss}")
        print(f"CPU us/query: plain {[round(c, 1) for c in cpu_us['plain']]}, plugin {[round(c, 1) for c in cpu_us['plugin']]}")
        print(f"cache: {hits:.0f} local hits, {misses:.0f} Redis round trips; redis errors {redis_err:.0f}")
        print(f"events: {produced:.0f} produced, {dropped:.0f} dropped")
        record("coredns-plugin", "plain CoreDNS QPS (median)", plain_q, "qps", config=cfg)
        record("coredns-plugin", "plugin QPS (median)", plug_q, "qps", config=cfg)
        record("coredns-plugin", "plugin QPS / plain QPS (medians)", 100 * plug_q / plain_q, "%", target=90, config=cfg)
        record("coredns-plugin", "plain CPU per query (median)", plain_cpu, "us", higher_is_better=False, config=cfg)
        record("coredns-plugin", "plugin CPU per query (median)", plug_cpu, "us", higher_is_better=False, config=cfg)
        record("coredns-plugin", "CPU-bound QPS ratio (plain CPU / plugin CPU per query)", 100 * plain_cpu / plug_cpu,
               "%", target=90, config=cfg)
        record("coredns-plugin", "plain p50 / p99 latency", p99["plain"], "ms", higher_is_better=False,
               config=f"p50 {p50['plain']:.3f} ms; {cfg}")
        record("coredns-plugin", "plugin p50 / p99 latency", p99["plugin"], "ms", higher_is_better=False,
               config=f"p50 {p50['plugin']:.3f} ms; {cfg}")
        record("coredns-plugin", "p99 added by the plugin", p99["plugin"] - p99["plain"], "ms", target=0.5,
               higher_is_better=False, config=cfg)
        record("coredns-plugin", "events dropped", dropped, "events", target=0, higher_is_better=False,
               config=f"{produced:.0f} produced; {cfg}")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        try:
            admin.delete_topics([topic])[topic].result(timeout=30)
        except Exception as exc:  # noqa: BLE001 - cleanup must not hide the result
            print(f"could not delete topic {topic}: {exc}", file=sys.stderr)
        cleanup_redis(prefix)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
