"""Dashboard benchmark: page data load times over millions of activity documents.

Usage::

    .venv/bin/python bench/dashboard_bench.py                      # 10,000,000 docs, 30 days
    .venv/bin/python bench/dashboard_bench.py --docs 500000 --keep # keep the indices afterwards
    .venv/bin/python bench/dashboard_bench.py --prefix dashbench-ab12cd34 --reuse  # roll up and time only
    DNSENTINEL_DASHBOARD_BENCH_ARGS="--prefix dashbench-ab12cd34 --reuse" dnsentinel bench -o dashboard

Writes a synthetic data set straight into Elasticsearch (pre-serialized parallel
bulk, under a unique index prefix, never the live indices), builds the hourly
roll-up with the workers' own code (stream_processor/rollup.py, timed), then
times each page's data functions (the Elasticsearch aggregations a page sends)
cold (ES caches cleared) and warm (median of 5), the widest overview once more
without the roll-up, and one full AppTest run of each page against the real
services. Our goal: every page under 2 s on first view at 10 M documents over 30 days.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from datetime import timedelta

from benchlib import machine, record

TARGET_MS = 2000.0


def _create_indices(es, prefix: str, minutes: int, now_ms: int) -> list[str]:
    """Pre-create the day indices with refresh off and an async translog: bulk loading is several times faster."""
    from dnsentinel.verdict_cache.es_schema import index_name

    days = {index_name("activity", now_ms - m * 60_000, prefix=prefix) for m in range(0, minutes + 1, 60)}
    days.add(index_name("activity", now_ms - minutes * 60_000, prefix=prefix))
    for name in sorted(days):
        es.options(ignore_status=400).indices.create(index=name, settings={
            "refresh_interval": "-1", "translog": {"durability": "async"}})
    return sorted(days)


def traffic(shape, prefix: str, now_ms: int, seed: int = 11):
    """Pre-serialized NDJSON bulk bodies of ``shape.docs`` activity documents (yields (body, docs)).

    Traffic shape: a DNS client asks for the same name again whenever its cached answer
    expires, so documents come in *runs*: one (name, client) pair seen every ``period``
    minutes (1, 2 or 5) for a geometric number of minutes (mean 6). Names are Zipf-popular
    (weight 1/rank), clients mildly skewed (1/rank^0.5), malicious names are asked by the
    infected 5 % of clients only; the DNS path's decision is ``unknown`` for half of the runs
    (first sight) and the label for the others.
    """
    import json

    import numpy as np

    from dnsentinel.dashboard.sample_data import _registrable, names
    from dnsentinel.verdict_cache.es_schema import (
        BLOCKED, CLIENT_ADDRESS, CLIENT_IP, COUNT, DECISION, EVENT_KIND, EVENT_KINDS, LABEL, NAME_KIND, Q_NAME,
        Q_REGISTERED, TIMESTAMP, index_name,
    )

    rng = np.random.default_rng(seed)
    table = names(shape)
    clients = [f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}" for i in range(1, shape.clients + 1)]
    n_infected = max(1, shape.clients // 20)
    name_w = 1 / np.arange(1, len(table) + 1)
    name_w /= name_w.sum()
    client_w = 1 / np.sqrt(np.arange(1, shape.clients + 1))
    client_w /= client_w.sum()
    malicious = np.array([label == "malicious" for _, label, _ in table])
    # Per name: the constant part of its document, serialized once.
    head = []
    for name, label, _ in table:
        head.append(json.dumps({EVENT_KIND: EVENT_KINDS["activity"], Q_NAME: name, Q_REGISTERED: _registrable(name),
                                NAME_KIND: "domain", LABEL: label})[:-1])
    labels = [label for _, label, _ in table]
    blocked_key, count_key, ts_key, dec_key = (json.dumps(k) for k in (BLOCKED, COUNT, TIMESTAMP, DECISION))
    client_part = [f', {json.dumps(CLIENT_ADDRESS)}: "{c}", {json.dumps(CLIENT_IP)}: "{c}"' for c in clients]
    last_minute = now_ms - now_ms % 60_000
    first_minute = last_minute - (shape.minutes - 1) * 60_000
    actions: dict[int, bytes] = {}
    made = 0
    batch = 200_000
    while made < shape.docs:
        runs = max(1, (shape.docs - made) // 6 + 1)
        runs = min(runs, batch)
        nm = rng.choice(len(table), size=runs, p=name_w)
        cl = rng.choice(shape.clients, size=runs, p=client_w)
        inf = rng.integers(0, n_infected, size=runs)
        cl = np.where(malicious[nm], inf, cl)
        length = rng.geometric(1 / 6, size=runs)
        period = rng.choice(np.array([1, 2, 5]), size=runs)
        start = rng.integers(0, shape.minutes, size=runs)
        known = rng.random(runs) < 0.5
        lines: list[str] = []
        for r in range(runs):
            n, c = int(nm[r]), int(cl[r])
            label = labels[n]
            decision = label if known[r] else "unknown"
            base = head[n] + client_part[c] + f', {dec_key}: "{decision}", '
            mal = label == "malicious"
            counts = rng.integers(1, 21, size=int(length[r]))
            for k in range(int(length[r])):
                minute = first_minute + (int(start[r]) + k * int(period[r])) * 60_000
                if minute > last_minute or made >= shape.docs:
                    break
                day = minute // 86_400_000
                act = actions.get(day)
                if act is None:
                    act = actions[day] = ('{"index": {"_index": "%s"}}\n' % index_name("activity", minute, prefix=prefix)).encode()
                cnt = int(counts[k])
                lines.append(act.decode() + base + f'{ts_key}: {minute}, {count_key}: {cnt}, {blocked_key}: {cnt if mal else 0}}}\n')
                made += 1
                if len(lines) >= 5000:
                    yield "".join(lines).encode(), len(lines)
                    lines = []
        if lines:
            yield "".join(lines).encode(), len(lines)


def load(es, prefix: str, docs: int, minutes: int, threads: int = 3) -> None:
    """The verdicts, the vetting queue and ``docs`` activity documents (see :func:`traffic`), bulk-loaded in parallel."""
    from concurrent.futures import ThreadPoolExecutor

    from elasticsearch import helpers

    from dnsentinel.dashboard import sample_data

    shape = sample_data.Shape(docs=docs, names=max(2000, docs // 50), clients=2000, minutes=minutes)
    sample_data.ensure_templates(es, prefix=prefix)
    now_ms = int(time.time() * 1000)
    days = _create_indices(es, prefix, minutes, now_ms)
    t0 = time.perf_counter()
    for _ in helpers.streaming_bulk(es, sample_data.verdicts_and_queue(shape, prefix), chunk_size=5000):
        pass

    def send(item: tuple[bytes, int]) -> int:
        body, n = item
        resp = es.bulk(operations=body, filter_path="errors,items.*.error.reason")
        if resp.get("errors"):
            reason = next(i for i in resp["items"] if next(iter(i.values())).get("error"))
            raise RuntimeError(f"bulk load refused documents: {reason}")
        return n

    written = 0
    with ThreadPoolExecutor(threads) as pool:
        pending = []
        for item in traffic(shape, prefix, now_ms):
            pending.append(pool.submit(send, item))
            if len(pending) >= threads * 2:
                written += pending.pop(0).result()
                if written % 1_000_000 < 5000:
                    print(f"  {written:,} docs, {written / (time.perf_counter() - t0):,.0f} docs/s", flush=True)
        written += sum(f.result() for f in pending)
    for name in days:
        es.indices.put_settings(index=name, settings={"refresh_interval": "1s", "translog": {"durability": "request"}})
    es.indices.refresh(index=f"{prefix}-*")
    secs = time.perf_counter() - t0
    print(f"loaded {written:,} docs in {secs:.0f} s ({written / secs:,.0f} docs/s) into {len(days)} activity indices")


def page_calls(store, ranges: dict, name: str, client: str):
    """Each page's data requests; ``ranges``: label -> (TimeRange, the page's automatic granularity)."""
    from dnsentinel.dashboard.store import ALLOWED_DECISIONS, client_filter

    calls = {}
    for label, (rng, gran) in ranges.items():
        calls[f"overview {label}"] = lambda rng=rng, gran=gran: store.overview(rng, gran)
    wide, gran = ranges[max(ranges, key=lambda k: ranges[k][0].span)]
    label = max(ranges, key=lambda k: ranges[k][0].span)
    calls |= {
        f"names table page 5, search, {label}": lambda: store.names_table(wide, ALLOWED_DECISIONS, "site1", "queries", True, 4, 50),
        f"domain {label} (with subdomains)": lambda: (store.domain_activity(name, True, wide, gran),
                                                       store.verdict(name), store.audit_for(name)),
        f"client {label}": lambda: (store.timeline(wide, gran, client_filter(client)), store.client_names(client, wide)),
        "vetting queue": lambda: store.vetting_queue("score", True, 0, 50),
    }
    return calls


def build_rollup(es, prefix: str, config: str, rebuild: bool = True) -> None:
    """Roll up every hour with the product's own code (what workers do), timed; then one tick with nothing to do."""
    from dnsentinel.stream_processor.rollup import roll_up
    from dnsentinel.verdict_cache.es_schema import index_name, template_body

    if rebuild:
        es.options(ignore_status=404).indices.delete(index=index_name("hourly", prefix=prefix))
    else:  # a roll-up built by an older version: its mapping gets today's parameters
        es.indices.put_mapping(index=index_name("hourly", prefix=prefix), allow_no_indices=True,
                               properties=template_body("hourly", prefix=prefix)["template"]["mappings"]["properties"])
    r = roll_up(es, prefix, settle_s=0)
    hourly = es.count(index=index_name("hourly", prefix=prefix))["count"]
    print(f"rolled {r.hours} hours: {r.minute_docs:,} minute docs -> {hourly:,} hourly docs "
          f"({r.minute_docs / max(1, hourly):.1f}x fewer) in {r.seconds:.0f} s ({r.minute_docs / r.seconds:,.0f} minute docs/s)")
    if rebuild:
        record("dashboard", "hourly roll-up built from scratch", r.seconds, "s", higher_is_better=False,
               config=f"{r.hours} hours, {r.minute_docs:,} minute docs -> {hourly:,} hourly docs; {config}")
    tick = roll_up(es, prefix, settle_s=0)
    record("dashboard", "roll-up tick, nothing to roll (each worker, every 5 min)", tick.seconds * 1000, "ms",
           higher_is_better=False, config=config)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def apptest_pages(prefix: str) -> dict[str, float]:
    """Full page runs (Streamlit script + aggregations + rendering) with a logged-in session."""
    os.environ["DNSENTINEL_ELASTICSEARCH__INDEX_PREFIX"] = prefix
    from streamlit.testing.v1 import AppTest

    from dnsentinel.dashboard import auth, data
    from dnsentinel.settings import get_settings

    get_settings.cache_clear()
    data.store.clear()
    pages = data.__file__.rsplit("/", 1)[0] + "/pages/"
    out = {}
    for page in ("overview", "vetting"):
        data.clear()
        at = AppTest.from_file(pages + f"{page}.py", default_timeout=120)
        at.session_state["dnsentinel_auth"] = auth.Session("bench", time.time() + 3600)
        t0 = time.perf_counter()
        at.run()
        out[f"AppTest {page} page"] = (time.perf_counter() - t0) * 1000
        if at.exception or at.error:
            print(f"  {page}: {[e.value for e in at.exception] or [e.value for e in at.error]}")
    return out


