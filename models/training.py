"""Training a model into a new registry version, and evaluating models on labelled data.

The loop itself is Keras ``fit`` with callbacks: early stopping, a live
history writer (``history.jsonl`` + ``status.json`` for the dashboard's
curves of a background job) and an optional progress reporter.
"""

from __future__ import annotations

import json
import os
import platform
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dnsentinel.models import architectures, dataset, metrics, registry
from dnsentinel.models import prior as prior_mod
from dnsentinel.models.serving import Calibration, Thresholds

VAL_MONITOR_MAX = 40_000
"""Validation rows Keras evaluates after each epoch (thresholds use the whole split)."""


@dataclass
class TrainConfig:
    arch: str = architectures.DEFAULT_ARCH
    epochs: int = 8
    batch_size: int = 512
    sample_size: int = 560_000
    include_vetted: bool = False
    name: str | None = None
    seed: int = dataset.DEFAULT_SEED
    holdout: tuple[str, ...] = dataset.DEFAULT_HOLDOUT
    cross_source: bool = True
    """Train, calibrate and report with the other ranking's benign names (see dataset.split)."""
    synthetic_fqdn: int = 40_000
    synthetic_tld: int = 30_000
    patience: int = 2
    data_dir: Path | None = None
    block_fpr: float = 5e-4
    """Share of the calibration part's benign names allowed at or above ``block``."""
    uncertain_share: float = 0.015
    """Share of them allowed between ``allow`` and ``block`` (the vetting queue)."""
    params: dict[str, Any] = field(default_factory=dict)
    promote: str = "if-none"
    """"always", "never", or "if-none" (promote when the registry has no current model)."""


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _status(path: Path, **fields: Any) -> None:
    previous = registry._maybe_json(path / registry.STATUS) or {}
    previous.update(fields, updated=_now())
    registry.write_json(path / registry.STATUS, previous)


def _callbacks(
    path: Path, epochs: int, steps: int, patience: int, on_batch: Callable[[int, int, int], None] | None
):
    import keras

    class LiveHistory(keras.callbacks.Callback):
        """Appends one JSON line per epoch and keeps status.json's progress current."""

        def __init__(self) -> None:
            super().__init__()
            self._epoch = 0
            self._last_write = 0.0

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._epoch = epoch

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if on_batch is not None:
                on_batch(self._epoch, batch + 1, steps)
            now = time.monotonic()
            if now - self._last_write > 2.0:
                self._last_write = now
                done = (self._epoch + (batch + 1) / steps) / epochs
                _status(path, epoch=self._epoch + 1, batch=batch + 1, steps=steps, progress=round(done, 4))

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = {k: float(v) for k, v in (logs or {}).items()}
            row = {
                "epoch": epoch + 1,
                "ts": _now(),
                "loss": logs.get("malicious_loss", logs.get("loss")),
                "accuracy": logs.get("malicious_accuracy", logs.get("accuracy")),
                "val_loss": logs.get("val_malicious_loss", logs.get("val_loss")),
                "val_accuracy": logs.get("val_malicious_accuracy", logs.get("val_accuracy")),
                "logs": logs,
            }
            with open(path / registry.HISTORY, "a") as handle:
                handle.write(json.dumps(row) + "\n")
            _status(path, epoch=epoch + 1, progress=round((epoch + 1) / epochs, 4))

    return [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True, verbose=0),
        LiveHistory(),
    ]


def _targets(
    frame: pd.DataFrame, families: list[str], with_family: bool, split_heads: bool, word_families: list[str]
) -> dict[str, np.ndarray]:
    targets = {"malicious": frame["label"].to_numpy(np.float32).reshape(-1, 1)}
    if split_heads:
        targets.update(dataset.head_targets(frame, word_families))
    if with_family:
        targets["family"] = dataset.family_targets(frame, families)
    return targets


