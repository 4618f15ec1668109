"""Replay throughput: Zeek TSV lines per second parsed, encoded and produced into the real Kafka.

Generates a large synthetic Zeek dns.log in a temp dir (names drawn Zipf-like from a pool of
random-looking names so normalization caches behave as on real logs), then measures three
stages separately so a regression can be located: parse only, parse + encode, and the full
replay into a fresh topic of the running Kafka (flushed: the time includes delivery).

    .venv/bin/python bench/replay_bench.py [--lines 1000000] [--names 50000]

Target (DESIGN.md): >= 100,000 lines/s for the full path. Prints machine load beside numbers.
"""

from __future__ import annotations

import argparse
import os
import random
import string
import tempfile
import time
import uuid
from itertools import accumulate
from pathlib import Path

from benchlib import machine, record

from dnsentinel.producers import parse_zeek
from dnsentinel.producers.encode import EventEncoder
from dnsentinel.producers.records import ParseStats, Query
from dnsentinel.producers.replay import ReplayOptions, replay
from dnsentinel.producers.sources import open_source

HEADER = (
    "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tdns\n"
    "#open\t2026-11-20-09-00-00\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\ttrans_id\t"
    "rtt\tquery\tqclass\tqclass_name\tqtype\tqtype_name\trcode\trcode_name\tAA\tTC\tRD\tRA\tZ\tanswers\tTTLs\trejected\n"
    "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tcount\tinterval\tstring\tcount\tstring\tcount\tstring\t"
    "count\tstring\tbool\tbool\tbool\tbool\tcount\tvector[string]\tvector[interval]\tbool\n"
)


def make_log(path: Path, lines: int, n_names: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    letters = string.ascii_lowercase
    tlds = ("com", "net", "org", "io", "de", "co.uk")
    names = [f"{rng.choice(('www.', 'api.', '', 'cdn.'))}{''.join(rng.choices(letters, k=rng.randint(4, 14)))}.{rng.choice(tlds)}"
             for _ in range(n_names)]
    cum = list(accumulate(1.0 / r for r in range(1, n_names + 1)))
    clients = [f"10.0.{i // 250}.{i % 250 + 1}" for i in range(2000)]
    ts = 1763629200.0
    with open(path, "w") as out:
        out.write(HEADER)
        chunk = 50_000
        for start in range(0, lines, chunk):
            k = min(chunk, lines - start)
            picked = rng.choices(names, cum_weights=cum, k=k)
            rows = []
            for i, name in enumerate(picked):
                ts += 0.0005
                rows.append(f"{ts:.6f}\tC{start + i:x}\t{clients[(start + i) * 7 % 2000]}\t{50000 + i % 10000}\t10.0.0.1\t53\tudp\t{i % 65536}\t0.001200\t"
                            f"{name}\t1\tC_INTERNET\t1\tA\t0\tNOERROR\tF\tF\tT\tT\t0\t192.0.2.1\t300.000000\tF\n")
            out.write("".join(rows))
        out.write("#close\t2026-11-20-10-00-00\n")


def parse_only(path: Path) -> tuple[int, float]:
    src = open_source(str(path))
    stats = ParseStats()
    t = time.perf_counter()
    n = sum(1 for _ in parse_zeek.parse(src.text(), stats))
    took = time.perf_counter() - t
    src.close()
    return stats.lines, took


def parse_encode(path: Path) -> tuple[int, float]:
    src = open_source(str(path))
    stats = ParseStats()
    enc = EventEncoder("replay", origin=path.name).encode
    t = time.perf_counter()
    for item in parse_zeek.parse(src.text(), stats):
        if type(item) is Query:
            enc(item)
    took = time.perf_counter() - t
    src.close()
    return stats.lines, took


class _NullSink:
    def produce(self, key: bytes, value: str) -> None:
        pass


def fused_no_kafka(path: Path) -> tuple[int, float]:
    """The replay loop (Zeek fast path) into a sink that drops everything: the Python-side ceiling."""
    t = time.perf_counter()
    summary = replay([str(path)], _NullSink(), ReplayOptions(fmt="zeek"))
    return summary.lines, time.perf_counter() - t


def full(path: Path, partitions: int) -> tuple[int, int, float, dict]:
    from confluent_kafka.admin import AdminClient, NewTopic

    from dnsentinel.producers.kafka_out import EventProducer
    from dnsentinel.settings import get_settings

    settings = get_settings()
    topic = f"bench.replay.{uuid.uuid4().hex[:8]}"
    admin = AdminClient(settings.kafka.confluent_config())
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)
    try:
        sink = EventProducer(topic=topic)
        sink.check_reachable()
        t = time.perf_counter()
        cpu = time.process_time()
        summary = replay([str(path)], sink, ReplayOptions(fmt="zeek"))
        sink.close()
        took = time.perf_counter() - t
        info = {"failed": dict(sink.failed) or 0, "cpu_s": round(time.process_time() - cpu, 1)}
        return summary.lines, sink.delivered, took, info
    finally:
        admin.delete_topics([topic])[topic].result(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--names", type=int, default=50_000)
    ap.add_argument("--partitions", type=int, default=6)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dns.log"
        make_log(path, args.lines, args.names)
        print(f"file: {args.lines:,} lines, {path.stat().st_size / 1e6:.0f} MB, {args.names:,} distinct names (Zipf)")
        print(f"load before: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores")
        lines, took = parse_only(path)
        print(f"parse only (general):  {lines / took:>10,.0f} lines/s")
        lines, took = parse_encode(path)
        print(f"parse+encode (general):{lines / took:>10,.0f} lines/s")
        lines, took = fused_no_kafka(path)
        print(f"replay, no Kafka (fast):{lines / took:>9,.0f} lines/s")
        lines, delivered, took, info = full(path, args.partitions)
        print(f"replay into Kafka (fast):{lines / took:>8,.0f} lines/s  ({delivered:,} delivered, failed {info['failed']}, "
              f"{took:.1f} s wall incl. flush, {info['cpu_s']} s CPU of this process "
              f"= {lines / max(info['cpu_s'], 1e-9):,.0f} lines per CPU-second)")
        record("replay", "Zeek TSV lines parsed and produced into Kafka", lines / took, "lines/s", target=100_000,
               config=f"{lines:,} lines, {args.partitions} partitions, lz4, acks=all; "
                      f"{lines / max(info['cpu_s'], 1e-9):,.0f} lines per CPU-second; {machine()}")
        print(f"load after: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
