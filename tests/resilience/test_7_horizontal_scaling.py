"""Horizontal scaling on one machine: two workers share the partitions of one consumer group, and
two CoreDNS instances on one Redis both see a vetted change within a second."""

from __future__ import annotations

import time

import pytest

from dnsentinel.cli.demo import dns_answer, is_blocked

from .conftest import rand_label, total, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _assignments(fs) -> dict[str, set[int]]:
    """member id -> partitions of the queries topic, from the broker's view of the group."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(fs.settings.kafka.confluent_config())
    group = fs.settings.worker.app_id
    try:
        desc = admin.describe_consumer_groups([group])[group].result(timeout=10)
    except Exception:  # noqa: BLE001 - the group may be rebalancing; polled again
        return {}
    out = {}
    for m in desc.members:
        tps = m.assignment.topic_partitions if m.assignment else []
        out[m.member_id] = {tp.partition for tp in tps if tp.topic == fs.settings.kafka.queries_topic}
    return out


def test_two_workers_share_the_partitions_and_both_score(healthy):
    from dnsentinel.producers.kafka_out import EventProducer
    from dnsentinel.verdict_cache.events import QueryEvent, encode_event
    from dnsentinel.verdict_cache.names import routing_key

    fs = healthy
    try:
        fs.ensure_worker(1)

        def shared() -> dict[str, set[int]] | None:
            a = _assignments(fs)
            ok = len(a) == 2 and all(a.values()) and set().union(*a.values()) == set(
                range(fs.settings.kafka.queries_partitions))
            return a if ok else None

        assignment = wait_for(shared, 120, "both workers to hold queries partitions", every=2)
        parts = sorted(assignment.values(), key=min)
        assert not (parts[0] & parts[1]), f"a partition assigned twice: {assignment}"

        m0 = [fs.worker_metrics(i) for i in (0, 1)]
        run = rand_label(6)
        names = [f"{rand_label(8)}{i}-{run}.com" for i in range(300)]  # distinct registrables: all partitions
        producer = EventProducer(settings=fs.settings)
        now = int(time.time() * 1000)
        for n in names:
            ev = QueryEvent(ts=now, name=n, qtype="A", client="10.7.0.1", source="loadgen", server="resilience")
            producer.produce(routing_key(n), encode_event(ev))
        producer.close()
        cache = fs.cache()
        wait_for(lambda: len(cache.get_verdicts(names)) == len(names), 120, "verdicts for every name", every=1)

        def scored() -> list[float]:  # a worker counts a batch just after its verdicts are in Redis
            return [total(fs.worker_metrics(i), "dnsentinel_worker_scored_names_total")
                    - total(m0[i], "dnsentinel_worker_scored_names_total") for i in (0, 1)]

        wait_for(lambda: sum(scored()) >= len(names), 10, f"the workers to count {len(names)} names scored")
        per_worker = scored()
        assert all(s > 0 for s in per_worker), f"names scored per worker: {per_worker}"
        print(f"partitions {[sorted(p) for p in parts]}, names scored per worker {per_worker}")
    finally:
        fs.stop_worker(1)


def test_two_coredns_instances_see_a_vetted_change_within_a_second(healthy):
    from dnsentinel.cli import stackctl

    fs = healthy
    second = fs.second_coredns()
    stackctl.up(second, ("coredns",), echo=False)
    try:
        instances = (fs.settings, second)
        run = rand_label(6)
        name = f"www.shared-{run}.com"
        # A benign verdict first: the worker then never scores the name (the model could call the random
        # label malicious), so both instances answer it normally until the vetted block.
        from dnsentinel.verdict_cache.cache import Verdict

        fs.cache().put_verdicts([Verdict(name, "benign", 0.01, "resilience-test", int(time.time()))])
        for s in instances:  # both have the name in their local cache, as benign
            assert dns_answer(s, name)[0] == "NOERROR"
            assert dns_answer(s, name)[0] == "NOERROR"
        fs.cache().set_vetted(f"shared-{run}.com", "block", by="resilience")  # covers the subdomain
        t0 = time.perf_counter()
        seen: dict[int, float] = {}
        while len(seen) < 2 and time.perf_counter() - t0 < 5:
            for i, s in enumerate(instances):
                if i not in seen and is_blocked(s, *dns_answer(s, name)):
                    seen[i] = time.perf_counter() - t0
        assert len(seen) == 2, f"only instances {sorted(seen)} blocked {name} within 5 s"
        assert max(seen.values()) < 1.0, f"vetted block seen after {seen} s"
        print(f"vetted block seen by instance 1 after {seen[0]*1000:.0f} ms, instance 2 after {seen[1]*1000:.0f} ms")
    finally:
        stackctl.down(second, ("coredns",), echo=False)