def train(
    config: TrainConfig,
    registry_path: Path | str | None = None,
    on_batch: Callable[[int, int, int], None] | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> Path:
    """Train ``config`` into a new version directory of the registry; returns that directory.

    The directory exists (with ``status.json`` "running") from the first
    second, so a dashboard can follow the job; on failure the status says
    "failed" with the error, and the exception propagates.
    """
    spec = architectures.get(config.arch)
    root = registry.registry_dir(registry_path)
    version = registry.new_version_name(config.arch, config.name)
    path = root / version
    if path.exists():
        raise registry.RegistryError(f"model {version!r} already exists in {root}; pass another --name")
    path.mkdir(parents=True)
    started = time.monotonic()
    _status(path, state="running", version=version, arch=config.arch, started=_now(), epochs=config.epochs)
    try:
        return _train(config, spec, root, path, version, started, on_batch, log)
    except BaseException as exc:
        _status(path, state="failed", error=f"{type(exc).__name__}: {exc}", trace=traceback.format_exc()[-2000:])
        raise


def _train(config, spec, root, path, version, started, on_batch, log) -> Path:
    import keras

    keras.utils.set_random_seed(config.seed)
    splits, files = _load_splits(config, log)
    sample = training_sample(splits, config)
    families = splits.families if spec.has_family_head else []
    params = {**spec.defaults, **config.params}
    epochs_run, devices = _fit(config, params, families, splits, sample, path, on_batch, log)
    manifest = _manifest(config, params, families, splits, sample, files, version,
                         epochs_run, devices, time.monotonic() - started)
    registry.write_json(path / registry.MANIFEST, manifest)
    log("scoring train / validation / test / held-out families")
    _evaluate_into(path, manifest, splits, sample, config)
    _status(path, state="done", progress=1.0, finished=_now(), seconds=round(time.monotonic() - started, 1))
    if config.promote == "always" or (config.promote == "if-none" and registry.current_version(root) is None):
        from dnsentinel.models import gate

        gate.promote(version, root)  # "always" still stops at the quality gate (promote --force overrides)
    return path


def _load_splits(config: TrainConfig, log: Callable[[str], None]) -> tuple[dataset.Splits, list[str]]:
    """The corpus (plus the analysts' vetted labels when asked), split by family and source."""
    log("loading and splitting the corpus")
    frame = dataset.load_corpus(config.data_dir, cross_source=config.cross_source)
    files = dataset.corpus_files(config.cross_source)
    extra_names: list[str] = []
    if config.include_vetted:
        vetted = dataset.vetted_labels()
        log(f"adding {len(vetted)} vetted labels from the verdict cache")
        frame = frame[~frame["domain"].isin(set(vetted["domain"]))]  # the analyst's word wins
        frame = pd.concat([frame, vetted], ignore_index=True)
        extra_names = [f"{d}={lbl}" for d, lbl in zip(vetted["domain"], vetted["label"], strict=True)]
    splits = dataset.split(frame, seed=config.seed, holdout=config.holdout)
    splits.data_hash = dataset.data_hash(config.data_dir, extra_names, files)
    return splits, list(files)


def _fit(config, params, families, splits, sample, path, on_batch, log) -> tuple[int, list[str]]:
    """Build and train the network, save its weights; returns the epochs run and the devices used."""
    import keras
    import tensorflow as tf

    from dnsentinel.models import device

    placement = device.configure()  # scoring.device / memory growth, before TensorFlow touches a device
    # float16 training only when asked for ("on"): whether it keeps the scores within the tolerance
    # cannot be known without the float32 run it would replace (serving checks its own choice at load).
    policy = keras.config.dtype_policy()
    if placement.forced:
        keras.config.set_dtype_policy("mixed_float16")
    try:
        model = architectures.build(config.arch, params, families)
    finally:
        keras.config.set_dtype_policy(policy)
    heads = (bool(families), params.get("heads") == "split", list(params.get("word_families", [])))
    x_train = architectures.encode_for(config.arch, sample["domain"].tolist(), params)
    monitor = splits.val.sample(n=min(len(splits.val), VAL_MONITOR_MAX), random_state=config.seed)
    x_val = architectures.encode_for(config.arch, monitor["domain"].tolist(), params)
    train_ds = dataset.tf_dataset(x_train, _targets(sample, families, *heads), config.batch_size, True, config.seed)
    val_ds = dataset.tf_dataset(x_val, _targets(monitor, families, *heads), 2048, False, config.seed)
    steps = int(np.ceil(len(x_train) / config.batch_size))
    # Cosine decay over the epochs asked for: validation loss on this corpus is noisy from epoch
    # to epoch, and plateau-triggered cuts fired early on noise; a fixed schedule trained better.
    model.optimizer.learning_rate = keras.optimizers.schedules.CosineDecay(params["learning_rate"], steps * config.epochs)
    devices = [d.name for d in tf.config.list_logical_devices()] + (["mixed_float16"] if placement.forced else [])
    log(f"training {config.arch} on {len(sample)} names ({steps} steps/epoch) on {', '.join(devices)}")
    _status(path, sample_size=len(sample), steps=steps, devices=devices)
    history = model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=config.epochs,
        verbose=0,
        shuffle=False,  # the tf.data pipeline shuffles
        callbacks=_callbacks(path, config.epochs, steps, config.patience, on_batch),
    )
    # Save from an uncompiled twin: the file then holds no optimizer state (smaller, loads quietly).
    twin = architectures.build(config.arch, params, families, compile=False)
    twin.set_weights(model.get_weights())
    twin.save_weights(path / registry.WEIGHTS)
    return len(history.history.get("loss", [])), devices


