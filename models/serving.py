"""Loading a model from the registry and scoring names fast.

Scores are calibrated: the network's logit (the larger of its two heads' logits)
goes through the Platt map stored in the manifest, ``sigmoid(a * logit + b)``,
computed in float64 from float32 logits. A score then reads as a probability on
cross-source data, and names the network is very sure of no longer tie at a
float32 1.0 (the reason the old block threshold sat at 0.99999517).

Speed comes from three things: strings are encoded with one vectorized numpy
lookup; the network runs as a compiled ``tf.function`` with a fixed input
signature (no Keras ``predict`` loop, no retracing); and big inputs are sorted
by length and cut into chunks whose padding is trimmed to the chunk's longest
name, which (with valid convolutions and enough trailing padding, see
:func:`dnsentinel.models.encoding.encode`) changes no score.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dnsentinel.models import architectures, device, encoding, registry
from dnsentinel.verdict_cache.vocabulary import Label

log = logging.getLogger(__name__)

INVALID_SCORE = 0.0
"""Score of a string with nothing to judge (empty, only white space or dots, not a string)."""
CHUNK = device.CPU_BATCH
"""Names per network call unless a placement says otherwise (``scoring.batch_size``)."""
PROBE_NAMES = ("google.com", "www.wikipedia.org", "xjwqkzptvb.com", "mail.example.co.uk", "paypal-login-secure.top",
               "a1b2c3d4e5f6g7h8.info", "cdn.static.akamaihd.net", "q.xyz", "bankofamerica.com.verify-id.ru",
               "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz.net", "kjhgfdsapoiuytrewq.biz", "weather.gov")
"""Names whose scores must not move by more than the tolerance for mixed precision to be kept."""


@dataclass(frozen=True)
class Thresholds:
    """At or above ``block``: malicious. At or below ``allow``: benign. Between: uncertain.

    The one place a score becomes a label (the worker and ``dnsentinel score`` both call it).
    """

    block: float
    allow: float

    def label(self, score: float) -> Label:
        if score >= self.block:
            return "malicious"
        if score <= self.allow:
            return "benign"
        return "uncertain"

    def labels(self, scores: np.ndarray) -> np.ndarray:
        """:meth:`label` for an array of scores at once (object array of label strings)."""
        scores = np.asarray(scores, dtype=np.float64)
        return np.where(scores >= self.block, "malicious", np.where(scores <= self.allow, "benign", "uncertain"))

    def __getitem__(self, key: str) -> float:  # dict-style access, as api.md allows either
        return getattr(self, key)


@dataclass(frozen=True)
class Calibration:
    """Platt scaling of the network's logit: ``score = sigmoid(a * logit + b)`` (identity: a=1, b=0)."""

    a: float = 1.0
    b: float = 0.0

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        z = self.a * np.asarray(logits, dtype=np.float64) + self.b
        return 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic function without overflow warnings


