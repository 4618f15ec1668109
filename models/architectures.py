"""The model architectures, each one short function, selectable by name.

``charcnn`` (our default) is a character-embedding CNN with parallel kernel
widths and global max pooling: n-gram detectors anywhere in the name, no
recurrence, so batched inference stays cheap on a CPU. It has a second,
multiclass head that guesses the DGA family ("not_dga" is class 0).

``mlbridge-cnn`` reproduces the original ML Bridge model as the historical
baseline: code points as a 16x16 "image", a small Conv2D stack, one sigmoid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dnsentinel.errors import DnsentinelError
from dnsentinel.models import encoding


WORD_FAMILIES = ("rovnix", "suppobox")
"""Dictionary DGAs: their names are English word compounds, as are many benign names of the long
tail. ``charcnn`` gives them a head of their own (``words``) whose score may send a name to
vetting but never blocks it (serving.Model caps it below ``block``), so their look-alikes among
benign names no longer set the threshold at which every other DGA family is blocked."""


class UnknownArchitecture(DnsentinelError):
    """An architecture name that is not in :data:`ARCHITECTURES`."""


@dataclass(frozen=True)
class Architecture:
    """How to build one architecture and how to feed it."""

    name: str
    input_kind: str
    """``"indices"`` (alphabet indices, :func:`encoding.encode`) or ``"codepoints"``."""
    defaults: dict[str, Any] = field(default_factory=dict)
    has_family_head: bool = False
    description: str = ""


ARCHITECTURES: dict[str, Architecture] = {
    "charcnn": Architecture(
        name="charcnn",
        input_kind="indices",
        defaults={
            "max_len": encoding.DEFAULT_MAX_LEN,
            "embed_dim": 16,
            "filters": 64,
            "kernel_sizes": [2, 3, 4, 5],
            "dense": 64,
            "dropout": 0.2,
            "learning_rate": 2e-3,
            "heads": "split",
            "label_positions": True,
            "word_families": list(WORD_FAMILIES),
        },
        has_family_head=True,
        description="character + label-position embedding, parallel Conv1D widths 2-5, global max pool, name shape, dense; DGA, phishing/malware and family heads",
    ),
    "mlbridge-cnn": Architecture(
        name="mlbridge-cnn",
        input_kind="codepoints",
        defaults={"max_len": encoding.MLBRIDGE_LEN, "learning_rate": 1e-3},
        description="ML Bridge reproduction: code points 16x16x1, Conv2D 16/16/8 2x2, Dense 8, sigmoid",
    ),
}
DEFAULT_ARCH = "charcnn"


def get(name: str) -> Architecture:
    """The architecture called ``name``, or a one-line error listing the known ones."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise UnknownArchitecture(f"unknown architecture {name!r}; choose one of: {known}") from None


def build(name: str, params: dict[str, Any], families: list[str] | None = None, compile: bool = True):
    """A Keras model of architecture ``name`` (``params`` override its defaults).

    ``compile=False`` is for serving: no optimizer state is created or loaded.
    """
    arch = get(name)
    merged = {**arch.defaults, **params}
    if name == "charcnn":
        model, losses, metrics = _charcnn(merged, families or [])
    else:
        model, losses, metrics = _mlbridge_cnn(merged)
    if compile:
        import keras

        model.compile(
            optimizer=keras.optimizers.Adam(merged["learning_rate"]),
            loss=losses,
            loss_weights={k: 0.3 if k == "family" else 1.0 for k in losses},
            metrics=metrics,
        )
    return model


