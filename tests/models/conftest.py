"""Fixtures of the models tests: a tiny corpus cut from the shipped one, and one tiny trained model.

The corpus rows are taken (deterministically) from models/data, the project's
own copy, so the tests never read /work/shared and never invent labels.
"""

from __future__ import annotations

import lzma
import os
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from dnsentinel.models import dataset  # noqa: E402


def _write_xz(frame: pd.DataFrame, path: Path) -> None:
    with lzma.open(path, "wt", encoding="utf-8") as handle:
        frame.to_csv(handle, index=False)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """About 1,300 rows: benign, six DGA families (one held out in tests), phishing, malware, other-ranking benign."""
    out = tmp_path_factory.mktemp("corpus")
    benign = pd.read_csv(dataset.DATA_DIR / "benign.csv.xz", dtype=str, keep_default_na=False)
    _write_xz(benign.sample(n=400, random_state=1), out / "benign.csv.xz")
    dga = pd.read_csv(dataset.DATA_DIR / "dga.csv.xz", dtype=str, keep_default_na=False)
    families = ["conficker", "cryptolocker", "banjori", "ramnit", "necurs", "suppobox", "rovnix"]
    picked = pd.concat([dga[dga.family == f].sample(n=50, random_state=1) for f in families])
    _write_xz(picked, out / "dga.csv.xz")
    other = pd.read_csv(dataset.DATA_DIR / "malicious_other.csv.xz", dtype=str, keep_default_na=False)
    picked = pd.concat(
        [other[other.category == "phishing"].sample(n=150, random_state=1), other[other.category == "malware"].head(50)]
    )
    _write_xz(picked, out / "malicious_other.csv.xz")
    cross = pd.read_csv(dataset.DATA_DIR / dataset.CROSS_SOURCE_FILE, dtype=str, keep_default_na=False)
    _write_xz(cross.sample(n=400, random_state=1), out / dataset.CROSS_SOURCE_FILE)
    return out


@pytest.fixture(scope="session")
def trained(tiny_corpus, tmp_path_factory):
    """One charcnn trained for one epoch into a temporary registry: (registry dir, version dir)."""
    from dnsentinel.models import training

    registry = tmp_path_factory.mktemp("registry")
    config = training.TrainConfig(
        arch="charcnn",
        epochs=1,
        batch_size=64,
        sample_size=800,
        synthetic_fqdn=100,
        synthetic_tld=50,
        name="tiny-charcnn",
        data_dir=tiny_corpus,
        holdout=("necurs",),
        params={"filters": 8, "dense": 16},
    )
    path = training.train(config, registry_path=registry)
    return registry, path