def _manifest(config, params, families, splits, sample, files, version, epochs_run, devices, seconds) -> dict:
    """What the registry records of a run: enough to rebuild the network and to reproduce the run."""
    import tensorflow as tf

    return {
        "version": version,
        "arch": config.arch,
        "params": params,
        "families": families,
        "thresholds": {"block": 0.5, "allow": 0.5},
        "data_hash": splits.data_hash,
        "created": _now(),
        "training": {
            "epochs_requested": config.epochs,
            "epochs_run": epochs_run,
            "batch_size": config.batch_size,
            "sample_size": config.sample_size,
            "sample_rows": len(sample),
            "sample_mix": sample["kind"].value_counts().to_dict(),
            "include_vetted": config.include_vetted,
            "seed": config.seed,
            "holdout_families": list(config.holdout),
            "corpus_files": list(files),
            "synthetic": {"fqdn": config.synthetic_fqdn, "tld": config.synthetic_tld},
            "seconds": round(seconds, 1),
            "devices": devices,
            "tensorflow": tf.__version__,
            "python": platform.python_version(),
        },
    }


def training_sample(splits, config: TrainConfig) -> pd.DataFrame:
    """The balanced sample a run trains on: the training split plus synthetic benign names."""
    synthetic = dataset.synthesize_benign(splits.train, config.synthetic_fqdn, config.synthetic_tld, config.seed)
    pool = pd.concat([splits.train, synthetic], ignore_index=True)
    return dataset.balanced_sample(pool, config.sample_size, seed=config.seed)


def _evaluate_into(
    path: Path,
    manifest: dict[str, Any],
    splits,
    sample: pd.DataFrame,
    config: TrainConfig,
    external: dict[str, pd.DataFrame] | None = None,
) -> None:
    """Build the prior, calibrate, choose the thresholds, then write metrics.json and the manifest.

    Calibration data never overlaps what is reported: the Platt map is fitted on the
    other ranking's calibration part against validation malicious names, and the
    thresholds come from an analyst budget on the benign names of that calibration part
    the model has to judge (the prior vouches for none of them by construction).
    """
    from dnsentinel.models.detector import Detector
    from dnsentinel.models.serving import Model

    corpus_benign = pd.concat([splits.train, splits.val, splits.test])
    corpus_benign = corpus_benign[(corpus_benign["label"] == 0) & (corpus_benign["origin"] == "corpus")]
    popularity = prior_mod.build(
        corpus_benign["domain"], splits.train.loc[splits.train["label"] == 1, "domain"], list(PRIOR_SOURCES)
    )
    popularity.save(path)
    calibration_benign = splits.cal if len(splits.cal) else splits.val[splits.val["label"] == 0]
    fit_frame = pd.concat([calibration_benign, splits.val[splits.val["label"] == 1]], ignore_index=True)
    manifest["calibration"], manifest["thresholds"] = calibrate(Model(path), fit_frame, manifest, config)
    registry.write_json(path / registry.MANIFEST, manifest)

    served = Model(path)
    scored = {name: _scored(served, part) for name, part in {**splits.as_dict(), "train": sample}.items()}
    report = evaluate_splits(scored, manifest["thresholds"])
    report["cross_source"] = cross_source_report(scored)
    report["family_top1"] = family_top1(served, splits.test)
    report["operating_points"] = operating_points(Detector(served, popularity), splits, external or {})
    report["prior"] = popularity.info
    report["version"], report["arch"] = manifest["version"], manifest["arch"]
    registry.write_json(path / registry.METRICS, report)
    manifest["summary"] = summarize(report)
    registry.write_json(path / registry.MANIFEST, manifest)


