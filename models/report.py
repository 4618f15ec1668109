"""Markdown tables comparing registry versions slice by slice (used for docs/MODEL.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dnsentinel.models import registry


def _f(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _slices(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Test-split slices plus the held-out families, keyed by a readable name."""
    splits = report["splits"]
    out = {"test: all": splits["test"]["overall"]}
    for kind, s in splits["test"]["slices"].items():
        out[f"test: {kind}"] = s
    if "unseen_families" in splits:
        out["held-out DGA families"] = splits["unseen_families"]["overall"]
    return out


def compare_markdown(versions: list[str], registry_path: Path | str | None = None) -> str:
    """One table row per (slice, model): AUC, TPR at FPR 1e-3 / 1e-4, recall and FPR at block."""
    reports = []
    for version in versions:
        path = registry.resolve(version, registry_path)
        reports.append((registry.read_json(path / registry.MANIFEST), registry.read_json(path / registry.METRICS)))
    lines = [
        "| slice | model | positives | benign | ROC AUC | TPR @ FPR 1e-3 | TPR @ FPR 1e-4 | recall @ block | FPR @ block |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    archs = [m["arch"] for m, _ in reports]
    label = {m["version"]: m["arch"] if archs.count(m["arch"]) == 1 else m["version"] for m, _ in reports}
    names = list(_slices(reports[0][1]))
    for slice_name in names:
        for manifest, report in reports:
            s = _slices(report).get(slice_name)
            if s is None:
                continue
            lines.append(
                f"| {slice_name} | {label[manifest['version']]} | {s['n_pos']:,} | {s['n_neg']:,} | {_f(s['roc_auc'], 5)} "
                f"| {_f(s['tpr_at_fpr_1e-3'])} | {_f(s['tpr_at_fpr_1e-4'])} | {_f(s['at_block']['recall'])} "
                f"| {_f(s['at_block']['fpr'], 5)} |"
            )
    return "\n".join(lines)


def family_markdown(version: str, registry_path: Path | str | None = None) -> str:
    """Recall per DGA family at the block threshold (test split, then held-out families)."""
    path = registry.resolve(version, registry_path)
    report = registry.read_json(path / registry.METRICS)
    lines = ["| family | split | n | recall @ block | recall @ 0.5 |", "|---|---|---:|---:|---:|"]
    for split in ("test", "unseen_families"):
        for fam, r in sorted(report["splits"].get(split, {}).get("recall_per_family", {}).items()):
            lines.append(f"| {fam} | {split} | {r['n']:,} | {r['recall_at_block']:.4f} | {r['recall_at_0.5']:.4f} |")
    return "\n".join(lines)
