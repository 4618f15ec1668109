"""The offline decision: unscored names, the popularity prior, thresholds (a fake model, no TensorFlow)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from dnsentinel.models import prior
from dnsentinel.models.detector import Detector
from dnsentinel.verdict_cache.vocabulary import REASONS, UNSCORED_REASONS


class TableModel:
    """Scores by lookup (default 0.5) and records what it was asked."""

    version = "table-1"
    thresholds = SimpleNamespace(block=0.9, allow=0.1)

    def __init__(self, scores: dict[str, float]) -> None:
        self.scores = scores
        self.asked: list[str] = []

    def predict(self, names):
        self.asked += list(names)
        return np.array([self.scores.get(n, 0.5) for n in names])


POPULAR = prior.Prior(frozenset({"weebly.com", "duckduckgo.com", "debian.org"}), frozenset({"weebly.com"}))


def test_names_that_are_not_public_dns_names_are_unscored_and_never_scored():
    model = TableModel({})
    names = ["_airplay._tcp.local", "living room._raop._tcp.local", "nas.lan", "https://app-measurement.com/sdk-exp",
             "4.3.2.1.in-addr.arpa", "wpad", "q1w2e3.pirate.sea", "router.home.arpa", "10.0.0.1"]
    out = Detector(model).decide(names)
    assert out.labels == ["unscored"] * len(names)
    assert out.reasons == ["unscored:service", "unscored:not_hostname", "unscored:special_use", "unscored:not_hostname",
                           "unscored:reverse", "unscored:bare", "unscored:no_public_suffix", "unscored:special_use",
                           "unscored:ip"]
    assert model.asked == []
    # every reason is a word of the one vocabulary
    assert {r.partition(":")[0] for r in out.reasons} <= set(REASONS)
    assert {r.partition(":")[2] for r in out.reasons} == set(UNSCORED_REASONS)  # each one, exercised


def test_the_prior_vouches_for_ranked_domains_but_not_below_open_platforms():
    model = TableModel({"paypal-verify.weebly.com": 0.95})
    out = Detector(model, POPULAR).decide(["duckduckgo.com", "packages.debian.org", "paypal-verify.weebly.com"])
    assert out.labels == ["benign", "benign", "malicious"]
    assert out.reasons == ["prior", "prior", "model"]
    assert model.asked == ["paypal-verify.weebly.com"]  # the prior spares the model


def test_scores_become_labels_by_the_thresholds_and_names_are_normalized():
    model = TableModel({"xjwqkqzpl.biz": 0.95, "maybe.net": 0.5, "fine.org": 0.05})
    out = Detector(model).decide(["XJWQKQZPL.biz.", "maybe.net", "fine.org", "alt-root.bazar"])
    assert out.names[:3] == ["xjwqkqzpl.biz", "maybe.net", "fine.org"]
    assert out.labels == ["malicious", "uncertain", "benign", "uncertain"]  # .bazar: malware's own root, judged
    assert out.scores.tolist() == [0.95, 0.5, 0.05, 0.5]


def test_prior_round_trips_through_its_registry_file(tmp_path):
    built = prior.build(["www.example.com", "shop.example.org", "weebly.com"],
                        ["a.weebly.com", "b.weebly.com", "evil.top"], ["test"])
    assert built.vouches_for("example.com") and built.vouches_for("example.org")
    assert not built.vouches_for("weebly.com")  # two malicious names below it: an open platform
    built.save(tmp_path)
    again = prior.load(tmp_path)
    assert again.ranking == built.ranking and again.open_platforms == built.open_platforms
    assert again.info["sources"] == ["test"]
    assert prior.load(tmp_path / "none") is prior.EMPTY


def test_the_curated_open_platform_file_reports_bad_lines(tmp_path):
    bad = tmp_path / "open.txt"
    bad.write_text("# comment\nweebly.com\nnot a domain!\n")
    with pytest.raises(ValueError, match=r"open.txt:3: 'not a domain!'"):
        prior.curated_open_platforms(bad)
    assert "duckdns.org" in prior.curated_open_platforms()
