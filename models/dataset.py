"""The labelled corpus: loading, leakage-safe splitting, balancing, tf.data pipelines.

Labels apply to the exact FQDN (see models/data/ATTRIBUTION.md and the corpus
README): ``weebly.com`` is benign while ``paypal-verify.weebly.com`` is
phishing. Splits are therefore assigned per *group* within a class, never
across classes:

* the group of a name is its registrable domain (eTLD+1, Public Suffix List
  with private domains, so ``x.blogspot.com`` is its own group) inside its
  class, so ``a.evil.top`` and ``b.evil.top`` can never straddle train/test;
* except when a malicious name's registrable domain is itself a benign name
  (a shared platform like ``weebly.com`` that is not on the PSL): then the
  group is one label more (``paypal-verify.weebly.com``), otherwise one split
  would swallow every phishing site on that platform.

A few DGA families are held out entirely (the "unseen families" slice).
Everything is deterministic given the seed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dnsentinel.errors import DnsentinelError

DATA_DIR = Path(__file__).resolve().parent / "data"
CORPUS_FILES = ("benign.csv.xz", "dga.csv.xz", "malicious_other.csv.xz")
DEFAULT_HOLDOUT = ("necurs", "pykspa", "qsnatch", "suppobox")
"""Held out of training: random-letter (necurs), pronounceable (pykspa), hex-like
(qsnatch) and dictionary-word (suppobox) generators, one of each style."""
DEFAULT_SEED = 7
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
MIX = {"benign": 0.4, "dga": 0.35, "phishing": 0.22, "malware": 0.03}
"""Share of each kind in a balanced training sample (a kind with fewer names gives all it has).

With the default 400k sample this takes every training benign name and nearly
every training DGA name: more DGA names per family measurably sharpen the
DGA head at low false-positive rates, where the benign share mattered less."""


class DataError(DnsentinelError):
    """The corpus or a labelled file is missing or malformed."""


@dataclass
class Splits:
    """Frames with columns ``domain, label, kind, family, group, split``."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    unseen: pd.DataFrame
    families: list[str] = field(default_factory=list)
    """DGA families seen in training, in family-head order (class i+1)."""
    data_hash: str = ""

    def as_dict(self) -> dict[str, pd.DataFrame]:
        return {"train": self.train, "val": self.val, "test": self.test, "unseen_families": self.unseen}


def load_corpus(data_dir: Path | None = None) -> pd.DataFrame:
    """All corpus rows as ``domain, label (0/1), kind, family`` (kind: benign/dga/phishing/malware)."""
    data_dir = Path(data_dir or DATA_DIR)
    missing = [f for f in CORPUS_FILES if not (data_dir / f).is_file()]
    if missing:
        raise DataError(f"{data_dir}: missing corpus file(s) {', '.join(missing)}")
    benign = pd.read_csv(data_dir / "benign.csv.xz", usecols=["domain"], dtype=str, keep_default_na=False)
    benign["label"], benign["kind"], benign["family"] = 0, "benign", ""
    dga = pd.read_csv(data_dir / "dga.csv.xz", usecols=["domain", "family"], dtype=str, keep_default_na=False)
    dga["label"], dga["kind"] = 1, "dga"
    other = pd.read_csv(
        data_dir / "malicious_other.csv.xz", usecols=["domain", "category"], dtype=str, keep_default_na=False
    )
    other = other.rename(columns={"category": "kind"})
    other["label"], other["family"] = 1, ""
    frame = pd.concat([benign, dga, other], ignore_index=True)
    return frame[["domain", "label", "kind", "family"]]


def data_hash(data_dir: Path | None = None, extra: Iterable[str] = ()) -> str:
    """sha256 over the corpus files (and any extra labels, e.g. vetted names), for the registry."""
    digest = hashlib.sha256()
    for name in CORPUS_FILES:
        digest.update((Path(data_dir or DATA_DIR) / name).read_bytes())
    for item in sorted(extra):
        digest.update(item.encode())
    return "sha256:" + digest.hexdigest()


