"""Kafka stopped: DNS is unaffected, the plugin counts its dropped events, and every client
(plugin, worker, replay) picks up again on its own once Kafka is back."""

from __future__ import annotations

import json
import re
import time

import pytest

from dnsentinel.cli.demo import dns_answer

from .conftest import rand_label, total, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DROPPED = "coredns_dnsentinel_events_dropped_total"
PRODUCED = "coredns_dnsentinel_events_produced_total"


def _events_file(path, names: list[str]):
    now = int(time.time() * 1000)
    path.write_text("".join(json.dumps({"v": 1, "ts": now, "name": n, "qtype": "A", "client": "10.9.0.1",
                                        "source": "replay"}) + "\n" for n in names))
    return path


def test_kafka_stopped_dns_unaffected_and_everyone_reconnects(healthy, tmp_path):
    fs = healthy
    run = rand_label(6)
    worker_pid = fs.worker_pid(0)
    before = fs.coredns_metrics()

    fs.down("kafka")
    # DNS answers as before: every query NOERROR within dns_answer's 2 s timeout, nearly all promptly
    # (a single slow answer on a 2-core machine at load ~20 is the scheduler, not Kafka).
    took = []
    for i in range(100):
        t0 = time.perf_counter()
        rcode, detail = dns_answer(fs.settings, f"down{i}-{run}.com")
        took.append(time.perf_counter() - t0)
        assert rcode == "NOERROR", (rcode, detail)
    took.sort()
    assert took[94] < 0.1, f"p95 {took[94]:.3f} s with Kafka down (slowest {took[-3:]})"

    # A replay while Kafka is down fails with a clear error, not a traceback.
    replay_file = _events_file(tmp_path / "events.jsonl", [f"replayed{i}-{run}.com" for i in range(20)])
    res = fs.cli("replay", str(replay_file), "--format", "jsonl", "--no-progress")
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert re.search(r"kafka at \S+: unreachable", out, re.I) and "Traceback" not in out, out

    # The plugin drops what it cannot deliver (delivery timeout 30 s) and counts it.
    wait_for(lambda: total(fs.coredns_metrics(), DROPPED) > total(before, DROPPED), 75,
             "the plugin's dropped-events counter to rise", every=2)

    fs.up("kafka")
    # The replay succeeds on retry.
    res = fs.cli("replay", str(replay_file), "--format", "jsonl", "--no-progress")
    assert res.returncode == 0, res.stdout + res.stderr

    # Plugin events flow again, and the (same) worker turns them into verdicts.
    produced = total(fs.coredns_metrics(), PRODUCED)
    live = [f"back{i}-{run}.com" for i in range(20)]
    for n in live:
        assert dns_answer(fs.settings, n)[0] == "NOERROR"
    wait_for(lambda: total(fs.coredns_metrics(), PRODUCED) >= produced + len(live), 60,
             "plugin events to be acknowledged by Kafka again", every=1)
    cache = fs.cache()
    wanted = live + [f"replayed{i}-{run}.com" for i in range(20)]
    wait_for(lambda: len(cache.get_verdicts(wanted)) == len(wanted), 180,
             "verdicts for names queried/replayed after Kafka came back", every=1)
    assert fs.worker_pid(0) == worker_pid, "the worker had to be restarted: it did not survive the Kafka outage"
