"""Reading what the trainer leaves in a model directory, tolerant of missing parts.

A model directory may hold a manifest (``model.json``/``manifest.json``),
``metrics.json`` (per split: accuracy, precision, recall, F1, confusion
matrix, ROC points) and ``status.json``. The pages show whatever is there and
say what is not, so a half-trained or foreign model never breaks the page.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from dnsentinel.verdict_cache.vocabulary import TRUTH_CLASSES

SCALARS = ("accuracy", "precision", "recall", "f1", "roc_auc", "tpr_at_fpr_1e-3", "threshold")
_CONFUSION = ("confusion", "confusion_matrix", "cm")


def _read(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def load(model_dir: Path) -> dict[str, Any]:
    """Manifest, metrics and status merged (metrics under ``metrics``)."""
    report: dict[str, Any] = {}
    for name in ("manifest.json", "model.json", "meta.json"):
        report.update(_read(model_dir / name))
    metrics = _read(model_dir / "metrics.json")
    if metrics:
        report["metrics"] = metrics
    status = _read(model_dir / "status.json")
    if status:
        report["status"] = status
        report.setdefault("metrics", status.get("metrics") or {})
    return report


def splits(report: dict[str, Any]) -> dict[str, dict]:
    """Split name -> metrics dict (train/validation/test or whatever the trainer used)."""
    metrics = report.get("metrics") or {}
    if isinstance(metrics.get("splits"), dict):
        metrics = metrics["splits"]
    found = {k: _flatten(v) for k, v in metrics.items() if isinstance(v, dict)}
    return {k: v for k, v in found.items() if any(m in v for m in (*SCALARS, *_CONFUSION))}


def _flatten(split: dict) -> dict:
    """The models trainer nests a split as ``overall.at_block`` (confusion, F1, …) + ``overall.roc``."""
    overall = split.get("overall")
    if not isinstance(overall, dict):
        return split
    flat = dict(overall.get("at_block") or {})
    for key in ("roc_auc", "tpr_at_fpr_1e-3", "roc"):
        if key in overall:
            flat[key] = overall[key]
    return flat


def scalar_table(report: dict[str, Any]) -> pd.DataFrame:
    """Rows = splits, columns = accuracy / precision / recall / F1 (/ AUC)."""
    rows = {split: {m: v.get(m) for m in SCALARS if isinstance(v.get(m), (int, float))}
            for split, v in splits(report).items()}
    return pd.DataFrame.from_dict(rows, orient="index")


def confusion(split_metrics: dict) -> pd.DataFrame | None:
    """A 2x2 (or n x n) confusion matrix as a labelled frame, rows = truth."""
    for key in _CONFUSION:
        cm = split_metrics.get(key)
        if isinstance(cm, dict) and {"tn", "fp", "fn", "tp"} <= cm.keys():
            cm = [[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]]
        if isinstance(cm, list) and cm and all(isinstance(r, list) for r in cm):
            labels = split_metrics.get("labels") or (list(TRUTH_CLASSES) if len(cm) == 2 else list(range(len(cm))))
            return pd.DataFrame(cm, index=[f"true {x}" for x in labels], columns=[f"pred {x}" for x in labels])
    return None


def roc(split_metrics: dict) -> pd.DataFrame | None:
    curve = split_metrics.get("roc") or split_metrics.get("roc_curve")
    if isinstance(curve, dict) and "fpr" in curve and "tpr" in curve:
        return pd.DataFrame({"false positive rate": curve["fpr"], "true positive rate": curve["tpr"]})
    return None


def thresholds(report: dict[str, Any]) -> dict:
    value = report.get("thresholds") or (report.get("metrics") or {}).get("thresholds") or {}
    return value if isinstance(value, dict) else {}


def curves(history: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(loss curves, accuracy curves) in long format from ``history.jsonl`` rows."""
    loss_rows, acc_rows = [], []
    for i, row in enumerate(history):
        epoch = row.get("epoch", i)
        for key, value in row.items():
            if not isinstance(value, (int, float)) or key == "epoch":
                continue
            if "loss" in key:
                loss_rows.append({"epoch": epoch, "series": key, "value": value})
            elif "acc" in key:
                acc_rows.append({"epoch": epoch, "series": key, "value": value})
    return pd.DataFrame(loss_rows, columns=["epoch", "series", "value"]), pd.DataFrame(acc_rows, columns=["epoch", "series", "value"])


def version_of(entry: Any) -> str:
    """The version string of a ``list_models()`` entry (dict, object or plain string)."""
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict):
        return str(entry.get("version") or entry.get("name"))
    return str(getattr(entry, "version", None) or getattr(entry, "name", entry))