def registrable_domains(names: Iterable[str]) -> list[str]:
    """eTLD+1 of each name using the bundled PSL snapshot (no network), private suffixes included."""
    import tldextract

    extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True)
    out = []
    for name in names:
        parts = extract(name)
        out.append(parts.top_domain_under_public_suffix or name)
    return out


def group_keys(frame: pd.DataFrame) -> pd.Series:
    """Split groups, as explained in the module docstring."""
    registrable = pd.Series(registrable_domains(frame["domain"]), index=frame.index)
    benign_names = set(frame.loc[frame["label"] == 0, "domain"])
    shared = (frame["label"] == 1) & registrable.isin(benign_names) & (frame["domain"] != registrable)
    keys = registrable.copy()
    if shared.any():
        keys[shared] = [
            ".".join(d.split(".")[-(r.count(".") + 2) :])
            for d, r in zip(frame.loc[shared, "domain"], registrable[shared], strict=True)
        ]
    return frame["label"].astype(str) + ":" + keys


def _unit_hash(keys: pd.Series, seed: int) -> np.ndarray:
    """A deterministic number in [0, 1) per key (stable across runs and machines)."""
    salt = str(seed).encode()
    return np.array(
        [int.from_bytes(hashlib.blake2b(k.encode(), digest_size=8, key=salt).digest(), "big") / 2**64 for k in keys]
    )


def split(
    frame: pd.DataFrame,
    seed: int = DEFAULT_SEED,
    holdout: Iterable[str] = DEFAULT_HOLDOUT,
) -> Splits:
    """Assign every row to train / val / test / unseen by group hash (80/10/10)."""
    holdout = set(holdout)
    frame = frame.copy()
    frame["group"] = group_keys(frame)
    u = _unit_hash(frame["group"], seed)
    train_end, val_end = SPLIT_FRACTIONS[0], SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1]
    frame["split"] = np.where(u < train_end, "train", np.where(u < val_end, "val", "test"))
    frame.loc[(frame["kind"] == "dga") & frame["family"].isin(holdout), "split"] = "unseen"
    parts = {name: frame[frame["split"] == name].reset_index(drop=True) for name in ("train", "val", "test", "unseen")}
    families = sorted(set(parts["train"].loc[parts["train"]["kind"] == "dga", "family"]))
    return Splits(parts["train"], parts["val"], parts["test"], parts["unseen"], families)