def _args() -> argparse.Namespace:
    """Command-line options, after any in ``DNSENTINEL_DASHBOARD_BENCH_ARGS`` (``dnsentinel bench`` passes none)."""
    import shlex
    import sys

    quick = bool(os.environ.get("DNSENTINEL_BENCH_QUICK"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200_000 if quick else 10_000_000)
    parser.add_argument("--days", type=int, default=7 if quick else 30)
    parser.add_argument("--prefix", default=None, help="index prefix (default: dashbench-<random>)")
    parser.add_argument("--reuse", action="store_true", help="the prefix already holds a data set: roll up and time only")
    parser.add_argument("--keep", action="store_true", help="leave the indices for a later --reuse")
    parser.add_argument("--no-apptest", action="store_true", help="skip the full AppTest page runs")
    parser.add_argument("--no-rebuild", action="store_true",
                        help="with --reuse: keep the prefix's roll-up (only bring it up to date) instead of rebuilding it")
    return parser.parse_args(shlex.split(os.environ.get("DNSENTINEL_DASHBOARD_BENCH_ARGS", "")) + sys.argv[1:])


def time_pages(es, prefix: str, store, calls: dict, config: str, suffix: str = "", target: float | None = TARGET_MS) -> None:
    for label, fn in calls.items():
        # First view: no cached result for this request (the request cache is cleared);
        # global ordinals stay, as they do between refreshes on a running node.
        es.indices.clear_cache(index=f"{prefix}-*", request=True)
        store._watermark = (float("-inf"), None)
        first = timed(fn)
        warm = statistics.median(timed(fn) for _ in range(5))
        es.indices.clear_cache(index=f"{prefix}-*", request=True, query=True, fielddata=True)
        cold = timed(fn)  # as after a node restart: global ordinals rebuilt too
        record("dashboard", f"{label}{suffix}: first view", first, "ms", target=target, higher_is_better=False, config=config)
        print(f"  {label}{suffix}: repeat median {warm:,.0f} ms; all ES caches cleared {cold:,.0f} ms", flush=True)


def main() -> None:
    args = _args()

    from elasticsearch import Elasticsearch

    from dnsentinel.dashboard import sample_data, timerange
    from dnsentinel.dashboard.store import BLOCKED_DECISIONS, Store
    from dnsentinel.settings import get_settings

    cfg = get_settings().elasticsearch
    es = Elasticsearch(**cfg.client_kwargs()).options(request_timeout=300)
    os.environ.setdefault("DNSENTINEL_DASHBOARD__QUERY_TIMEOUT_S", "120")
    prefix = args.prefix or f"dashbench-{uuid.uuid4().hex[:8]}"
    print(f"{machine()}; prefix {prefix}")
    try:
        if not args.reuse:
            load(es, prefix, args.docs, args.days * 1440)
        total = es.count(index=f"{prefix}-activity-*")["count"]
        config = f"{total:,} activity docs over {args.days} d, {machine()}"
        build_rollup(es, prefix, config, rebuild=not (args.reuse and args.no_rebuild))
        store = Store(es, prefix)
        spans = {"24 h": timedelta(days=1), "7 d": timedelta(days=7), f"{args.days} d": timedelta(days=args.days)}
        ranges = {k: (timerange.last(v), timerange.auto_granularity(v)) for k, v in spans.items() if v.days <= args.days}
        wide = max((r for r, _ in ranges.values()), key=lambda r: r.span)
        name = store.top_names(wide, BLOCKED_DECISIONS).iloc[0]["name"]
        client = store.top_clients(wide, BLOCKED_DECISIONS).iloc[0]["client"]
        time_pages(es, prefix, store, page_calls(store, ranges, name, client), config)
        # What decided it: the widest overview without the roll-up (every minute document).
        raw = Store(es, prefix, rollups=False)
        label = max(ranges, key=lambda k: ranges[k][0].span)
        time_pages(es, prefix, raw, {f"overview {label}": lambda: raw.overview(*ranges[label])}, config,
                   " without roll-up", target=None)  # the comparison, not a page
        if not args.no_apptest:
            es.indices.clear_cache(index=f"{prefix}-*", request=True)
            for label, ms in apptest_pages(prefix).items():
                record("dashboard", label, ms, "ms", target=TARGET_MS, higher_is_better=False, config=config)
    finally:
        if not args.keep:
            sample_data.drop(es, prefix)
            print(f"dropped {prefix}-*")


if __name__ == "__main__":
    main()
