"""Load generator mix and --wait-verdicts (fake cache); the report moved to tests/dashboard/test_report.py."""

from __future__ import annotations

from collections import Counter

import pytest

from dnsentinel.producers import loadgen
from dnsentinel.producers.encode import EventEncoder
from dnsentinel.producers.loadgen import Mix, TrafficModel, generate
from dnsentinel.producers.wait import wait_for_verdicts
from dnsentinel.verdict_cache.events import parse_event


@pytest.mark.parametrize("names", ["synthetic", "auto"])
def test_mix_shares_and_valid_events(names):
    model = TrafficModel(Mix(dga=0.1, phishing=0.05, flood=0.05), clients=200, names=names, seed=1)
    drawn = list(model.draw(20_000))
    victims = set(model.victims)
    flood = sum(1 for n, _, _ in drawn if any(n.endswith("." + v) for v in victims) and n.count(".") >= 2
                and len(n.split(".")[0]) == 12)
    assert 0.03 < flood / len(drawn) < 0.08
    top = Counter(n for n, _, _ in drawn).most_common(1)[0][1]
    assert top / len(drawn) > 0.02  # Zipf head: the most popular name is far above uniform
    assert len({c for _, _, c in drawn}) > 100
    infected = set(model.infected)
    enc = EventEncoder("loadgen")
    for q in [loadgen.Query(1763629200000, n, t, c, None, "udp", None) for n, t, c in drawn[:2000]]:
        out = enc.encode(q)
        assert type(out) is not str, (q, out)
        assert parse_event(out.value.encode()).source == "loadgen"
    assert infected <= set(model.clients)


def test_synthetic_names_need_no_corpus(monkeypatch, tmp_path):
    monkeypatch.setattr(loadgen, "DATA_DIR", tmp_path)
    model = TrafficModel(Mix(), names="auto", seed=2)
    assert model.source == "synthetic"
    with pytest.raises(FileNotFoundError):
        TrafficModel(Mix(), names="corpus")


def test_bad_shares():
    with pytest.raises(ValueError):
        Mix(dga=0.7, phishing=0.5).check()
    with pytest.raises(ValueError):
        Mix(dga=-0.1).check()


def test_generate_keeps_the_rate():
    model = TrafficModel(Mix(), clients=10, names="synthetic", seed=3)
    got = []
    sent = generate(model, rate=2000, duration_s=0.5, emit=got.append)
    assert sent == len(got) == 1000


class FakeCache:
    def __init__(self, arrivals):
        self.arrivals = arrivals  # call number -> names that have a verdict from then on
        self.calls = 0
        self.known: set[str] = set()

    def get_verdicts(self, names):
        self.calls += 1
        self.known |= self.arrivals.get(self.calls, set())
        return {n: object() for n in names if n in self.known}


def test_wait_until_all_verdicts_arrive():
    cache = FakeCache({1: {"a.com"}, 3: {"b.com", "c.com"}})
    seen = []
    missing = wait_for_verdicts({"a.com", "b.com", "c.com"}, cache, timeout_s=5, poll_s=0.01,
                                on_progress=lambda done, total: seen.append((done, total)))
    assert missing == set() and seen[-1] == (3, 3) and seen[0] == (1, 3)


def test_wait_times_out_with_the_missing_names():
    missing = wait_for_verdicts({"a.com", "never.com"}, FakeCache({1: {"a.com"}}), timeout_s=0.1, poll_s=0.02)
    assert missing == {"never.com"}
