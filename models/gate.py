"""The quality gate: what a model *decides* on a fixed set of names, compared before it goes live.

AUC on a random split said little about the product: a model can rank well and still
send a fifth of benign names to analysts. The gate measures decision shares per slice
(``models/data/gate.csv.xz``: other-ranking benign names from the report part no
training or calibration sees, DGA / phishing / malware names of the corpus test split,
names that are not public DNS names) with the whole offline decision (prior, calibration,
thresholds). ``dnsentinel models promote`` refuses a version that is worse than the
current one on any gate measure by more than :data:`TOLERANCE`, unless ``--force``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dnsentinel.models import metrics, registry
from dnsentinel.verdict_cache.vocabulary import FLAGGED_LABELS

GATE_FILE = Path(__file__).resolve().parent / "data" / "gate.csv.xz"
RESULT = "gate.json"
TOLERANCE = 0.005
"""How much worse (absolute share) a measure may get before promotion is refused."""


@dataclass(frozen=True)
class Measure:
    """One gate number: the share of ``labels`` among the names of ``slice``."""

    slice: str
    labels: tuple[str, ...]
    higher_is_better: bool

    @property
    def key(self) -> str:
        return f"{self.slice}: {'+'.join(self.labels)}"


MEASURES = (
    Measure("benign_other_ranking", ("malicious",), higher_is_better=False),
    Measure("benign_other_ranking", ("uncertain",), higher_is_better=False),
    Measure("dga", ("malicious",), higher_is_better=True),
    Measure("dga", FLAGGED_LABELS, higher_is_better=True),
    Measure("phishing", ("malicious",), higher_is_better=True),
    Measure("malware", ("malicious",), higher_is_better=True),
    Measure("not_public", ("unscored",), higher_is_better=True),
)


def read_gate_set(path: Path = GATE_FILE) -> pd.DataFrame:
    """The gate names: columns ``domain, slice``."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def measure(detector: Any, names: pd.DataFrame | None = None) -> dict[str, float]:
    """Every gate measure for a detector (see :data:`MEASURES`)."""
    names = read_gate_set() if names is None else names
    decided = detector.decide(names["domain"].tolist())
    frame = names.assign(label=decided.labels)
    shares = {s: metrics.decision_shares(part["label"].to_numpy()) for s, part in frame.groupby("slice")}
    return {m.key: sum(shares.get(m.slice, {}).get(lbl, 0.0) for lbl in m.labels) for m in MEASURES}


def measure_version(version: str, registry_path: Path | str | None = None) -> dict[str, float]:
    """The gate measures of a registry version, computed once and kept in its ``gate.json``."""
    from dnsentinel.models.detector import Detector
    from dnsentinel.models.serving import load

    path = registry.resolve(version, registry_path)
    digest = hashlib.sha256(GATE_FILE.read_bytes() + (path / registry.MANIFEST).read_bytes()).hexdigest()
    cached = registry._maybe_json(path / RESULT)
    if cached and cached.get("inputs") == digest:
        return cached["measures"]
    measures = measure(Detector.of(load(path)))
    registry.write_json(path / RESULT, {"inputs": digest, "measures": measures})
    return measures


def regressions(current: dict[str, float], candidate: dict[str, float], tolerance: float = TOLERANCE) -> list[str]:
    """One line per measure on which ``candidate`` is worse than ``current`` by more than ``tolerance``."""
    out = []
    for m in MEASURES:
        before, after = current.get(m.key), candidate.get(m.key)
        if before is None or after is None:
            continue
        worse = (before - after) if m.higher_is_better else (after - before)
        if worse > tolerance:
            out.append(f"{m.key}: {after:.2%} vs {before:.2%} now ({worse * 100:+.2f} points worse)")
    return out


NOT_PUBLIC = (
    "_airplay._tcp.local", "living room._raop._tcp.local", "_googlecast._tcp.local", "nas.lan",
    "printer.localdomain", "router.home.arpa", "build.internal", "https://app-measurement.com/sdk-exp",
    "1.168.192.in-addr.arpa", "wpad", "_ldap._tcp.dc._msdcs.corp", "fileserver.corp", "x.y.test",
    "media.home", "10.0.0.1", "localhost", "_dmarc.example.com", "pirate.sea", "q1w2e3.pirate.sea",
    "intranet.private",
)
"""Names a resolver sees that are not public DNS names (hand-written; none of them malicious)."""


def build_gate_set(data_dir: Path | None = None, seed: int = 7, path: Path = GATE_FILE) -> pd.DataFrame:
    """Write the gate set from the corpus splits of ``seed`` (the shipped model's seed).

    Only names that no training run with this seed trains on: the other ranking's report
    part, and DGA / phishing / malware names of the test split (DGA evenly over families).
    """
    from dnsentinel.models import dataset

    splits = dataset.split(dataset.load_corpus(data_dir, cross_source=True), seed=seed, holdout=())
    test = splits.test
    shuffled = test[test["kind"] == "dga"].sample(frac=1.0, random_state=seed)
    parts = [
        splits.report.sample(n=min(4000, len(splits.report)), random_state=seed).assign(slice="benign_other_ranking"),
        shuffled.groupby("family").head(100).assign(slice="dga"),
        test[test["kind"] == "phishing"].sample(n=2000, random_state=seed).assign(slice="phishing"),
        test[test["kind"] == "malware"].assign(slice="malware"),
        pd.DataFrame({"domain": list(NOT_PUBLIC)}).assign(slice="not_public"),
    ]
    frame = pd.concat([p[["domain", "slice"]] for p in parts], ignore_index=True)
    frame.to_csv(path, index=False, compression="xz")
    return frame


class GateRefused(registry.RegistryError):
    """A promotion refused because the candidate decides worse than the current model."""


def promote(version: str, registry_path: Path | str | None = None, force: bool = False) -> str | None:
    """Make ``version`` current unless it is worse than the current one on the gate; returns the previous one.

    ``force`` promotes anyway (the regressions are still measured and returned in the error
    otherwise). The first model of an empty registry needs no comparison.
    """
    current = registry.current_version(registry_path)
    if current is not None and current != version and not force:
        problems = regressions(measure_version(current, registry_path), measure_version(version, registry_path))
        if problems:
            raise GateRefused(
                f"{version} is worse than the current {current} on the quality gate "
                f"(tolerance {TOLERANCE:.1%}): " + "; ".join(problems) + ". Use --force to promote anyway."
            )
    return registry.promote(version, registry_path)
