"""Malformed events and log lines from a hypothesis corpus: dead-lettered or reported, counted, no crash.

The corpus is generated once per run with ``derandomize=True`` (the same corpus every run) and
sent through the real services: events to the queries topic of the fault stack (the worker must
dead-letter each invalid one with the reason the contract's own parser gives, and count it),
log lines through ``dnsentinel replay`` (each skipped line reported and counted).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter

import pytest
from hypothesis import HealthCheck, Phase, given, settings as hsettings, strategies as st

from dnsentinel.verdict_cache.events import InvalidEvent, parse_event

from .conftest import rand_label, total, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

_BASE = {"v": 1, "ts": int(time.time() * 1000), "name": "fuzz.example.com", "qtype": "A", "client": "10.0.0.1",
         "source": "replay"}
_FIELDS = [*_BASE, "server", "origin", "action", "decision", "rcode", "latency_us", "proto"]
_DELETE = object()
_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=20))
_json = st.recursive(_scalar, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                     max_leaves=8)


def _mutate(field: str, value: object) -> bytes:
    ev = dict(_BASE)
    if value is _DELETE:
        ev.pop(field, None)
    else:
        ev[field] = value
    return json.dumps(ev).encode()


EVENTS = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    _json.map(lambda x: json.dumps(x).encode()),
    st.tuples(st.sampled_from(_FIELDS), st.one_of(st.just(_DELETE), _scalar, st.lists(_scalar, max_size=3))).map(
        lambda fv: _mutate(*fv)),
    st.integers(4097, 6000).map(lambda n: json.dumps({**_BASE, "pad": "x" * n}).encode()),
)
_NOT_A_LINE_BREAK = st.characters(blacklist_categories=("Cs",),
                                  blacklist_characters="\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
LINES = st.one_of(
    st.text(alphabet=_NOT_A_LINE_BREAK, max_size=120).map(str.encode),
    st.lists(st.text(alphabet=_NOT_A_LINE_BREAK, max_size=15), min_size=1, max_size=26).map(
        lambda cols: "\t".join(cols).encode()),
    st.binary(max_size=80).map(lambda b: b.replace(b"\n", b" ").replace(b"\r", b" ")),
)


def corpus(strategy: st.SearchStrategy, n: int) -> list[bytes]:
    """``n`` examples of ``strategy``, the same every run (no shrinking, no example database)."""
    out: list[bytes] = []

    @hsettings(max_examples=n, database=None, derandomize=True, deadline=None, phases=[Phase.generate],
               suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(x: bytes) -> None:
        out.append(x)

    collect()
    return list(dict.fromkeys(out))


def _reason(value: bytes) -> str | None:
    try:
        parse_event(value)
        return None
    except InvalidEvent as exc:
        return exc.reason


def test_fuzzed_events_are_dead_lettered_with_reason_and_counted(healthy):
    from confluent_kafka import Consumer, Producer, TopicPartition

    fs = healthy
    k = fs.settings.kafka
    payloads = corpus(EVENTS, 250)
    expected_reasons = {i: _reason(p) for i, p in enumerate(payloads)}
    invalid = {i for i, r in expected_reasons.items() if r is not None}
    assert len(invalid) > 100, "the corpus should be mostly invalid events"
    pid = fs.worker_pid(0)
    m0 = fs.worker_metrics(0)

    where: dict[tuple[int, int], int] = {}

    producer = Producer(k.confluent_config() | {"linger.ms": 5})
    for i, p in enumerate(payloads):
        producer.produce(k.queries_topic, p, key=f"fuzz-{rand_label(4)}".encode(),
                         on_delivery=lambda err, msg, i=i: where.__setitem__((msg.partition(), msg.offset()), i)
                         if err is None else None)
    assert producer.flush(30) == 0
    assert len(where) == len(payloads), "not every fuzzed event was delivered to Kafka"

    consumer = Consumer(k.confluent_config() | {"group.id": f"resilience-{rand_label()}", "enable.auto.commit": False})
    consumer.assign([TopicPartition(k.dlq_topic, 0, 0)])  # OFFSET 0: the fault stack's DLQ is ours alone
    got: dict[int, dict] = {}
    deadline = time.monotonic() + 120
    try:
        while len(got) < len(invalid) and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            dl = json.loads(msg.value())
            i = where.get((dl.get("partition"), dl.get("offset"))) if dl.get("topic") == k.queries_topic else None
            if i is not None:
                got[i] = dl
    finally:
        consumer.close()
    missing = invalid - set(got)
    assert not missing, f"{len(missing)} invalid events never reached the dead-letter topic, e.g. " \
                        f"{[payloads[i][:80] for i in list(missing)[:3]]}"
    assert set(got) == invalid, f"valid events were dead-lettered: {[payloads[i][:80] for i in set(got) - invalid]}"
    wrong = {i: (got[i]["reason"], expected_reasons[i]) for i in invalid if got[i]["reason"] != expected_reasons[i]}
    assert not wrong, f"dead-letter reasons differ from the contract's: {list(wrong.values())[:5]}"
    assert all(dl.get("detail") is not None for dl in got.values())

    counted = Counter(expected_reasons[i] for i in invalid)
    wait_for(lambda: total(fs.worker_metrics(0), "dnsentinel_worker_invalid_events_total")
             - total(m0, "dnsentinel_worker_invalid_events_total") >= len(invalid), 30,
             "the worker's invalid-event counter", every=1)
    m1 = fs.worker_metrics(0)
    for reason, n in counted.items():
        delta = total(m1, "dnsentinel_worker_invalid_events_total", reason=reason) - total(
            m0, "dnsentinel_worker_invalid_events_total", reason=reason)
        assert delta == n, f"reason {reason}: counted {delta}, sent {n}"
    assert fs.worker_pid(0) == pid, "the worker crashed on the corpus"
    # ...and it still scores.
    from dnsentinel.cli.demo import wait_pipeline

    wait_pipeline(fs.settings, timeout_s=60)


@pytest.mark.parametrize("fmt", ["zeek", "bind"])
def test_fuzzed_log_lines_are_reported_and_counted_by_replay(healthy, tmp_path, fmt):
    fs = healthy
    lines = corpus(LINES, 300)
    header = (b"#separator \\x09\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\ttrans_id\t"
              b"rtt\tquery\tqclass\tqclass_name\tqtype\tqtype_name\trcode\trcode_name\n") if fmt == "zeek" else b""
    path = tmp_path / f"fuzz.{fmt}.log"
    path.write_bytes(header + b"\n".join(lines) + b"\n")
    res = fs.cli("replay", str(path), "--format", fmt, "--no-progress")
    out = res.stdout + res.stderr
    assert "Traceback" not in out, out
    assert res.returncode == 0, out
    assert "replay summary" in out and "lines read" in out, out
    read = int(re.search(r"lines read ([\d,]+)", out).group(1).replace(",", ""))
    assert read >= len(lines), out
    assert "skipped by reason:" in out, f"no skipped lines reported for a fuzz corpus:\n{out}"