def family_top1(model, test: pd.DataFrame) -> dict[str, Any]:
    """Share of test DGA names whose family guess is their family (no guess counts as wrong)."""
    dga = test[test["kind"] == "dga"]
    if not len(dga) or not getattr(model, "has_family", False):
        return {"n": len(dga), "accuracy": None}
    guesses = [family for family, _ in model.predict_family(dga["domain"].tolist())]
    return {"n": len(dga), "accuracy": float(np.mean(np.array(guesses, dtype=object) == dga["family"].to_numpy()))}


def calibrate(model, fit_frame: pd.DataFrame, manifest: dict[str, Any], config: TrainConfig):
    """Platt maps and budget thresholds from names no training saw: ``(calibration, thresholds)``.

    The blocking logit is fitted on all malicious validation names against the calibration
    benign names; a ``words`` head on the dictionary-DGA names only. ``block`` lets the budget's
    share of benign names through on the blocking score alone (the words head never blocks);
    ``allow`` is chosen on the combined score, whose words part is capped below ``block``.
    """
    logits, _ = model.predict_logits(fit_frame["domain"].tolist())
    labels = fit_frame["label"].to_numpy()
    benign = labels == 0
    platt = metrics.fit_platt(logits[:, 0], labels)
    calibration: dict[str, Any] = {"platt": platt, "fitted_on": fit_frame["kind"].value_counts().to_dict()}
    block_scores = Calibration(**platt)(logits[benign, 0])
    thresholds = metrics.thresholds_from_budget(block_scores, config.block_fpr, config.uncertain_share)
    words = manifest["params"].get("word_families") or []
    if logits.shape[1] > 1 and words:
        rows = benign | fit_frame["family"].isin(words).to_numpy()
        calibration["words"] = metrics.fit_platt(logits[rows, 1], labels[rows])
        model.calibration, model.words_calibration = Calibration(**platt), Calibration(**calibration["words"])
        model.thresholds = Thresholds(block=thresholds["block"], allow=thresholds["allow"])
        combined = model.combine(logits[benign])
        budget = metrics.thresholds_from_budget(combined, config.block_fpr, config.uncertain_share)
        thresholds["allow"] = budget["allow"]
    return calibration, thresholds


PRIOR_SOURCES = ("tranco_2026", "umbrella_2026", "majestic_2026")
"""The rankings of benign.csv.xz, whose registrable domains the prior vouches for."""


