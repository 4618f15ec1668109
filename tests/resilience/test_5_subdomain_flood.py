"""A random-subdomain flood (water torture) against one registrable domain, through CoreDNS.

SPEC §2.1 routes every name of one registrable domain to one partition, so one worker sees
the whole flood; its flood limiter (worker.max_new_names_per_domain_per_min, FLOOD_LIMIT in
this stack) scores at most that many new names per minute and counts the rest.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest

from .conftest import FLOOD_LIMIT, rand_label, total, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FLOOD = 3000
RSS_GROWTH_MB = 150


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def _victim_verdicts(fs, victim: str) -> int:
    import redis

    r = redis.Redis.from_url(fs.settings.redis.url)
    pattern = f"{fs.settings.redis.key_prefix}:v1:verdict:*.{victim}"
    return sum(1 for _ in r.scan_iter(match=pattern, count=1000))


def test_random_subdomain_flood_is_limited_bounded_and_visible(healthy, tmp_path):
    from dnsentinel.dashboard.store import Store
    from dnsentinel.dashboard.timerange import last

    fs = healthy
    victim = f"victim-{rand_label(6)}.com"
    qfile = tmp_path / "flood.txt"
    qfile.write_text("".join(f"{rand_label(12)}.{victim} A\n" for _ in range(FLOOD)))
    pid = fs.worker_pid(0)
    rss_before = _rss_mb(pid)
    m0 = fs.worker_metrics(0)

    perf = fs.dnsperf(qfile, "-n", "1", "-Q", "1000", "-t", "2", "-c", "4")
    out, _ = perf.communicate(timeout=120)
    assert "Queries lost:         0" in out or "Queries lost: 0" in " ".join(out.split()), out

    limited = lambda: total(fs.worker_metrics(0), "dnsentinel_worker_flood_limited_names_total") - total(
        m0, "dnsentinel_worker_flood_limited_names_total")
    # Every flood name is either scored (a verdict) or left unscored by the limiter.
    wait_for(lambda: _victim_verdicts(fs, victim) + limited() >= FLOOD, 120,
             "the worker to see the whole flood (verdicts + limited names)", every=1)
    scored = _victim_verdicts(fs, victim)
    # One minute window, or two when the flood straddles a minute boundary.
    assert 0 < scored <= 2 * FLOOD_LIMIT, f"{scored} verdicts written for {victim}; limit {FLOOD_LIMIT}/min"
    assert limited() >= FLOOD - 2 * FLOOD_LIMIT
    rss_after = _rss_mb(pid)
    assert rss_after - rss_before < RSS_GROWTH_MB, f"worker RSS grew {rss_before:.0f} -> {rss_after:.0f} MiB"
    print(f"flood: {scored} scored, {limited():.0f} limited; worker RSS {rss_before:.0f} -> {rss_after:.0f} MiB")

    # The flood is what the dashboard's domain investigation shows for the victim (with subdomains).
    store = Store(fs.es(), fs.settings.elasticsearch.index_prefix)
    rng = last(dt.timedelta(hours=1))

    def seen() -> int:
        store.es.indices.refresh(index=f"{store.prefix}-activity-*", ignore_unavailable=True)
        return store.domain_activity(victim, True, rng, "minute")["queries"]

    deadline = time.monotonic() + 90
    while (shown := seen()) < FLOOD:
        # The worker consumed all FLOOD events (asserted above): every one must be counted.
        assert time.monotonic() < deadline, f"the worker took all {FLOOD} events, the store shows {shown} under {victim}"
        time.sleep(2)
    view = store.domain_activity(victim, True, rng, "minute")
    assert view["queries"] == FLOOD, view["queries"]
    assert len(view["names"]) > 0 and view["client_count"] >= 1