def balanced_sample(train: pd.DataFrame, sample_size: int, seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """A training sample of about ``sample_size`` rows mixed per :data:`MIX`, DGA families equalized.

    Each kind gets its share (or all it has); inside DGA, the share is spread
    evenly over families by water-filling, so small families are kept whole
    and large ones are cut to the same size.
    """
    rng = np.random.default_rng(seed)
    pieces = []
    for kind, share in MIX.items():
        rows = train[train["kind"] == kind]
        target = int(round(sample_size * share))
        if kind == "dga":
            pieces.append(_equalize(rows, "family", target, rng))
        else:
            pieces.append(_take(rows, target, rng))
    extra = train[~train["kind"].isin(list(MIX))]  # vetted labels: always all of them
    sample = pd.concat([*pieces, extra], ignore_index=True)
    return sample.sample(frac=1.0, random_state=int(rng.integers(2**31))).reset_index(drop=True)


def _take(rows: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    if len(rows) <= n:
        return rows
    return rows.iloc[np.sort(rng.choice(len(rows), size=n, replace=False))]


def _equalize(rows: pd.DataFrame, column: str, target: int, rng: np.random.Generator) -> pd.DataFrame:
    sizes = rows[column].value_counts().sort_values()
    remaining, left, taken = target, len(sizes), []
    for value, size in sizes.items():
        quota = remaining // max(left, 1)
        chosen = _take(rows[rows[column] == value], min(size, quota), rng)
        taken.append(chosen)
        remaining -= len(chosen)
        left -= 1
    return pd.concat(taken) if taken else rows.iloc[:0]


def vetted_labels() -> pd.DataFrame:
    """Analysts' vetted decisions from the verdict cache as labels (allow → 0, block/honeypot → 1).

    A wildcard entry (``*.example.com``) labels its base name only: labels
    belong to exact names, and the subdomains it covers are not known here.
    """
    from dnsentinel.verdict_cache.cache import VerdictCache  # lazy: only for --include-vetted

    try:
        records = VerdictCache.from_settings().list_vetted()
    except DnsentinelError:
        raise
    except Exception as exc:  # redis connection / auth errors
        raise DataError(f"--include-vetted: cannot read vetted decisions from the verdict cache: {exc}") from exc
    labels: dict[str, int] = {}
    for name, rec in records.items():
        base = name[2:] if name.startswith("*.") else name
        if base:
            labels[base] = 0 if getattr(rec, "action", "") == "allow" else 1
    rows = [{"domain": d, "label": lbl, "kind": "vetted", "family": ""} for d, lbl in sorted(labels.items())]
    return pd.DataFrame(rows, columns=["domain", "label", "kind", "family"])


def family_targets(frame: pd.DataFrame, families: list[str]) -> np.ndarray:
    """Family-head class per row: 0 for anything that is not a known DGA family, else 1 + index."""
    index = {f: i + 1 for i, f in enumerate(families)}
    return np.array([index.get(f, 0) if k == "dga" else 0 for f, k in zip(frame["family"], frame["kind"])], np.int32)


def head_targets(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Targets of the split heads: ``dga`` (DGA vs benign) and ``other`` (phishing/malware/vetted vs benign).

    -1 masks a row out of a head's loss: a phishing name says nothing about DGA-ness.
    """
    label = frame["label"].to_numpy()
    is_dga = (frame["kind"] == "dga").to_numpy()
    dga = np.where(label == 0, 0, np.where(is_dga, 1, -1))
    other = np.where(label == 0, 0, np.where(is_dga, -1, 1))
    return {"dga": dga.astype(np.float32).reshape(-1, 1), "other": other.astype(np.float32).reshape(-1, 1)}


def tf_dataset(x: np.ndarray, targets: dict[str, np.ndarray], batch_size: int, shuffle: bool, seed: int):
    """A tf.data pipeline over in-memory arrays: shuffled, batched, prefetched (keeps a GPU fed)."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, targets))
    if shuffle:
        ds = ds.shuffle(min(len(x), 200_000), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def read_labelled(path: Path) -> pd.DataFrame:
    """A labelled CSV (plain or compressed) for ``dnsentinel evaluate``.

    It needs a ``domain`` column and either a ``label`` column (0/1, or
    benign/malicious) or the corpus layout: a ``family`` column means DGA
    (label 1), a ``category`` column phishing/malware (label 1), neither means
    benign (label 0).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises many types for malformed files
        raise DataError(f"{path}: cannot read as CSV: {exc}") from exc
    if "domain" not in frame.columns:
        raise DataError(f"{path}: needs a 'domain' column (has: {', '.join(frame.columns)})")
    out = pd.DataFrame({"domain": frame["domain"]})
    out["family"] = frame["family"] if "family" in frame.columns else ""
    if "label" in frame.columns:
        mapping = {"0": 0, "1": 1, "benign": 0, "malicious": 1}
        labels = frame["label"].str.strip().str.lower().map(mapping)
        bad = labels.isna()
        if bad.any():
            first = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{path}: row {first + 2}: label {frame['label'].iloc[first]!r} is not 0/1/benign/malicious"
            )
        out["label"] = labels.astype(int)
        kind = frame["kind"] if "kind" in frame.columns else np.where(out["label"] == 1, "malicious", "benign")
        out["kind"] = kind
    elif "family" in frame.columns:
        out["label"], out["kind"] = 1, "dga"
    elif "category" in frame.columns:
        out["label"], out["kind"] = 1, frame["category"]
    else:
        out["label"], out["kind"] = 0, "benign"
    return out[["domain", "label", "kind", "family"]]
