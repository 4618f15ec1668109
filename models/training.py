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

VAL_MONITOR_MAX = 40_000
"""Validation rows Keras evaluates after each epoch (thresholds use the whole split)."""


@dataclass
class TrainConfig:
    arch: str = architectures.DEFAULT_ARCH
    epochs: int = 6
    batch_size: int = 256
    sample_size: int = 400_000
    include_vetted: bool = False
    name: str | None = None
    seed: int = dataset.DEFAULT_SEED
    holdout: tuple[str, ...] = dataset.DEFAULT_HOLDOUT
    patience: int = 2
    data_dir: Path | None = None
    block_fpr: float = 1e-4
    allow_fnr: float = 0.05
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


def _targets(frame: pd.DataFrame, families: list[str], with_family: bool, split_heads: bool) -> dict[str, np.ndarray]:
    targets = {"malicious": frame["label"].to_numpy(np.float32).reshape(-1, 1)}
    if split_heads:
        targets.update(dataset.head_targets(frame))
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
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    log("loading and splitting the corpus")
    frame = dataset.load_corpus(config.data_dir)
    extra_names: list[str] = []
    if config.include_vetted:
        vetted = dataset.vetted_labels()
        log(f"adding {len(vetted)} vetted labels from the verdict cache")
        frame = frame[~frame["domain"].isin(set(vetted["domain"]))]  # the analyst's word wins
        frame = pd.concat([frame, vetted], ignore_index=True)
        extra_names = [f"{d}={lbl}" for d, lbl in zip(vetted["domain"], vetted["label"], strict=True)]
    splits = dataset.split(frame, seed=config.seed, holdout=config.holdout)
    splits.data_hash = dataset.data_hash(config.data_dir, extra_names)
    sample = dataset.balanced_sample(splits.train, config.sample_size, seed=config.seed)
    families = splits.families if spec.has_family_head else []
    params = {**spec.defaults, **config.params}
    model = architectures.build(config.arch, params, families)
    with_family = bool(families)
    split_heads = params.get("heads") == "split"

    x_train = architectures.encode_for(config.arch, sample["domain"].tolist(), params)
    monitor = splits.val.sample(n=min(len(splits.val), VAL_MONITOR_MAX), random_state=config.seed)
    x_val = architectures.encode_for(config.arch, monitor["domain"].tolist(), params)
    train_ds = dataset.tf_dataset(
        x_train, _targets(sample, families, with_family, split_heads), config.batch_size, True, config.seed
    )
    val_ds = dataset.tf_dataset(x_val, _targets(monitor, families, with_family, split_heads), 2048, False, config.seed)
    steps = int(np.ceil(len(x_train) / config.batch_size))
    # Cosine decay over the epochs asked for: validation loss on this corpus is noisy from epoch
    # to epoch, and plateau-triggered cuts fired early on noise; a fixed schedule trained better.
    schedule = keras.optimizers.schedules.CosineDecay(params["learning_rate"], steps * config.epochs)
    model.optimizer.learning_rate = schedule
    devices = [d.name for d in tf.config.list_logical_devices()]
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
    epochs_run = len(history.history.get("loss", []))
    # Save from an uncompiled twin: the file then holds no optimizer state (smaller, loads quietly).
    twin = architectures.build(config.arch, params, families, compile=False)
    twin.set_weights(model.get_weights())
    twin.save_weights(path / registry.WEIGHTS)
    train_seconds = time.monotonic() - started

    manifest = {
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
            "seconds": round(train_seconds, 1),
            "devices": devices,
            "tensorflow": tf.__version__,
            "python": platform.python_version(),
        },
    }
    registry.write_json(path / registry.MANIFEST, manifest)
    log("scoring train / validation / test / held-out families")
    from dnsentinel.models.serving import Model

    _evaluate_into(path, manifest, splits, sample, config)
    _status(path, state="done", progress=1.0, finished=_now(), seconds=round(time.monotonic() - started, 1))
    if config.promote == "always" or (config.promote == "if-none" and registry.current_version(root) is None):
        registry.promote(version, root)
    return path


def _evaluate_into(path: Path, manifest: dict[str, Any], splits, sample: pd.DataFrame, config: TrainConfig) -> None:
    """Score every split, choose the thresholds on validation, write metrics.json and the manifest."""
    from dnsentinel.models.serving import Model

    served = Model(path)
    scored = {name: _scored(served, part) for name, part in {**splits.as_dict(), "train": sample}.items()}
    val = scored["val"]
    thresholds = metrics.choose_thresholds(val["label"], val["score"], config.block_fpr, config.allow_fnr)
    report = evaluate_splits(scored, thresholds)
    report["version"], report["arch"] = manifest["version"], manifest["arch"]
    registry.write_json(path / registry.METRICS, report)
    manifest["thresholds"] = thresholds
    manifest["summary"] = summarize(report)
    registry.write_json(path / registry.MANIFEST, manifest)


def reevaluate(version: str, registry_path: Path | str | None = None, data_dir: Path | None = None) -> Path:
    """Evaluate a trained version again on the splits it was trained with (e.g. after the report grew).

    The splits and the training sample are rebuilt from the manifest's seed,
    held-out families and sample size; a corpus whose hash differs from the
    one the model was trained on is refused, since the splits would differ.
    Models trained with vetted labels or another sample mix are refused too.
    """
    path = registry.resolve(version, registry_path)
    manifest = registry.read_json(path / registry.MANIFEST)
    training = manifest.get("training", {})
    if training.get("include_vetted"):
        raise registry.RegistryError(f"{manifest['version']}: trained with vetted labels; its splits cannot be rebuilt")
    if dataset.data_hash(data_dir) != manifest.get("data_hash"):
        raise registry.RegistryError(f"{manifest['version']}: the corpus differs from the one it was trained on")
    config = TrainConfig(
        arch=manifest["arch"],
        seed=training.get("seed", dataset.DEFAULT_SEED),
        holdout=tuple(training.get("holdout_families", dataset.DEFAULT_HOLDOUT)),
        sample_size=training.get("sample_size", TrainConfig.sample_size),
        data_dir=data_dir,
    )
    splits = dataset.split(dataset.load_corpus(data_dir), seed=config.seed, holdout=config.holdout)
    sample = dataset.balanced_sample(splits.train, config.sample_size, seed=config.seed)
    if sample["kind"].value_counts().to_dict() != training.get("sample_mix"):
        raise registry.RegistryError(
            f"{manifest['version']}: its training sample cannot be rebuilt (trained with another mix of kinds)"
        )
    _evaluate_into(path, manifest, splits, sample, config)
    return path


def _scored(model, frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[["domain", "label", "kind", "family"]].copy()
    names = out["domain"].tolist()
    if not len(out):
        out["score"] = np.zeros(0, np.float32)
    elif getattr(model, "has_heads", False):
        # One pass for both: predict() is the maximum of the two heads (a test holds them equal).
        heads = model.predict_heads(names)
        out["score"], out["dga_head"] = np.maximum(heads["dga"], heads["other"]), heads["dga"]
    else:
        out["score"] = model.predict(names)
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
    """``dnsentinel evaluate``: score a labelled CSV with a loaded model, report at its thresholds."""
    frame = dataset.read_labelled(Path(path))
    scored = _scored(model, frame)
    thresholds = {"block": model.thresholds.block, "allow": model.thresholds.allow}
    report = evaluate_frame(scored, thresholds)
    report["version"], report["arch"], report["data"] = model.version, model.arch, str(path)
    return report


def tf_log_quiet() -> None:
    """Silence TensorFlow's C++ start-up chatter unless the user asked for it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