def _charcnn(p: dict[str, Any], families: list[str]) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    import keras
    from keras import layers

    # Variable length: serving cuts each batch to its longest name + max(kernel_sizes) pads.
    from dnsentinel.models.layers import LABEL_POSITIONS, NameShape

    inputs = keras.Input(shape=(None,), dtype="int32", name="chars")
    x = layers.Embedding(encoding.VOCAB_SIZE, p["embed_dim"], name="embed")(inputs)
    pooled = []
    if p.get("label_positions"):
        # Which label a character sits in (TLD, the label left of it, ...) is added to its
        # embedding, so one n-gram detector fires differently in a registrable label and in a
        # CDN host label; the name's shape numbers go straight to the dense layer.
        positions, shape = NameShape(name="shape")(inputs)
        label_pos = layers.Embedding(LABEL_POSITIONS, p["embed_dim"], name="label_pos")(positions)
        x = layers.Add(name="embed_at")([x, label_pos])
        pooled.append(shape)
    for k in p["kernel_sizes"]:
        conv = layers.Conv1D(p["filters"], k, padding="valid", activation="relu", name=f"conv{k}")(x)
        pooled.append(layers.GlobalMaxPooling1D(name=f"pool{k}")(conv))
    features = layers.Concatenate(name="ngrams")(pooled)
    hidden = layers.Dense(p["dense"], activation="relu", name="hidden")(features)
    hidden = layers.Dropout(p["dropout"], name="dropout")(hidden)
    if p.get("heads", "single") == "split":
        # One head learns DGA vs benign only, the other phishing/malware vs benign only; the
        # score is their maximum. A DGA name then is judged by a detector that never had to
        # trade DGA-ness against phishing-ness, so it scores far above phishy-looking benign names.
        dga = layers.Dense(1, activation="sigmoid", name="dga")(hidden)
        other = layers.Dense(1, activation="sigmoid", name="other")(hidden)
        outputs = {"malicious": layers.Maximum(name="malicious")([dga, other]), "dga": dga, "other": other}
        losses: dict[str, Any] = {"dga": masked_binary_crossentropy, "other": masked_binary_crossentropy}
        if p.get("word_families"):
            # Dictionary DGAs look like benign word compounds: a head of their own, whose score can
            # only send a name to vetting (serving caps it below `block`), so their look-alikes among
            # benign names no longer set the threshold that blocks every other DGA family.
            outputs["words"] = layers.Dense(1, activation="sigmoid", name="words")(hidden)
            losses["words"] = masked_binary_crossentropy
    else:
        outputs = {"malicious": layers.Dense(1, activation="sigmoid", name="malicious")(hidden)}
        losses = {"malicious": "binary_crossentropy"}
    metrics: dict[str, Any] = {"malicious": ["accuracy"]}
    if families:
        outputs["family"] = layers.Dense(len(families) + 1, activation="softmax", name="family")(hidden)
        losses["family"] = "sparse_categorical_crossentropy"
        metrics["family"] = ["accuracy"]
    return keras.Model(inputs, outputs, name="charcnn"), losses, metrics


def masked_binary_crossentropy(y_true, y_pred):
    """Binary cross-entropy over the rows whose target is 0 or 1; a target of -1 means "not this head's job"."""
    import keras
    from keras import ops

    y_true = ops.reshape(ops.cast(y_true, "float32"), (-1, 1))
    y_pred = ops.reshape(y_pred, (-1, 1))
    mask = ops.reshape(ops.cast(y_true >= 0, "float32"), (-1,))
    bce = keras.losses.binary_crossentropy(ops.maximum(y_true, 0.0), y_pred)
    return ops.sum(bce * mask) / ops.maximum(ops.sum(mask), 1.0)


def _mlbridge_cnn(p: dict[str, Any]) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    import keras
    from keras import layers

    side = int(round(p["max_len"] ** 0.5))
    inputs = keras.Input(shape=(side, side, 1), dtype="float32", name="codepoints")
    x = layers.Conv2D(16, (2, 2), activation="relu")(inputs)
    x = layers.MaxPooling2D((2, 2))(x)
    x = layers.Conv2D(16, (2, 2), activation="relu")(x)
    x = layers.MaxPooling2D((2, 2))(x)
    x = layers.Conv2D(8, (2, 2), activation="relu")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(8, activation="relu")(x)
    outputs = {"malicious": layers.Dense(1, activation="sigmoid", name="malicious")(x)}
    losses = {"malicious": "binary_crossentropy"}
    return keras.Model(inputs, outputs, name="mlbridge_cnn"), losses, {"malicious": ["accuracy"]}


def tail(name: str, params: dict[str, Any]) -> int:
    """Padding positions an ``indices`` model needs after each name (its widest kernel)."""
    merged = {**get(name).defaults, **params}
    return max(merged.get("kernel_sizes", [0]))


def encode_for(name: str, names, params: dict[str, Any]):
    """Encode ``names`` the way architecture ``name`` expects its input (full width)."""
    arch = get(name)
    max_len = {**arch.defaults, **params}["max_len"]
    if arch.input_kind == "codepoints":
        return encoding.encode_codepoints(names, max_len)
    return encoding.encode(names, max_len, tail(name, params))
