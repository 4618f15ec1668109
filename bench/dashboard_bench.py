"""Dashboard benchmark: page data load times over millions of activity documents.

Usage::

    .venv/bin/python bench/dashboard_bench.py                      # 2,000,000 docs, 7 days
    .venv/bin/python bench/dashboard_bench.py --docs 500000 --keep # keep the indices afterwards
    .venv/bin/python bench/dashboard_bench.py --prefix dashbench-ab12cd34 --reuse  # time only

Writes a synthetic data set straight into Elasticsearch (bulk, under a unique
index prefix, never the live indices), then times each page's data functions
(the Elasticsearch aggregations a page sends) cold (ES caches cleared) and
warm (median of 5), and one full AppTest run of each page against the real
services. Our goal: every page under 2 s cold with millions of documents.
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


def _create_indices(es, prefix: str, shape) -> list[str]:
    """Pre-create the day indices with refresh off: bulk loading is several times faster."""
    from dnsentinel.verdict_cache.es_schema import index_name

    now_ms = int(time.time() * 1000)
    days = {index_name("activity", now_ms - m * 60_000, prefix=prefix) for m in range(0, shape.minutes + 1, 60)}
    for name in sorted(days):
        es.options(ignore_status=400).indices.create(index=name, settings={"refresh_interval": "-1"})
    return sorted(days)


def load(es, prefix: str, docs: int, minutes: int) -> None:
    from dnsentinel.dashboard import sample_data

    shape = sample_data.Shape(docs=docs, names=max(2000, docs // 50), clients=2000, minutes=minutes)
    sample_data.ensure_templates(es, prefix=prefix)
    days = _create_indices(es, prefix, shape)
    t0 = time.perf_counter()
    written = sample_data.load(es, prefix, shape, chunk_size=5000, threads=2)
    for name in days:
        es.indices.put_settings(index=name, settings={"refresh_interval": "1s"})
    es.indices.refresh(index=f"{prefix}-*")
    secs = time.perf_counter() - t0
    print(f"loaded {written:,} docs in {secs:.0f} s ({written / secs:,.0f} docs/s) into {len(days)} activity indices")


def page_calls(store, rng_day, rng_week, name: str, client: str):
    from dnsentinel.dashboard.store import ALLOWED_DECISIONS, client_filter

    return {
        "overview 24 h": lambda: store.overview(rng_day, "hour"),
        "overview 7 d": lambda: store.overview(rng_week, "hour"),
        "names table page 5, search": lambda: store.names_table(rng_week, ALLOWED_DECISIONS, "site1", "queries", True, 4, 50),
        "domain 7 d (with subdomains)": lambda: (store.domain_activity(name, True, rng_week, "hour"),
                                                  store.verdict(name), store.audit_for(name)),
        "client 7 d": lambda: (store.timeline(rng_week, "hour", client_filter(client)),
                               store.client_names(client, rng_week)),
        "vetting queue": lambda: store.vetting_queue("score", True, 0, 50),
    }


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200_000 if os.environ.get("DNSENTINEL_BENCH_QUICK") else 2_000_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--prefix", default=None, help="index prefix (default: dashbench-<random>)")
    parser.add_argument("--reuse", action="store_true", help="the prefix already holds a data set: time only")
    parser.add_argument("--keep", action="store_true", help="leave the indices for a later --reuse")
    args = parser.parse_args()

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
        store = Store(es, prefix)
        day, week = timerange.last(timedelta(days=1)), timerange.last(timedelta(days=args.days))
        name = store.top_names(week, BLOCKED_DECISIONS).iloc[0]["name"]
        client = store.top_clients(week, BLOCKED_DECISIONS).iloc[0]["client"]
        config = f"{total:,} activity docs, {machine()}"
        for label, fn in page_calls(store, day, week, name, client).items():
            # First view: no cached result for this request (the request cache is cleared);
            # global ordinals stay, as they do between refreshes on a running node.
            es.indices.clear_cache(index=f"{prefix}-*", request=True)
            first = timed(fn)
            warm = statistics.median(timed(fn) for _ in range(5))
            es.indices.clear_cache(index=f"{prefix}-*", request=True, query=True, fielddata=True)
            cold = timed(fn)  # as after a node restart: global ordinals rebuilt too
            record("dashboard", f"{label}: first view", first, "ms", target=TARGET_MS, higher_is_better=False, config=config)
            print(f"  {label}: repeat median {warm:,.0f} ms; all ES caches cleared {cold:,.0f} ms")
        es.indices.clear_cache(index=f"{prefix}-*", request=True)
        for label, ms in apptest_pages(prefix).items():
            record("dashboard", label, ms, "ms", target=TARGET_MS, higher_is_better=False, config=config)
    finally:
        if not args.keep:
            sample_data.drop(es, prefix)
            print(f"dropped {prefix}-*")


if __name__ == "__main__":
    main()
