"""A worker SIGKILLed mid-batch: after a restart every event is accounted for, once.

What the stream processor promises (stream_processor/pipeline.py, es_sink.py): Kafka offsets
are committed only after a batch's verdicts are in Redis and its counts in Elasticsearch, so a
crash replays the unacked events; activity and verdict documents carry the highest counted
source offset as their external version, so a replayed event is never counted twice.
"""

from __future__ import annotations

import json
import random
import threading
import time

import pytest

from dnsentinel.verdict_cache.es_schema import COUNT, Q_NAME, QUERY_COUNT

from .conftest import rand_label, total, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _es_counts(es, prefix: str, names: list[str]) -> tuple[int, dict[str, int], int]:
    """(activity count sum, verdict query_count per name, verdict docs) for ``names``."""
    es.indices.refresh(index=f"{prefix}-*", ignore_unavailable=True, allow_no_indices=True)
    q = {"terms": {Q_NAME: names}}
    act = es.search(index=f"{prefix}-activity-*", query=q, size=0, aggs={"n": {"sum": {"field": COUNT}}},
                    ignore_unavailable=True, allow_no_indices=True)
    activity = int(act["aggregations"]["n"]["value"] or 0)
    ver = es.search(index=f"{prefix}-verdicts", query=q, size=len(names) + 10, ignore_unavailable=True,
                    allow_no_indices=True)
    hits = ver["hits"]["hits"]
    per_name: dict[str, int] = {}
    for h in hits:
        assert h["_source"][Q_NAME] not in per_name, f"two verdict documents for {h['_source'][Q_NAME]}"
        per_name[h["_source"][Q_NAME]] = int(h["_source"].get(QUERY_COUNT) or 0)
    return activity, per_name, len(hits)


def test_worker_killed_mid_batch_loses_nothing_and_counts_once(healthy, tmp_path):
    fs = healthy
    run = rand_label(6)
    rng = random.Random(run)
    names = [f"{rand_label(9)}{i}-{run}.com" for i in range(1500)]
    per_name = {n: rng.randint(1, 3) for n in names}
    now = int(time.time() * 1000)
    lines = []
    for n, k in per_name.items():
        for j in range(k):
            lines.append(json.dumps({"v": 1, "ts": now + j, "name": n, "qtype": "A",
                                     "client": f"10.3.{j}.1", "source": "replay"}))
    rng.shuffle(lines)
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    n_events = len(lines)

    cache = fs.cache()
    # The replay runs while this thread watches Redis: the worker scores ~3,000 events in well under a
    # second, so waiting for the replay command to exit first would kill an idle worker.
    replay: list = []
    producer = threading.Thread(target=lambda: replay.append(
        fs.cli("replay", str(events), "--format", "jsonl", "--no-progress")), daemon=True)
    producer.start()
    # Kill as soon as the first verdicts of this run are in Redis: the batch is being processed,
    # its counts are not yet in Elasticsearch and its offsets not committed.
    probe = names[::25]
    wait_for(lambda: cache.get_verdicts(probe), 120, "the first verdicts of the replay", every=0.01)
    fs.kill_worker(0)
    done_before = len(cache.get_verdicts(names))
    print(f"worker SIGKILLed with {done_before}/{len(names)} names scored")
    producer.join(180)
    assert replay and replay[0].returncode == 0, replay[0].stdout + replay[0].stderr if replay else "no replay"

    fs.ensure_worker(0)
    wait_for(lambda: len(cache.get_verdicts(names)) == len(names), 240,
             "a verdict for every replayed name after the restart", every=1)

    es = fs.es()
    prefix = fs.settings.elasticsearch.index_prefix
    seen: list = []

    def counted() -> bool:
        seen[:] = [_es_counts(es, prefix, names)[0], _es_counts(es, prefix, names)[2],
                   {k[0].rsplit("_", 1)[-1] + str(dict(k[1])): v for k, v in fs.worker_metrics(0).items()
                    if k[0].startswith("dnsentinel_worker_es_") and not k[0].endswith("_created") and v}]
        return seen[0] >= n_events

    deadline = time.monotonic() + 120
    while not counted():
        assert time.monotonic() < deadline, (f"{seen[0]}/{n_events} events counted, {seen[1]}/{len(names)} "
                                             f"verdict documents, worker ES metrics {seen[2]}")
        time.sleep(2)
    time.sleep(3)  # a replay that double counts would show up in the next flushes
    activity, verdict_counts, docs = _es_counts(es, prefix, names)
    assert activity == n_events, f"activity counts {activity} != {n_events} events replayed"
    assert docs == len(names), f"{docs} verdict documents for {len(names)} names"
    wrong = {n: (verdict_counts.get(n), k) for n, k in per_name.items() if verdict_counts.get(n) != k}
    assert not wrong, f"{len(wrong)} names with query_count != events, e.g. {list(wrong.items())[:5]}"
    m = fs.worker_metrics(0)
    print(f"after restart: events_in {total(m, 'dnsentinel_worker_events_in_total'):.0f}, "
          f"es conflicts {total(m, 'dnsentinel_worker_es_errors_total', kind='version_conflict'):.0f}")