class Model:
    """A loaded model: ``predict``, ``predict_family``, ``explain``, plus ``version``, ``arch``, ``thresholds``."""

    def __init__(self, path: Path, placement: device.Placement | None = None) -> None:
        import tensorflow as tf

        self.path = Path(path)
        self.manifest: dict[str, Any] = registry.read_json(self.path / registry.MANIFEST)
        self.version: str = self.manifest["version"]
        self.arch: str = self.manifest["arch"]
        self.params: dict[str, Any] = dict(self.manifest.get("params", {}))
        if self.arch == "charcnn":
            # Manifests store every parameter; a missing one predates the feature it switches on.
            self.params.setdefault("heads", "single")
            self.params.setdefault("label_positions", False)
            self.params.setdefault("word_families", [])
        self.families: list[str] = self.manifest.get("families", [])
        t = self.manifest["thresholds"]
        self.thresholds = Thresholds(block=float(t["block"]), allow=float(t["allow"]))
        calibration = self.manifest.get("calibration", {})
        self.calibration = Calibration(**calibration.get("platt", {}))
        self.words_calibration = Calibration(**calibration["words"]) if "words" in calibration else None
        self._spec = architectures.get(self.arch)
        self._tail = architectures.tail(self.arch, self.params) if self._spec.input_kind == "indices" else 0
        if self._spec.input_kind == "indices":
            self._signature = [tf.TensorSpec([None, None], tf.int32)]
        else:
            side = int(round(self.params.get("max_len", encoding.MLBRIDGE_LEN) ** 0.5))
            self._signature = [tf.TensorSpec([None, side, side, 1], tf.float32)]
        self.has_heads = self.params.get("heads") == "split"
        self.head_names = ["dga", "other", *(["words"] if self.params.get("word_families") else [])]
        self.placement = placement
        self.chunk = placement.batch_size if placement is not None else CHUNK
        self.precision = "float32"
        self.backend = "tensorflow"
        self._compile(self._build(mixed=False))
        self.has_family = bool(self.families) and "family" in getattr(self.keras_model, "output_names", ())
        if placement is not None and placement.mixed_precision:
            self._try_mixed_precision(placement)
        if placement is not None and placement.backend == "onnx":
            self._use_onnx(placement)
        self.predict(["warm-up.example"])  # trace once now, not on the first real request

    def _build(self, mixed: bool):
        """The Keras network with this version's weights; ``mixed``: float16 compute, float32 weights."""
        import keras

        before = keras.config.dtype_policy()
        if mixed:
            keras.config.set_dtype_policy("mixed_float16")
        try:
            net = architectures.build(self.arch, self.params, self.families, compile=False)
        finally:
            keras.config.set_dtype_policy(before)
        net.load_weights(self.path / registry.WEIGHTS)
        return net

    def _compile(self, keras_model) -> None:
        """The compiled functions over ``keras_model``: logits, per-head probabilities, family (float32 out)."""
        import tensorflow as tf

        self.keras_model = keras_model
        signature = self._signature
        self._score = self._logit_function(signature)
        self._heads_fn = None
        if self.has_heads:
            head_names = self.head_names

            @tf.function(input_signature=signature, reduce_retracing=True)
            def _heads(x):
                out = keras_model(x, training=False)
                return tf.concat([tf.cast(out[head], tf.float32) for head in head_names], axis=1)

            self._heads_fn = _heads
        self._family_fn = None
        if self.families and "family" in getattr(keras_model, "output_names", ()):

            @tf.function(input_signature=signature, reduce_retracing=True)
            def _family(x):
                out = keras_model(x, training=False)
                return tf.reshape(tf.cast(out["malicious"], tf.float32), [-1]), tf.cast(out["family"], tf.float32)

            self._family_fn = _family

    def _try_mixed_precision(self, placement: device.Placement) -> None:
        """Switch to float16 compute when the probe names' scores stay within the tolerance of float32."""
        reference = self.predict(PROBE_NAMES)
        float32 = (self.keras_model, self._score, self._heads_fn, self._family_fn)
        self._compile(self._build(mixed=True))
        gap = float(np.max(np.abs(self.predict(PROBE_NAMES) - reference)))
        self.precision_gap = gap
        if gap <= placement.tolerance or placement.forced:
            self.precision = "mixed_float16"
            log.info("model %s: mixed precision on %s (scores within %.2g of float32)", self.version,
                     placement.name, gap)
            return
        log.warning("model %s: mixed precision moved scores by %.2g (> %.2g); staying in float32",
                    self.version, gap, placement.tolerance)
        self.keras_model, self._score, self._heads_fn, self._family_fn = float32

    def _use_onnx(self, placement: device.Placement) -> None:
        """Run calls of up to :data:`ONNX_MAX_ROWS` names in onnxruntime (converted in memory by
        tf2onnx, under a second); bigger ones stay in TensorFlow, which is faster there."""
        try:
            self._score = _small_calls_in_onnx(self._score, placement, lambda out: out[0])
            if self._family_fn is not None:  # the family guess of every flagged name: also small calls
                self._family_fn = _small_calls_in_onnx(self._family_fn, placement, tuple)
        except ImportError as exc:
            raise registry.RegistryError(
                "scoring.backend=onnx needs the optional onnx extra (pip install 'dnsentinel[onnx]')") from exc
        self.backend = "onnx"

    def _logit_function(self, signature):
        """A compiled function from encoded names to the logits behind the score, ``(n, 1 or 2)``.

        Column 0, the blocking logit: with split heads, the larger of the DGA and
        phishing/malware heads' logits, read off the shared hidden layer (dropout is off at
        inference), so no sigmoid saturates in float32; one-head models give the logit of their
        probability. Column 1, when the model has a ``words`` head: that head's logit.
        """
        import tensorflow as tf

        keras_model = self.keras_model
        if self.has_heads:
            import keras

            hidden = keras.Model(keras_model.inputs, keras_model.get_layer("hidden").output)
            dga, other = keras_model.get_layer("dga"), keras_model.get_layer("other")
            words = keras_model.get_layer("words") if "words" in self.head_names else None

            @tf.function(input_signature=signature, reduce_retracing=True)
            def _logits(x):
                h = tf.cast(hidden(x, training=False), tf.float32)  # float16 under mixed precision
                columns = [tf.maximum(tf.matmul(h, dga.kernel) + dga.bias, tf.matmul(h, other.kernel) + other.bias)]
                if words is not None:
                    columns.append(tf.matmul(h, words.kernel) + words.bias)
                return tf.concat(columns, axis=1)

            return _logits

        @tf.function(input_signature=signature, reduce_retracing=True)
        def _logits_of_probability(x):
            p = tf.reshape(tf.cast(keras_model(x, training=False)["malicious"], tf.float32), [-1, 1])
            p = tf.clip_by_value(p, 1e-7, 1 - 1e-7)
            return tf.math.log(p) - tf.math.log1p(-p)

        return _logits_of_probability

    def __repr__(self) -> str:
        return f"Model(version={self.version!r}, arch={self.arch!r}, thresholds={self.thresholds})"

    # -- scoring -----------------------------------------------------------------

    def _encode(self, names: Sequence[object]) -> np.ndarray:
        return architectures.encode_for(self.arch, names, self.params)

    def _run(self, fn, names: list[object], chunk: int | None = None) -> list[Any]:
        """Run ``fn`` over ``names`` in length-sorted chunks; returns per-chunk outputs and the order."""
        chunk = chunk or self.chunk
        encoded = self._encode(names)
        if self._spec.input_kind == "indices":
            order = np.argsort(encoding.lengths(encoded), kind="stable")
        else:
            order = np.arange(len(names))
        outputs = []
        for start in range(0, len(names), chunk):
            rows = order[start : start + chunk]
            batch = encoded[rows]
            if self._spec.input_kind == "indices":
                batch = encoding.trim(batch, self._tail)
            outputs.append((rows, fn(batch)))
        return outputs

    def predict(self, domains: Sequence[object]) -> np.ndarray:
        """Calibrated P(malicious) per name, float64 in [0, 1], same order; never raises on bad strings.

        Names with nothing to judge get :data:`INVALID_SCORE`.
        """
        logits, valid = self.predict_logits(domains)
        scores = np.full(len(logits), INVALID_SCORE, dtype=np.float64)
        scores[valid] = self.combine(logits[valid])
        return scores

    def combine(self, logits: np.ndarray) -> np.ndarray:
        """The score from :meth:`predict_logits` columns: the calibrated blocking logit, raised by the
        calibrated ``words`` head at most to just below ``block`` (a dictionary-DGA look goes to vetting,
        never to a block on its own)."""
        score = self.calibration(logits[:, 0])
        if self.words_calibration is not None and logits.shape[1] > 1:
            cap = np.nextafter(self.thresholds.block, 0.0)
            score = np.maximum(score, np.minimum(self.words_calibration(logits[:, 1]), cap))
        return score

    def predict_logits(self, domains: Sequence[object]) -> tuple[np.ndarray, np.ndarray]:
        """Uncalibrated logits per name, float32 ``(n, 1 or 2)`` (see ``_logit_function``), and which
        names had anything to judge (bool)."""
        names = list(domains)
        logits = np.zeros((len(names), 1 + ("words" in self.head_names)), dtype=np.float32)
        valid = np.array([encoding.is_scoreable(encoding.clean(n)) for n in names], dtype=bool)
        if valid.any():
            idx = np.flatnonzero(valid)
            for rows, out in self._run(self._score, [names[i] for i in idx]):
                logits[idx[rows]] = np.asarray(out)
        return logits, valid

    def predict_heads(self, domains: Sequence[object]) -> dict[str, np.ndarray]:
        """The detectors behind :meth:`predict`, for evaluation: ``dga``, ``other`` (phishing/malware) and,
        when the model has it, ``words`` (dictionary DGAs); uncalibrated probabilities.

        Empty for architectures with one head.
        """
        if self._heads_fn is None:
            return {}
        names = list(domains)
        matrix = np.full((len(names), len(self.head_names)), INVALID_SCORE, np.float32)
        idx = np.array([i for i, n in enumerate(names) if encoding.is_scoreable(encoding.clean(n))], dtype=np.int64)
        if idx.size:
            for rows, out in self._run(self._heads_fn, [names[i] for i in idx]):
                matrix[idx[rows]] = out.numpy()
        return {head: matrix[:, i] for i, head in enumerate(self.head_names)}

    def label(self, scores: np.ndarray) -> list[str]:
        """malicious / uncertain / benign for each score, by this model's thresholds."""
        return list(self.thresholds.labels(scores))

    def predict_family(self, domains: Sequence[object]) -> list[tuple[str | None, float]]:
        """Most likely known DGA family and its probability, for names that look DGA-generated.

        ``(None, 0.0)`` when the family head's most likely class is "not a DGA",
        for invalid strings, and for architectures without a family head.
        """
        names = list(domains)
        result: list[tuple[str | None, float]] = [(None, 0.0)] * len(names)
        if self._family_fn is None or not names:
            return result
        valid = [i for i, n in enumerate(names) if encoding.is_scoreable(encoding.clean(n))]
        sub = [names[i] for i in valid]
        for rows, (_, probs) in self._run(self._family_fn, sub):
            probs = np.asarray(probs)
            best = probs.argmax(axis=1)
            for row, cls, p in zip(rows, best, probs, strict=True):
                if cls > 0:
                    result[valid[row]] = (self.families[cls - 1], float(p[cls]))
        return result

    def explain(self, domain: object, window: int = 3, top: int = 3) -> str:
        """A one-line reason an analyst can read: which character windows drove the score.

        Occlusion: each window of ``window`` characters is blanked in turn and
        the change is measured in log-odds (scores near 0 or 1 saturate, log-odds
        do not); the windows with the biggest effect are named with their effect.
        """
        text = encoding.clean(domain)
        if not encoding.is_scoreable(text):
            return f"score {INVALID_SCORE:.3f}: nothing to judge (empty or not a string)"
        keep = int(self.params.get("max_len", encoding.DEFAULT_MAX_LEN))
        if self._spec.input_kind == "indices":
            text = text[-keep:]
        base = float(self.predict([text])[0])
        label = self.thresholds.label(base)
        spans = [(i, min(i + window, len(text))) for i in range(0, max(len(text) - window + 1, 1))]
        # Windows inside a label left of the TLD only: blanking a dot merges two labels and
        # blanking the TLD makes a name no resolver sees, so the change measured would be the
        # name's new shape, not the characters an analyst reads.
        tld_dot = text.rfind(".")
        spans = [(a, b) for a, b in spans if b <= tld_dot and "." not in text[a:b]] or spans
        # Blanked with spaces (the "other" index): padding would shift the rest of the name.
        variants = [text[:a] + " " * (b - a) + text[b:] for a, b in spans]
        effects = _logit(np.array([base])) - _logit(self.predict(variants))
        order = np.argsort(-np.abs(effects))[:top]
        parts = []
        for k in order:
            a, b = spans[k]
            if abs(effects[k]) < 0.1:
                continue
            direction = "towards malicious" if effects[k] > 0 else "towards benign"
            parts.append(f"'{text[a:b]}' (chars {a + 1}-{b}) {direction} by {abs(effects[k]):.1f} log-odds")
        family = ""
        if label != "benign" and self.has_family:
            fam, p = self.predict_family([text])[0]
            if fam:
                family = f"; looks like DGA family {fam} (p={p:.2f})"
        drivers = "; ".join(parts) if parts else "no single window changes it much (the whole name does)"
        return f"score {base:.3f} ({label}, model {self.version}): {drivers}{family}"

    # -- export -----------------------------------------------------------------

    def export(self, dest: Path, onnx: bool = False) -> Path:
        """A TensorFlow SavedModel of the calibrated scoring function (or an ONNX file with ``onnx``).

        Input: encoded names (:func:`encoding.encode`); output: the calibrated score in float32.
        """
        import tensorflow as tf

        dest = Path(dest)
        logits, a, b = self._score, float(self.calibration.a), float(self.calibration.b)
        words = self.words_calibration
        cap = float(np.nextafter(np.float32(self.thresholds.block), np.float32(0.0)))

        @tf.function(input_signature=logits.input_signature)
        def score(x):
            z = logits(x)
            out = tf.sigmoid(a * z[:, 0] + b)
            if words is not None and z.shape[1] == 2:
                out = tf.maximum(out, tf.minimum(tf.sigmoid(float(words.a) * z[:, 1] + float(words.b)), cap))
            return out

        if onnx:
            try:
                proto = onnx_proto(score)
            except ImportError as exc:
                raise registry.RegistryError(
                    "ONNX export needs the optional onnx extra: pip install 'dnsentinel[onnx]' (tf2onnx, onnxruntime)"
                ) from exc
            target = dest if dest.suffix == ".onnx" else dest / f"{self.version}.onnx"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(proto.SerializeToString())
            return target
        module = tf.Module()
        module.model = self.keras_model  # tracks the variables the scoring function captures
        module.score = score
        tf.saved_model.save(module, str(dest), signatures={"serving_default": score})
        return dest


