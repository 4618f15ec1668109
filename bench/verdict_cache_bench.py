"""Verdict cache throughput against the real Redis, and the hot-path helpers workers call.

Measures, under a random key prefix that is deleted afterwards:
  - verdict writes: one ``SET EX`` per round trip, and ``put_verdicts`` pipelined in batches;
  - verdict reads: one name per round trip, ``get_verdicts`` and ``decide_many`` in batches;
  - list import of a generated 1,000,000-line file (plain, hosts and Adblock lines, 0.1 % bad);
  - per-event CPU cost of ``normalize`` (new and repeated names) and ``parse_event``, with a
    pydantic model of the same event for comparison (why events.py is hand-written).

    .venv/bin/python bench/verdict_cache_bench.py [--lines 1000000] [--batch 1000]

Numbers on the shared 2-core machine are noisy: the load average is printed beside each.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import string
import tempfile
import time
import uuid
from pathlib import Path

from benchlib import machine, record

from dnsentinel.settings import get_settings
from dnsentinel.verdict_cache.cache import Verdict, VerdictCache
from dnsentinel.verdict_cache.events import parse_event
from dnsentinel.verdict_cache.lists import import_list
from dnsentinel.verdict_cache.names import normalize

BENCH = "verdict_cache"


def _names(n: int, seed: int = 1) -> list[str]:
    rnd = random.Random(seed)
    tlds = ["com", "net", "org", "co.uk", "de", "io", "github.io"]
    letters = string.ascii_lowercase + string.digits
    return [f"{''.join(rnd.choices(letters, k=rnd.randint(6, 14)))}.{rnd.choice(tlds)}" for _ in range(n)]


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def bench_redis(cache: VerdictCache, n_single: int, n_batch: int, batch: int) -> None:
    now = int(time.time())
    names = _names(n_batch)
    verdicts = [Verdict(n, ("malicious", "benign", "uncertain")[i % 3], 0.5, "bench-1", now) for i, n in enumerate(names)]

    t = time.perf_counter()
    for v in verdicts[:n_single]:
        cache.put_verdicts([v])
    record(BENCH, "verdict writes, one SET per round trip", _rate(n_single, time.perf_counter() - t), "writes/s",
           config=f"n={n_single}; {machine()}")

    t = time.perf_counter()
    for i in range(0, len(verdicts), batch):
        cache.put_verdicts(verdicts[i : i + batch])
    record(BENCH, "verdict writes, pipelined", _rate(len(verdicts), time.perf_counter() - t), "writes/s",
           config=f"n={len(verdicts)} batch={batch}; {machine()}")

    t = time.perf_counter()
    for n in names[:n_single]:
        cache.get_verdicts([n])
    record(BENCH, "verdict reads, one GET per round trip", _rate(n_single, time.perf_counter() - t), "reads/s",
           config=f"n={n_single}; {machine()}")

    t = time.perf_counter()
    found = 0
    for i in range(0, len(names), batch):
        found += len(cache.get_verdicts(names[i : i + batch]))
    assert found == len(names), (found, len(names))
    record(BENCH, "verdict reads, batched MGET", _rate(len(names), time.perf_counter() - t), "reads/s",
           config=f"n={len(names)} batch={batch}; {machine()}")

    cache.set_vetted_many([f"{n}" for n in names[:1000:7]], "block", "bench")
    t = time.perf_counter()
    for n in names[:n_single]:
        cache.decide_many([n])
    record(BENCH, "decisions, one name per round trip (GET + HMGET)", _rate(n_single, time.perf_counter() - t),
           "names/s", config=f"n={n_single}; {machine()}")

    t = time.perf_counter()
    for i in range(0, len(names), batch):
        cache.decide_many(names[i : i + batch])
    record(BENCH, "decisions, batched (MGET + HMGET pipelined)", _rate(len(names), time.perf_counter() - t),
           "names/s", config=f"n={len(names)} batch={batch}; {machine()}")


def _list_file(path: Path, lines: int) -> int:
    """A 1M-line list mixing the three formats, comments and 0.1 % bad lines; returns the bad count."""
    rnd = random.Random(7)
    letters = string.ascii_lowercase + string.digits
    bad = 0
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(lines):
            name = f"{''.join(rnd.choices(letters, k=10))}{i}.example{i % 97}.com"
            r = i % 1000
            if r == 0:
                fh.write("# a comment line\n")
            elif r == 1:
                fh.write(f"bad name {i}\n")
                bad += 1
            elif r % 3 == 0:
                fh.write(f"0.0.0.0 {name}\n")
            elif r % 3 == 1:
                fh.write(f"||{name}^\n")
            else:
                fh.write(f"{name}\n")
    return bad


def bench_import(cache: VerdictCache, lines: int) -> None:
    with tempfile.TemporaryDirectory(prefix="vc-bench-") as tmp:
        path = Path(tmp) / "list.txt"
        bad = _list_file(path, lines)
        t = time.perf_counter()
        report = import_list(cache, path, "block", "bench", "generated list")
        seconds = time.perf_counter() - t
        assert report.bad_total == bad and report.added > 0.99 * lines - bad, report
        record(BENCH, "list import (plain/hosts/Adblock, into Redis)", _rate(lines, seconds), "lines/s",
               config=f"lines={lines:,} added={report.added:,} bad={bad}; {seconds:.1f} s; {machine()}")


def _cpu_rate(fn, items) -> float:
    """Items per CPU-second of this process: on a shared, overloaded machine wall time mostly
    measures the neighbours; process time is what one worker core would deliver."""
    t = time.process_time()
    for item in items:
        fn(item)
    return _rate(len(items), time.process_time() - t)


def bench_cpu(n: int) -> None:
    from typing import Literal, Optional

    from pydantic import BaseModel, StrictInt

    fresh = _names(n, seed=2)
    record(BENCH, "normalize, new names (per CPU-second)", _cpu_rate(normalize, fresh), "names/s", config=machine())
    hot = fresh[:20_000] * (len(fresh) // 20_000 or 1)  # fits the memo, as a resolver's popular names do
    record(BENCH, "normalize, repeated names (per CPU-second)", _cpu_rate(normalize, hot), "names/s",
           config=f"20,000 distinct; {machine()}")

    now_ms = int(time.time() * 1000)
    events = [json.dumps({"v": 1, "ts": now_ms, "name": name, "qtype": "A", "client": "192.0.2.7", "source": "live",
                          "server": "coredns-1", "action": "pass", "decision": "unknown", "latency_us": 40,
                          "proto": "udp"}).encode() for name in fresh]
    record(BENCH, "parse_event (per CPU-second)", _cpu_rate(parse_event, events), "events/s", config=machine())

    class PydanticEvent(BaseModel):
        v: Literal[1]
        ts: StrictInt
        name: str
        qtype: str
        client: str
        source: Literal["live", "replay", "loadgen"]
        server: Optional[str] = None
        action: Optional[str] = None
        decision: Optional[str] = None
        latency_us: Optional[StrictInt] = None
        proto: Optional[str] = None

    record(BENCH, "pydantic model_validate_json, same events, for comparison (per CPU-second)",
           _cpu_rate(PydanticEvent.model_validate_json, events), "events/s", config=machine())


def main() -> None:
    quick = bool(os.environ.get("DNSENTINEL_BENCH_QUICK"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=100_000 if quick else 1_000_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--single", type=int, default=2000 if quick else 10_000)
    ap.add_argument("--batched", type=int, default=50_000 if quick else 200_000)
    args = ap.parse_args()

    settings = get_settings()
    base = VerdictCache.from_settings(settings)
    prefix = f"bench-vc-{uuid.uuid4().hex[:8]}"
    cache = VerdictCache(base.client, prefix=prefix, ttls=base.ttls)
    print(f"Redis {settings.redis.url}, prefix {prefix}; {machine()}", flush=True)
    try:
        bench_cpu(50_000 if quick else 200_000)
        bench_redis(cache, args.single, args.batched, args.batch)
        bench_import(cache, args.lines)
    finally:
        doomed = list(cache.client.scan_iter(match=f"{prefix}:*", count=5000))
        for i in range(0, len(doomed), 5000):
            cache.client.delete(*doomed[i : i + 5000])
        cache.close()


if __name__ == "__main__":
    main()
