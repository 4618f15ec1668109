"""The demo's promise, timed: first query of a never-seen DGA name → verdict → blocked.

Runs against the local stack (started if needed) with one worker (started if none runs),
repeats the demo's step 5 and 6 on several fresh names and reports the medians:
first query to verdict in Redis, first query to the first blocked answer, and vetted allow
to the first unblocked answer.

    .venv/bin/python bench/demo_bench.py [--names 5]
"""

from __future__ import annotations

import argparse
import os
import statistics

from benchlib import machine, record

from dnsentinel.cli import apps, stackctl
from dnsentinel.cli.demo import first_query_to_block, fresh_dga_name, vetted_allow_unblocks, wait_pipeline
from dnsentinel.settings import get_settings

BENCH = "end to end"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--names", type=int, default=3 if os.environ.get("DNSENTINEL_BENCH_QUICK") else 7)
    args = ap.parse_args()
    settings = get_settings()
    stackctl.up(settings, echo=False)
    worker = apps.worker_app(settings, 0)
    started = not any(name.startswith("worker") for name in apps.running(settings))
    if started:
        apps.start(settings, worker)
    try:
        print(f"pipeline ready after {wait_pipeline(settings):.1f} s")
        runs = []
        for _ in range(args.names):
            name, score = fresh_dga_name(settings)
            t = first_query_to_block(settings, name, score)
            t.unblock_ms = vetted_allow_unblocks(settings, t)
            print(f"{name}: verdict {t.verdict_ms:.0f} ms, blocked {t.first_query_to_block_ms:.0f} ms, "
                  f"unblocked {t.unblock_ms:.0f} ms after the allow")
            runs.append(t)
        config = f"{len(runs)} fresh names, 1 worker, median; {machine()}"
        record(BENCH, "first query to verdict in Redis", statistics.median(t.verdict_ms for t in runs), "ms",
               target=1000, higher_is_better=False, config=config)
        record(BENCH, "first query to blocked answer", statistics.median(t.first_query_to_block_ms for t in runs), "ms",
               target=1000, higher_is_better=False, config=config)
        record(BENCH, "vetted allow to unblocked answer", statistics.median(t.unblock_ms for t in runs), "ms",
               target=1000, higher_is_better=False, config=config)
    finally:
        if started:
            apps.stop_all(settings, only={worker.name})


if __name__ == "__main__":
    main()
