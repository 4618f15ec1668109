"""Corpus handling: groups that respect per-FQDN labels, deterministic leakage-free splits, balancing."""

from __future__ import annotations

import pandas as pd
import pytest

from dnsentinel.models import dataset


def _frame(rows):
    return pd.DataFrame(rows, columns=["domain", "label", "kind", "family"])


def test_groups_are_per_class_and_shared_platforms_split_one_level_deeper():
    frame = _frame(
        [
            ("weebly.com", 0, "benign", ""),
            ("paypal-verify.weebly.com", 1, "phishing", ""),
            ("www.paypal-verify.weebly.com", 1, "phishing", ""),
            ("bank-login.weebly.com", 1, "phishing", ""),
            ("a.evil-shop.top", 1, "phishing", ""),
            ("b.evil-shop.top", 1, "phishing", ""),
            ("mail.google.com", 0, "benign", ""),
        ]
    )
    keys = list(dataset.group_keys(frame))
    assert keys[0] == "0:weebly.com"
    assert keys[1] == keys[2] == "1:paypal-verify.weebly.com"
    assert keys[3] == "1:bank-login.weebly.com"
    assert keys[4] == keys[5] == "1:evil-shop.top"
    assert keys[6] == "0:google.com"


def test_split_is_deterministic_holds_out_families_and_never_splits_a_group(tiny_corpus):
    frame = dataset.load_corpus(tiny_corpus)
    a = dataset.split(frame, seed=3, holdout=("necurs",))
    b = dataset.split(frame, seed=3, holdout=("necurs",))
    for x, y in zip(a.as_dict().values(), b.as_dict().values(), strict=True):
        assert x["domain"].tolist() == y["domain"].tolist()
    assert set(a.unseen["family"]) == {"necurs"}
    assert "necurs" not in a.families and "conficker" in a.families
    seen = pd.concat([a.train.assign(s="train"), a.val.assign(s="val"), a.test.assign(s="test")])
    assert (seen.groupby("group")["s"].nunique() == 1).all()
    assert len(seen) + len(a.unseen) == len(frame)


def test_balanced_sample_mixes_kinds_and_equalizes_families():
    rows = [(f"b{i}.com", 0, "benign", "") for i in range(500)]
    rows += [(f"big{i}.net", 1, "dga", "big") for i in range(400)]
    rows += [(f"small{i}.net", 1, "dga", "small") for i in range(10)]
    rows += [(f"p{i}.top", 1, "phishing", "") for i in range(400)]
    sample = dataset.balanced_sample(_frame(rows), 400, seed=1)
    counts = sample["kind"].value_counts()
    share = {kind: round(400 * dataset.MIX[kind]) for kind in dataset.MIX}
    assert counts["benign"] == share["benign"]
    fam = sample[sample.kind == "dga"]["family"].value_counts()
    # the small family is kept whole, the big one fills the rest of the share
    assert fam["small"] == 10 and fam["big"] == share["dga"] - 10
    assert counts["phishing"] == share["phishing"]


def test_synthetic_rows_only_fill_what_real_names_leave():
    rows = [(f"b{i}.com", 0, "benign", "") for i in range(100)]
    rows += [(f"p{i}.top", 1, "phishing", "") for i in range(400)]
    frame = _frame(rows)
    synthetic = _frame([(f"s{i}.example.org", 0, "benign", "") for i in range(500)])
    synthetic["origin"] = "synthetic"
    sample = dataset.balanced_sample(pd.concat([frame.assign(origin="corpus"), synthetic]), 400, seed=1)
    benign = sample[sample.kind == "benign"]
    assert len(benign) == round(400 * dataset.MIX["benign"])
    assert (benign["origin"] == "corpus").sum() == 100  # every real name first


