"""Redis SIGKILLed while dnsperf runs: CoreDNS fails open, nothing is lost, recovery is automatic."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from dnsentinel.cli.demo import dns_answer, is_blocked

from .conftest import rand_label, total, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BLOCK_RCODES = {"NOERROR", "NXDOMAIN"}  # answered normally, or the stack's block action (nxdomain)
LATENCY_BOUND_S = 0.5
"""dnsperf's max latency bound: redis_timeout (5 ms) plus a generous margin for a 2-core machine at load ~15."""


def _dnsperf_result(out: str) -> dict:
    def num(label: str) -> int:
        m = re.search(rf"{label}:\s+(\d+)", out)
        assert m, f"dnsperf printed no '{label}':\n{out}"
        return int(m.group(1))

    rcodes = dict((k, int(v)) for k, v in re.findall(r"([A-Z]+) (\d+) \(", out.split("Response codes:")[1].splitlines()[0]))
    lat = re.search(r"Average Latency \(s\):\s+([\d.]+) \(min ([\d.]+), max ([\d.]+)\)", out)
    assert lat, out
    return {"sent": num("Queries sent"), "completed": num("Queries completed"), "lost": num("Queries lost"),
            "rcodes": rcodes, "avg": float(lat.group(1)), "max": float(lat.group(3))}


def test_redis_killed_during_dnsperf_fails_open_and_recovers(healthy, tmp_path):
    fs = healthy
    cache = fs.cache()
    run = rand_label(6)
    names = [f"www.site{i}-{run}.com" for i in range(240)]
    malicious = [f"{rand_label(14)}-{run}.net" for _ in range(30)]
    blocked = [f"bad{i}-{run}.org" for i in range(30)]
    from dnsentinel.verdict_cache.cache import Verdict

    cache.put_verdicts(Verdict(n, "malicious", 0.99, "resilience-test", int(time.time())) for n in malicious)
    for n in blocked:
        cache.set_vetted(n, "block", by="resilience")
    # (A first lookup may fail open when Redis answers later than redis_timeout on a loaded machine;
    # the plugin then finishes it in the background, so the block applies a moment later.)
    wait_for(lambda: is_blocked(fs.settings, *dns_answer(fs.settings, blocked[0])), 5, "a vetted block on DNS")
    qfile = tmp_path / "queries.txt"
    qfile.write_text("".join(f"{n} A\n" for n in names + malicious + blocked))

    before = fs.coredns_metrics()
    perf = fs.dnsperf(qfile, "-l", "12", "-Q", "300", "-t", "2", "-c", "4")
    time.sleep(3)
    os.kill(fs.service_pid("redis"), signal.SIGKILL)
    time.sleep(4)  # a few seconds of queries with Redis gone
    fs.up("redis")
    out, _ = perf.communicate(timeout=120)
    after = fs.coredns_metrics()

    res = _dnsperf_result(out)
    assert res["completed"] > 1000, out
    assert res["lost"] == 0, f"queries lost while Redis was killed:\n{out}"
    assert set(res["rcodes"]) <= BLOCK_RCODES, f"unexpected rcodes {res['rcodes']} (fail open means NOERROR)"
    assert res["max"] < LATENCY_BOUND_S, f"max latency {res['max']} s over the fail-open bound {LATENCY_BOUND_S} s"
    errors = total(after, "coredns_dnsentinel_redis_errors_total") - total(before, "coredns_dnsentinel_redis_errors_total")
    assert errors > 0, "the plugin counted no Redis error while Redis was dead"
    # Lookups that took longer than the plugin's largest bucket (25 ms, 5x redis_timeout): a few percent at
    # most. On the shared 2-core machine at load 10-20 the Go scheduler alone delays some timers that much
    # (0 of 3,597 on a warm stack, 59 of 3,600 on a cold one); dnsperf's max above is the hard bound.
    def over_25ms(m: dict) -> float:
        return (total(m, "coredns_dnsentinel_lookup_duration_seconds_count")
                - total(m, "coredns_dnsentinel_lookup_duration_seconds_bucket", le="0.025"))

    slow = over_25ms(after) - over_25ms(before)
    lookups = total(after, "coredns_dnsentinel_lookup_duration_seconds_count") - total(
        before, "coredns_dnsentinel_lookup_duration_seconds_count")
    assert slow <= max(5, 0.05 * lookups), f"{slow} of {lookups} lookups took over 25 ms (load {os.getloadavg()})"
    print(f"dnsperf: {res}; redis errors {errors:.0f}; lookups over 25 ms: {slow:.0f}/{lookups:.0f}")

    # Recovery: a vetted block written after the restart reaches DNS by itself, for a name never seen
    # and for one the plugin cached (as unknown) while Redis was down.
    cache = fs.cache()
    fresh = f"new-{run}.org"
    # A name of the run that DNS still answers normally (the worker has scored every name by now; the
    # model may call one of these random labels malicious, so no particular name is assumed benign).
    seen = next((n for n in names if not is_blocked(fs.settings, *dns_answer(fs.settings, n))), None)
    assert seen is not None, f"every one of {len(names)} plain names is blocked"
    cache.set_vetted(fresh, "block", by="resilience")
    cache.set_vetted(seen, "block", by="resilience")
    for n in (fresh, seen):
        wait_for(lambda: is_blocked(fs.settings, *dns_answer(fs.settings, n)), 10, f"vetted block of {n} on DNS")
