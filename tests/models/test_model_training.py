"""A one-epoch training run into a temporary registry, then the serving API and CLI on its result."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from dnsentinel.models import load, registry, serving, training


def test_training_writes_a_complete_version_and_promotes_the_first(trained):
    root, path = trained
    for name in (registry.MANIFEST, registry.WEIGHTS, registry.METRICS, registry.HISTORY, registry.STATUS):
        assert (path / name).is_file(), name
    assert registry.current_version(root) == "tiny-charcnn"
    status = json.loads((path / registry.STATUS).read_text())
    assert status["state"] == "done" and status["progress"] == 1.0
    history = [json.loads(line) for line in (path / registry.HISTORY).read_text().splitlines()]
    assert history[0]["epoch"] == 1 and {"loss", "accuracy", "val_loss", "val_accuracy"} <= history[0].keys()
    manifest = json.loads((path / registry.MANIFEST).read_text())
    assert manifest["data_hash"].startswith("sha256:")
    assert 0.0 <= manifest["thresholds"]["allow"] <= manifest["thresholds"]["block"]
    report = json.loads((path / registry.METRICS).read_text())
    assert set(report["splits"]) == {"train", "val", "test", "unseen_families"}
    test = report["splits"]["test"]
    assert {"roc_auc", "tpr_at_fpr_1e-3", "tpr_at_fpr_1e-4", "at_block", "roc"} <= test["overall"].keys()
    assert len(test["overall"]["at_block"]["confusion"]) == 2
    assert "necurs" in report["splits"]["unseen_families"]["recall_per_family"]


def test_the_dga_slice_also_reports_the_dga_head_alone(trained):
    _, path = trained
    dga = json.loads((path / registry.METRICS).read_text())["splits"]["test"]["slices"]["dga"]
    assert {"roc_auc", "tpr_at_fpr_1e-3", "tpr_at_fpr_1e-4"} <= dga["dga_head"].keys()
    manifest = json.loads((path / registry.MANIFEST).read_text())
    assert "dga_head_auc" in manifest["summary"]


def test_predict_heads_are_the_parts_of_the_score(trained):
    """The score: the calibrated larger of dga/other, raised by the calibrated words head to below block."""
    root, _ = trained
    model = load(registry=root)
    names = ["google.com", "xjwqkqzpl.biz", "paypal-login.weebly.com", "ableback.net"]
    heads = {k: v.astype(np.float64) for k, v in model.predict_heads(names).items()}
    assert set(heads) == {"dga", "other", "words"}

    def logit(p):
        return np.log(p / (1 - p))

    top = np.maximum(heads["dga"], heads["other"])
    expected = model.calibration(logit(top))
    words = np.minimum(model.words_calibration(logit(heads["words"])), np.nextafter(model.thresholds.block, 0))
    np.testing.assert_allclose(np.maximum(expected, words), model.predict(names), atol=1e-5)
    assert np.all(words < model.thresholds.block)  # the words head alone never blocks
    assert model.predict([""])[0] == 0.0


def test_calibration_is_fitted_and_thresholds_follow_the_budget(trained):
    _, path = trained
    manifest = json.loads((path / registry.MANIFEST).read_text())
    platt = manifest["calibration"]["platt"]
    assert platt["a"] > 0  # a monotone map: the ranking of names is the model's
    t = manifest["thresholds"]
    assert 0.0 <= t["allow"] <= t["block"] <= 1.0 and t["uncertain_share"] == 0.015
    report = json.loads((path / registry.METRICS).read_text())
    points = report["operating_points"]["benign, other ranking (calibration part)"]
    # on the names it was chosen on, the budget holds by construction
    assert points["malicious"] <= t["block_fpr"] + 1e-9
    assert points["uncertain"] <= t["block_fpr"] + t["uncertain_share"] + 1e-9
    assert abs(sum(points[k] for k in ("malicious", "uncertain", "benign", "unscored")) - 1) < 1e-9


def test_reevaluate_rebuilds_the_splits_and_refuses_another_corpus(trained, tiny_corpus, tmp_path):
    root, path = trained
    before = json.loads((path / registry.METRICS).read_text())["splits"]["test"]["overall"]["roc_auc"]
    training.reevaluate("tiny-charcnn", registry_path=root, data_dir=tiny_corpus)
    after = json.loads((path / registry.METRICS).read_text())["splits"]["test"]["overall"]["roc_auc"]
    assert after == pytest.approx(before)
    other = tmp_path / "corpus"
    other.mkdir()
    for f in tiny_corpus.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    (other / "benign.csv.xz").write_bytes((tiny_corpus / "dga.csv.xz").read_bytes())
    with pytest.raises(registry.RegistryError, match="corpus differs"):
        training.reevaluate("tiny-charcnn", registry_path=root, data_dir=other)


def test_reevaluate_keeps_the_versions_budget_unless_given_another(trained, tiny_corpus, tmp_path):
    import shutil

    root, path = trained
    reg = tmp_path / "registry"
    shutil.copytree(root, reg)
    training.reevaluate(path.name, registry_path=reg, data_dir=tiny_corpus)
    kept = json.loads((reg / path.name / registry.MANIFEST).read_text())["thresholds"]
    assert (kept["block_fpr"], kept["uncertain_share"]) == (training.TrainConfig.block_fpr, 0.015)
    training.reevaluate(path.name, registry_path=reg, data_dir=tiny_corpus, block_fpr=0.05, uncertain_share=0.2)
    wider = json.loads((reg / path.name / registry.MANIFEST).read_text())["thresholds"]
    assert (wider["block_fpr"], wider["uncertain_share"]) == (0.05, 0.2)
    assert wider["block"] <= kept["block"] and wider["allow"] <= kept["allow"]  # a bigger budget blocks more


def test_a_second_version_with_the_same_name_is_refused(trained, tiny_corpus):
    root, _ = trained
    with pytest.raises(registry.RegistryError, match="already exists"):
        training.train(training.TrainConfig(name="tiny-charcnn", data_dir=tiny_corpus), registry_path=root)


def test_predict_shape_order_and_any_string(trained):
    root, _ = trained
    model = load(registry=root)
    assert model.version == "tiny-charcnn" and model.arch == "charcnn" and "|" not in model.version
    names = ["google.com", "", None, "  ", ".", "ü" * 500, "a\x00b.com", "xjwqkqzpl.biz", b"bytes.org", "google.com"]
    scores = model.predict(names)
    assert scores.shape == (len(names),) and scores.dtype == np.float64  # calibrated in float64: no ties at 1.0
    assert np.all((scores >= 0) & (scores <= 1))
    assert scores[1] == scores[2] == scores[3] == scores[4] == 0.0
    assert scores[0] == scores[-1]
    alone = [model.predict([n])[0] for n in names]
    np.testing.assert_allclose(scores, alone, atol=1e-6)  # batching and padding trims change nothing
    assert model.predict([]).shape == (0,)


def test_large_inputs_are_chunked_in_order(trained):
    root, _ = trained
    model = load(registry=root)
    names = [f"{'x' * (i % 50)}host{i}.example.com" for i in range(9000)]
    big = model.predict(names)
    np.testing.assert_allclose(big[:50], model.predict(names[:50]), atol=1e-6)
    np.testing.assert_allclose(big[-7:], model.predict(names[-7:]), atol=1e-6)


def test_thresholds_labels_family_and_explanation(trained):
    root, _ = trained
    model = load("tiny-charcnn", registry=root)
    t = model.thresholds
    assert t["block"] == t.block and 0 <= t.allow <= t.block
    assert t.label(t.block) == "malicious" and t.label(t.allow) == "benign"
    fams = model.predict_family(["xjwqkqzpl.biz", "", "google.com"])
    assert len(fams) == 3 and fams[1] == (None, 0.0)
    for fam, p in fams:
        assert fam is None or fam in model.families
        assert 0.0 <= p <= 1.0
    text = model.explain("paypal-verify-account.weebly.com")
    assert text.startswith("score ") and model.version in text
    assert "nothing to judge" in model.explain("")


def test_cli_score_and_evaluate(trained, tmp_path, monkeypatch):
    root, path = trained
    monkeypatch.setenv("DNSENTINEL_MODEL__REGISTRY_DIR", str(root))
    from dnsentinel.settings import get_settings

    get_settings.cache_clear()
    try:
        from dnsentinel.cli.main import app

        runner = CliRunner()
        result = runner.invoke(app, ["score", "google.com", "xjwqkqzpl.biz"])
        assert result.exit_code == 0, result.output
        assert "tiny-charcnn" in result.output and "google.com" in result.output
        names = tmp_path / "names.txt"
        names.write_text("google.com\nxjwqkqzpl.biz\n\n")
        out = tmp_path / "scores.jsonl"
        result = runner.invoke(app, ["score", "--input", str(names), "--output", str(out)])
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert [r["domain"] for r in rows] == ["google.com", "xjwqkqzpl.biz"]
        assert all(r["label"] in {"malicious", "uncertain", "benign"} and r["model"] == "tiny-charcnn" for r in rows)
        names.write_text("_airplay._tcp.local\nnas.lan\nxjwqkqzpl.biz\n")
        out = tmp_path / "scores.csv"
        result = runner.invoke(app, ["score", "--input", str(names), "--output", str(out)])
        assert result.exit_code == 0, result.output
        rows = list(csv.DictReader(out.open()))
        assert list(rows[0])[:4] == ["domain", "score", "label", "reason"]
        assert [(r["label"], r["reason"]) for r in rows[:2]] == [
            ("unscored", "unscored:service"), ("unscored", "unscored:special_use")]
        assert rows[2]["reason"] in {"model", "prior"}
        labelled = tmp_path / "labelled.csv"
        labelled.write_text("domain,label\ngoogle.com,0\nxjwqkqzpl.biz,1\nwikipedia.org,0\nqzxkvbnmwp.info,1\n")
        result = runner.invoke(app, ["evaluate", "tiny-charcnn", "--data", str(labelled)])
        assert result.exit_code == 0, result.output
        assert "ROC AUC" in result.output
        result = runner.invoke(app, ["models", "list", "--json"])
        assert result.exit_code == 0, result.output
        assert [r["version"] for r in json.loads(result.output) if r["current"]] == ["tiny-charcnn"]
    finally:
        get_settings.cache_clear()


def test_mlbridge_baseline_loads_and_scores_any_string(tmp_path):
    """The baseline is servable through the same API (weights from an untrained build suffice here)."""
    from dnsentinel.models import architectures

    path = tmp_path / "mlb"
    path.mkdir()
    net = architectures.build("mlbridge-cnn", {}, compile=False)
    net.save_weights(path / registry.WEIGHTS)
    registry.write_json(
        path / registry.MANIFEST,
        {"version": "mlb", "arch": "mlbridge-cnn", "params": {}, "thresholds": {"block": 0.5, "allow": 0.5}},
    )
    model = load(str(path))
    scores = model.predict(["google.com", "", "ü" * 400, None])
    assert scores.shape == (4,) and scores[1] == scores[3] == 0.0
    assert model.predict_family(["google.com"]) == [(None, 0.0)]
    assert model.thresholds.label(0.5) == "malicious"


def test_unknown_architecture_is_a_clear_error():
    from dnsentinel.models import architectures

    with pytest.raises(architectures.UnknownArchitecture, match="charcnn"):
        architectures.get("lstm9000")


def test_export_savedmodel_scores_like_the_model(trained, tmp_path):
    import tensorflow as tf

    from dnsentinel.models import encoding

    root, _ = trained
    model = load(registry=root)
    out = serving.export("tiny-charcnn", tmp_path / "saved", registry=root)
    exported = tf.saved_model.load(str(out))
    x = encoding.encode(["google.com", "xjwqkqzpl.biz"], 64, 5)
    scores = exported.signatures["serving_default"](tf.constant(x))["output_0"].numpy()
    np.testing.assert_allclose(scores, model.predict(["google.com", "xjwqkqzpl.biz"]), atol=1e-5)


def test_export_onnx_scores_like_the_model(trained, tmp_path):
    from dnsentinel.models import encoding

    root, _ = trained
    model = load(registry=root)
    out = serving.export("tiny-charcnn", tmp_path / "m.onnx", onnx=True, registry=root)
    assert out == tmp_path / "m.onnx" and out.stat().st_size > 0
    session = serving.onnx_session(out)
    names = ["google.com", "xjwqkqzpl.biz", "mail.example.co.uk", "a" * 60 + ".info"]
    x = encoding.encode(names, 64, 5)
    scores = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(scores, model.predict(names), atol=1e-5)


def test_onnx_backend_and_mixed_precision_keep_the_scores(trained):
    """The worker's options on the CPU: the same placement settings a GPU run reads."""
    from dnsentinel.models import device
    from dnsentinel.settings import ScoringSettings

    root, _ = trained
    names = ["google.com", "xjwqkqzpl.biz", "mail.example.co.uk", "", "q.xyz"]
    reference = load(registry=root).predict(names)
    onnx = load(registry=root, placement=device.placement(ScoringSettings(backend="onnx", batch_size=2), "cpu"))
    assert onnx.backend == "onnx" and onnx.chunk == 2
    np.testing.assert_allclose(onnx.predict(names), reference, atol=1e-5)
    tf_families = load(registry=root).predict_family(names)
    for (fam, p), (want, want_p) in zip(onnx.predict_family(names), tf_families):
        assert fam == want and abs(p - want_p) < 1e-5
    mixed = load(registry=root, placement=device.placement(ScoringSettings(mixed_precision="on"), "cpu"))
    assert mixed.precision == "mixed_float16" and mixed.precision_gap <= 1e-3
    np.testing.assert_allclose(mixed.predict(names), reference, atol=1e-3)
    strict = load(registry=root, placement=device.placement(
        ScoringSettings(mixed_precision="on", mixed_precision_tolerance=1e-9), "gpu"))
    assert strict.precision == "mixed_float16"  # "on" forces it; "auto" would have fallen back to float32


def test_every_shipped_version_loads_as_it_was_trained():
    # Older manifests lack the parameters of later features (split heads, label positions);
    # serving must rebuild each one as trained, and the weights must fit.
    for entry in registry.list_models():
        model = load(entry["version"])
        scores = model.predict(["google.com", "xjwqkqzpl.biz"])
        assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1)), entry["version"]