def test_synthesized_benign_names_recombine_benign_parts_only(tiny_corpus):
    splits = dataset.split(dataset.load_corpus(tiny_corpus, cross_source=True), seed=3, holdout=("necurs",))
    made = dataset.synthesize_benign(splits.train, n_fqdn=200, n_tld=100, seed=3)
    assert len(made) > 100 and set(made["label"]) == {0} and set(made["origin"]) == {"synthetic"}
    assert not set(made["domain"]) & set(splits.train["domain"])  # new names, never a copy
    benign = splits.train[splits.train["label"] == 0]
    bases = set(dataset.registrable_domains(benign["domain"]))
    fqdns = [d for d in made["domain"] if d.count(".") >= 2]
    assert fqdns and all(any(d.endswith("." + b) for b in bases) for d in fqdns[:50])
    malicious_tlds = set(splits.train.loc[splits.train["label"] == 1, "domain"].str.rsplit(".", n=1).str[-1])
    two_label = [d for d in made["domain"] if d.count(".") == 1]
    allowed = malicious_tlds | {b.rsplit(".", 1)[1] for b in bases}
    assert two_label and {d.rsplit(".", 1)[1] for d in two_label} <= allowed


def test_cross_source_rows_split_into_train_calibration_and_report(tiny_corpus):
    splits = dataset.split(dataset.load_corpus(tiny_corpus, cross_source=True), seed=3, holdout=("necurs",))
    cross_train = splits.train[splits.train["origin"] == "cross"]
    assert len(cross_train) and len(splits.cal) and len(splits.report)
    assert set(splits.cal["label"]) == {0} and set(splits.report["label"]) == {0}
    groups = [set(cross_train["group"]), set(splits.cal["group"]), set(splits.report["group"])]
    assert not (groups[0] & groups[1]) and not (groups[0] & groups[2]) and not (groups[1] & groups[2])


def test_family_targets():
    frame = _frame([("x.com", 0, "benign", ""), ("q.net", 1, "dga", "b"), ("z.net", 1, "dga", "unknown")])
    assert dataset.family_targets(frame, ["a", "b"]).tolist() == [0, 2, 0]


def test_read_labelled_formats_and_errors(tmp_path):
    good = tmp_path / "l.csv"
    good.write_text("domain,label\ngoogle.com,benign\nxjq.biz,1\n")
    frame = dataset.read_labelled(good)
    assert frame["label"].tolist() == [0, 1]
    dga = tmp_path / "d.csv"
    dga.write_text("domain,family,source\nabc.net,foo,x\n")
    assert dataset.read_labelled(dga)["kind"].tolist() == ["dga"]
    bad = tmp_path / "bad.csv"
    bad.write_text("domain,label\na.com,maybe\n")
    with pytest.raises(dataset.DataError, match="row 2"):
        dataset.read_labelled(bad)
    with pytest.raises(dataset.DataError, match="domain"):
        nodomain = tmp_path / "n.csv"
        nodomain.write_text("name\nx.com\n")
        dataset.read_labelled(nodomain)
    with pytest.raises(dataset.DataError, match="no such file"):
        dataset.read_labelled(tmp_path / "missing.csv")


def test_vetted_labels_come_from_the_verdict_cache(monkeypatch):
    from types import SimpleNamespace

    from dnsentinel.verdict_cache import cache

    records = {
        "good.example": SimpleNamespace(action="allow"),
        "*.bad.example": SimpleNamespace(action="block"),
        "trap.example": SimpleNamespace(action="honeypot"),
    }
    fake = SimpleNamespace(list_vetted=lambda action=None: records)
    monkeypatch.setattr(cache.VerdictCache, "from_settings", classmethod(lambda cls, settings=None: fake))
    frame = dataset.vetted_labels()
    assert dict(zip(frame["domain"], frame["label"], strict=True)) == {
        "bad.example": 1,
        "good.example": 0,
        "trap.example": 1,
    }
    assert set(frame["kind"]) == {"vetted"}


def test_head_targets_mask_what_a_head_should_not_learn():
    frame = _frame(
        [("g.com", 0, "benign", ""), ("q.net", 1, "dga", "x"), ("p.top", 1, "phishing", ""), ("v.io", 1, "vetted", "")]
    )
    t = dataset.head_targets(frame)
    assert t["dga"].ravel().tolist() == [0, 1, -1, -1]
    assert t["other"].ravel().tolist() == [0, -1, 1, 1]


def test_holding_out_an_unknown_family_is_an_error(tiny_corpus):
    with pytest.raises(dataset.DataError, match="cannot hold out nosuchfamily"):
        dataset.split(dataset.load_corpus(tiny_corpus), holdout=("necurs", "nosuchfamily"))