ONNX_OPSET = 17
ONNX_MAX_ROWS = 64
"""Largest call onnxruntime runs with ``scoring.backend=onnx``: on 2 CPU cores it took 0.07 ms for one
name (TensorFlow 0.81) and 0.43 ms for 16 (1.16), but was slower from 128 names on (bench/backend_bench.py)."""


def onnx_proto(fn: Any) -> Any:
    """An ONNX ``ModelProto`` of a compiled ``tf.function`` with a fixed input signature (tf2onnx)."""
    import tf2onnx  # type: ignore[import-not-found]

    proto, _ = tf2onnx.convert.from_function(fn, input_signature=fn.input_signature, opset=ONNX_OPSET)
    return proto


def _small_calls_in_onnx(fn: Any, placement: device.Placement, outputs: Any) -> Any:
    """``fn`` with calls of up to :data:`ONNX_MAX_ROWS` rows run by onnxruntime (``outputs`` shapes
    the session's output list like ``fn``'s), bigger ones by ``fn`` itself."""
    session = onnx_session(onnx_proto(fn).SerializeToString(), gpu=placement.kind == "gpu")
    name = session.get_inputs()[0].name
    return lambda x: outputs(session.run(None, {name: x})) if len(x) <= ONNX_MAX_ROWS else fn(x)


