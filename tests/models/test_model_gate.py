"""The quality gate: regressions are named with their size, promotion refuses them unless forced."""

from __future__ import annotations

import json
import shutil

import pytest

from dnsentinel.models import gate, registry


def test_regressions_name_each_worse_measure_and_by_how_much():
    current = {m.key: 0.5 for m in gate.MEASURES}
    candidate = dict(current)
    candidate["dga: malicious"] = 0.40  # higher is better: 10 points worse
    candidate["benign_other_ranking: uncertain"] = 0.503  # lower is better, within tolerance
    candidate["benign_other_ranking: malicious"] = 0.52  # 2 points worse
    lines = gate.regressions(current, candidate)
    assert len(lines) == 2
    assert "dga: malicious: 40.00% vs 50.00% now (+10.00 points worse)" in lines
    assert any(line.startswith("benign_other_ranking: malicious") for line in lines)
    assert gate.regressions(current, current) == []


def test_gate_set_has_every_slice_a_measure_reads():
    names = gate.read_gate_set()
    assert {m.slice for m in gate.MEASURES} <= set(names["slice"])
    assert names["domain"].is_unique


def test_promotion_refuses_a_worse_model_unless_forced(trained, tmp_path):
    root, path = trained
    reg = tmp_path / "registry"
    shutil.copytree(root, reg)
    worse = reg / "tiny-blocks-everything"
    shutil.copytree(reg / path.name, worse)
    manifest = json.loads((worse / registry.MANIFEST).read_text())
    manifest["version"] = worse.name
    manifest["thresholds"] = {"block": 0.0, "allow": 0.0}  # every name the model judges is blocked
    (worse / registry.MANIFEST).write_text(json.dumps(manifest))
    (worse / gate.RESULT).unlink(missing_ok=True)

    with pytest.raises(gate.GateRefused, match=r"benign_other_ranking: malicious: 100\.00% vs .* points worse"):
        gate.promote(worse.name, reg)
    assert registry.current_version(reg) == path.name
    assert gate.promote(worse.name, reg, force=True) == path.name
    assert registry.current_version(reg) == worse.name
    # measured once per version and kept beside it
    assert json.loads((worse / gate.RESULT).read_text())["measures"]["benign_other_ranking: malicious"] == 1.0


# What the shipped model decides on the gate set (measured 2026-12-01, charcnn-20261201-words),
# and the floor below which this test fails: a few points of slack for retraining noise, none
# for a regression that matters to a SOC.
SHIPPED_FLOORS = {
    "benign_other_ranking: malicious": ("<=", 0.003),  # measured 0.07%; goal 0.1% on 25k names
    "benign_other_ranking: uncertain": ("<=", 0.02),  # measured 1.47%; goal 2%
    "dga: malicious": (">=", 0.55),  # measured 61.68%
    "dga: malicious+uncertain": (">=", 0.80),  # measured 85.74%
    "phishing: malicious": (">=", 0.50),  # measured 57.20%
    "malware: malicious": (">=", 0.005),  # measured 0.88%
    "not_public: unscored": (">=", 1.0),
}


def test_the_shipped_model_holds_its_gate_floors():
    from dnsentinel.models import load
    from dnsentinel.models.detector import Detector

    measures = gate.measure(Detector.of(load()))  # the repository's current model, measured afresh
    failures = [
        f"{key}: {measures[key]:.2%} (floor {op} {bound:.2%})"
        for key, (op, bound) in SHIPPED_FLOORS.items()
        if not (measures[key] <= bound if op == "<=" else measures[key] >= bound)
    ]
    assert not failures, "; ".join(failures)