def cross_source_report(scored: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Ranking metrics of each malicious slice against the other ranking's report part (never trained on)."""
    benign = scored.get("cross_source")
    if benign is None or not len(benign):
        return {}
    out: dict[str, Any] = {}
    sources = {"dga": scored["test"], "phishing": scored["test"], "malware": scored["test"]}
    if len(scored.get("unseen_families", [])):
        sources["unseen_families"] = scored["unseen_families"]
    for kind, frame in sources.items():
        positives = frame[frame["label"] == 1]
        if kind != "unseen_families":
            positives = positives[positives["kind"] == kind]
        if not len(positives):
            continue
        labels = np.r_[np.zeros(len(benign), bool), np.ones(len(positives), bool)]
        scores = np.r_[benign["score"].to_numpy(), positives["score"].to_numpy()]
        out[kind] = {
            "n_pos": len(positives),
            "n_neg": len(benign),
            "roc_auc": metrics.roc_auc(labels, scores),
            "tpr_at_fpr_1e-3": metrics.tpr_at_fpr(labels, scores, 1e-3),
            "tpr_at_fpr_1e-4": metrics.tpr_at_fpr(labels, scores, 1e-4),
        }
    return out


def operating_points(detector, splits, external: dict[str, pd.DataFrame]) -> dict[str, dict[str, Any]]:
    """What the product decides per slice: shares labelled malicious / uncertain / benign / unscored."""
    slices: dict[str, pd.DataFrame] = {
        "benign, other ranking (report part)": splits.report,
        "benign, other ranking (calibration part)": splits.cal,
        "benign, corpus rankings (test)": splits.test[splits.test["label"] == 0],
        "DGA, trained families (test)": splits.test[splits.test["kind"] == "dga"],
        "DGA, held-out families": splits.unseen,
        "phishing (test)": splits.test[splits.test["kind"] == "phishing"],
        "malware (test)": splits.test[splits.test["kind"] == "malware"],
    }
    for name, frame in external.items():
        for kind, part in frame.groupby("kind"):
            slices[f"{name}: {kind}"] = part
    out = {}
    for name, frame in slices.items():
        if not len(frame):
            continue
        decided = detector.decide(frame["domain"].tolist())
        out[name] = {"n": len(frame), **metrics.decision_shares(decided.labels)}
    return out


def reevaluate(
    version: str,
    registry_path: Path | str | None = None,
    data_dir: Path | None = None,
    external: list[Path] | None = None,
    block_fpr: float | None = None,
    uncertain_share: float | None = None,
) -> Path:
    """Evaluate a trained version again on the splits it was trained with (e.g. after the report grew).

    The splits and the training sample are rebuilt from the manifest's seed,
    held-out families, corpus files and sample size; a corpus whose hash differs from the
    one the model was trained on is refused, since the splits would differ.
    Models trained with vetted labels or another sample mix are refused too. The
    prior, calibration and thresholds are rebuilt as well, at the version's own budget unless
    ``block_fpr`` / ``uncertain_share`` give another. ``external`` labelled files
    (``dnsentinel evaluate`` layout) get their own rows in the operating-point table.
    """
    path = registry.resolve(version, registry_path)
    manifest = registry.read_json(path / registry.MANIFEST)
    training = manifest.get("training", {})
    if training.get("include_vetted"):
        raise registry.RegistryError(f"{manifest['version']}: trained with vetted labels; its splits cannot be rebuilt")
    files = tuple(training.get("corpus_files", dataset.CORPUS_FILES))
    if dataset.data_hash(data_dir, files=files) != manifest.get("data_hash"):
        raise registry.RegistryError(f"{manifest['version']}: the corpus differs from the one it was trained on")
    synthetic = training.get("synthetic", {"fqdn": 0, "tld": 0})
    budget = manifest.get("thresholds", {})  # the version's own budget unless another is asked for
    config = TrainConfig(
        arch=manifest["arch"],
        seed=training.get("seed", dataset.DEFAULT_SEED),
        holdout=tuple(training.get("holdout_families", dataset.DEFAULT_HOLDOUT)),
        sample_size=training.get("sample_size", TrainConfig.sample_size),
        data_dir=data_dir,
        cross_source=dataset.CROSS_SOURCE_FILE in files,
        synthetic_fqdn=synthetic["fqdn"],
        synthetic_tld=synthetic["tld"],
        block_fpr=budget.get("block_fpr", TrainConfig.block_fpr) if block_fpr is None else block_fpr,
        uncertain_share=budget.get("uncertain_share", TrainConfig.uncertain_share)
        if uncertain_share is None
        else uncertain_share,
    )
    frame = dataset.load_corpus(data_dir, cross_source=config.cross_source)
    splits = dataset.split(frame, seed=config.seed, holdout=config.holdout)
    sample = training_sample(splits, config)
    if sample["kind"].value_counts().to_dict() != training.get("sample_mix"):
        raise registry.RegistryError(
            f"{manifest['version']}: its training sample cannot be rebuilt (trained with another mix of kinds)"
        )
    extra = {Path(p).name.split(".")[0]: dataset.read_labelled(Path(p)) for p in external or []}
    _evaluate_into(path, manifest, splits, sample, config, extra)
    return path


def _scored(model, frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.reindex(columns=["domain", "label", "kind", "family"]).copy()
    names = out["domain"].tolist()
    out["score"] = model.predict(names) if len(out) else np.zeros(0, np.float64)
    if len(out) and getattr(model, "has_heads", False):
        out["dga_head"] = model.predict_heads(names)["dga"]
    return out


SLICE_KINDS = ("dga", "phishing", "malware")


def evaluate_frame(scored: pd.DataFrame, thresholds: dict[str, float]) -> dict[str, Any]:
    """The full report for one scored split: overall, per slice (kind vs benign), per family/category."""
    labels = scored["label"].to_numpy().astype(bool)
    scores = scored["score"].to_numpy(np.float64)
    report: dict[str, Any] = {"overall": metrics.slice_report(labels, scores, thresholds)}
    report["overall"]["roc"] = metrics.roc_points(labels, scores)
    benign = ~labels
    slices = {}
    for kind in sorted(set(scored.loc[labels, "kind"])):
        mask = benign | (scored["kind"].to_numpy() == kind)
        slices[kind] = metrics.slice_report(labels[mask], scores[mask], thresholds)
        slices[kind]["roc"] = metrics.roc_points(labels[mask], scores[mask], max_points=100)
        if kind == "dga" and "dga_head" in scored:
            # The DGA detector on its own, before the maximum with the phishing/malware head.
            head = scored["dga_head"].to_numpy(np.float64)[mask]
            slices[kind]["dga_head"] = {
                "roc_auc": metrics.roc_auc(labels[mask], head),
                "tpr_at_fpr_1e-3": metrics.tpr_at_fpr(labels[mask], head, 1e-3),
                "tpr_at_fpr_1e-4": metrics.tpr_at_fpr(labels[mask], head, 1e-4),
            }
    report["slices"] = slices
    per_family = {}
    dga = labels & (scored["kind"].to_numpy() == "dga")
    for fam, group in scored[dga].groupby("family"):
        s = group["score"].to_numpy()
        per_family[fam or "unknown"] = {
            "n": len(group),
            "recall_at_block": float(np.mean(s >= thresholds["block"])),
            "recall_at_0.5": float(np.mean(s >= 0.5)),
        }
    report["recall_per_family"] = per_family
    report["recall_per_category"] = {
        kind: {
            "n": int(np.sum(labels & (scored["kind"].to_numpy() == kind))),
            "recall_at_block": slices[kind]["at_block"]["recall"],
            "recall_at_0.5": slices[kind]["at_0.5"]["recall"],
        }
        for kind in slices
    }
    return report


def evaluate_splits(scored: dict[str, pd.DataFrame], thresholds: dict[str, float]) -> dict[str, Any]:
    """Reports for train / val / test, and the held-out families scored against the test benign names."""
    out: dict[str, Any] = {"thresholds": thresholds, "splits": {}}
    for name in ("train", "val", "test"):
        out["splits"][name] = evaluate_frame(scored[name], thresholds)
    if "unseen_families" in scored and len(scored["unseen_families"]):
        test_benign = scored["test"][scored["test"]["label"] == 0]
        unseen = pd.concat([test_benign, scored["unseen_families"]], ignore_index=True)
        out["splits"]["unseen_families"] = evaluate_frame(unseen, thresholds)
    return out


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """A few headline numbers of the test split (for `models list` and the manifest)."""
    test = report["splits"].get("test", {})
    summary: dict[str, Any] = {}
    if test:
        summary["test_auc"] = test["overall"]["roc_auc"]
        for kind, s in test.get("slices", {}).items():
            summary[f"{kind}_auc"] = s["roc_auc"]
            summary[f"{kind}_tpr@1e-3"] = s["tpr_at_fpr_1e-3"]
            if "dga_head" in s:
                summary["dga_head_auc"] = s["dga_head"]["roc_auc"]
                summary["dga_head_tpr@1e-3"] = s["dga_head"]["tpr_at_fpr_1e-3"]
    unseen = report["splits"].get("unseen_families")
    if unseen:
        summary["unseen_auc"] = unseen["overall"]["roc_auc"]
        summary["unseen_tpr@1e-3"] = unseen["overall"]["tpr_at_fpr_1e-3"]
    return summary


def evaluate_file(model, path: Path) -> dict[str, Any]:
    """``dnsentinel evaluate``: score a labelled CSV with a loaded model, report at its thresholds.

    ``decisions`` adds what the product decides per ``kind`` (the whole offline decision:
    unscored names, the version's prior, thresholds), the numbers a SOC lives with.
    """
    from dnsentinel.models.detector import Detector

    frame = dataset.read_labelled(Path(path))
    scored = _scored(model, frame)
    thresholds = {"block": model.thresholds.block, "allow": model.thresholds.allow}
    report = evaluate_frame(scored, thresholds)
    decided = Detector.of(model).decide(frame["domain"].tolist())
    labels = np.asarray(decided.labels, dtype=object)
    report["decisions"] = {
        str(kind): {"n": int(len(rows)), **metrics.decision_shares(labels[rows])}
        for kind, rows in frame.groupby("kind").indices.items()
    }
    report["version"], report["arch"], report["data"] = model.version, model.arch, str(path)
    return report


def tf_log_quiet() -> None:
    """Silence TensorFlow's C++ start-up chatter unless the user asked for it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