def onnx_session(model: bytes | str | Path, gpu: bool = False) -> Any:
    """An onnxruntime session of an exported model (CUDA first when ``gpu`` and onnxruntime-gpu is there)."""
    import onnxruntime as ort  # type: ignore[import-not-found]

    providers = ["CPUExecutionProvider"]
    if gpu and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    # One thread, no spinning: the small calls it serves gain nothing from a pool, and spinning pool
    # threads took the CPU the worker's own thread needed next (1-name calls went from 0.07 to 1.5 ms).
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), options, providers=providers)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def load(name_or_path: str | Path | None = None, registry_path: Path | str | None = None, **kwargs: Any) -> Model:
    """The current model (no argument), or a version name / model directory.

    ``registry`` (keyword) overrides ``settings.model.registry_dir``; ``placement`` (keyword) overrides
    the device, batch size, precision and backend that ``scoring.*`` settings choose (models/device.py).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    root = kwargs.pop("registry", registry_path)
    placement = kwargs.pop("placement", None)
    if kwargs:
        raise TypeError(f"unexpected arguments: {', '.join(kwargs)}")
    return Model(registry.resolve(name_or_path, root), placement or device.configure())


def export(version: str | None, dest: Path, onnx: bool = False, registry: Path | str | None = None) -> Path:
    """Write a TensorFlow SavedModel (or, with ``onnx``, an ONNX file) of a registry version to ``dest``."""
    return load(version, registry=registry).export(Path(dest), onnx=onnx)
