"""The model as the worker uses it: off the event loop, swappable while running.

Inference runs off the asyncio loop, so it keeps serving Kafka heartbeats,
fetches and commits while the model works: the worker's verdict lane calls
:meth:`ModelHolder.score_now` from its own thread, ``POST /score`` goes through a
single-thread executor, and a lock keeps calls from overlapping (the model sees
one batch at a time). Hot
reload polls the registry pointer, loads the new version in a thread and swaps
the reference between two batches: in-flight batches finish on the old model,
no event is lost, every verdict names the version that scored it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence

from dnsentinel.errors import DnsentinelError
from dnsentinel.models.detector import Detector, Scorer
from dnsentinel.verdict_cache.vocabulary import FLAGGED_LABELS
from dnsentinel.stream_processor.metrics import Metrics

log = logging.getLogger(__name__)

ModelLoader = Callable[[str | None], Scorer | Detector]
"""Loads a model version (None: the registry's current one), e.g. :func:`dnsentinel.models.load`."""
Family = tuple[str | None, float | None]
"""A family guess and its probability ((None, None) for benign names)."""


@dataclass(slots=True)
class Scored:
    """Decisions (and optional family guesses) of one detector call, plus the version that made them."""

    scores: Sequence[float]
    labels: Sequence[str]
    reasons: Sequence[str]
    families: list[Family]
    version: str


def _score_sync(detector: Detector, names: Sequence[str]) -> Scored:
    """The offline decision (prior, calibrated model, thresholds) for names triage found scorable."""
    decided = detector.decide(names)
    scores = decided.scores.tolist()
    families: list[Family] = [(None, None)] * len(names)
    bad = [i for i, label in enumerate(decided.labels) if label in FLAGGED_LABELS]
    if bad:
        try:
            guesses = detector.predict_family([names[i] for i in bad])
            for i, (fam, p) in zip(bad, guesses):
                families[i] = (fam, None if p is None else float(p))
        except Exception:  # a family guess is optional: never lose the verdict over it
            log.exception("family prediction failed; verdicts go out without a family")
    return Scored(scores, decided.labels, decided.reasons, families, detector.version)


class ModelHolder:
    """Holds the current model; :meth:`score` and :meth:`maybe_reload` are safe to interleave."""

    def __init__(self, loader: ModelLoader, current_version: Callable[[], str | None] | None = None,
                 metrics: Metrics | None = None) -> None:
        self._loader = loader
        self._current_version = current_version
        self.metrics = metrics
        self._infer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dnsentinel-infer")
        self._calling = threading.Lock()
        self._load = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dnsentinel-load")
        self.model: Detector | None = None
        self._reloading = False
        self._registry_down = False  # logged once per outage, counted every poll
        self._failed: str | None = None  # the promoted version that last failed to load

    @property
    def version(self) -> str | None:
        return None if self.model is None else str(self.model.version)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.use(await loop.run_in_executor(self._load, self._load_detector, None))

    def _load_detector(self, version: str | None) -> Detector:
        """The model of ``version`` with its prior and thresholds (in the loader thread: reading takes a while)."""
        return Detector.of(self._loader(version))

    def use(self, model: Scorer | Detector) -> None:
        """Score with ``model`` from the next call on (start-up, hot reload; tests hand theirs in)."""
        old = self.version
        self.model = model = Detector.of(model)  # a Detector already (loaded in the loader thread)
        if self.metrics:
            if old is not None:
                self.metrics.model_version.remove(old)
                self.metrics.model_reloads.inc()
            self.metrics.model_version.labels(version=str(model.version)).set(1)
        log.info("model %s in use (was %s)", model.version, old)

    async def maybe_reload(self) -> bool:
        """Swap in the promoted model when the registry pointer moved; True if swapped."""
        if self._current_version is None or self._reloading:
            return False
        loop = asyncio.get_running_loop()
        try:
            wanted = await loop.run_in_executor(self._load, self._current_version)
        except Exception as exc:
            self._registry_unreachable(exc)
            return False
        if self._registry_down:
            self._registry_down = False
            log.info("model registry reachable again (model %s in use)", self.version)
        if wanted is None or wanted == self.version:
            return False
        self._reloading = True
        try:
            model = await loop.run_in_executor(self._load, self._load_detector, wanted)
        except Exception as exc:
            if self.metrics:
                self.metrics.model_registry_errors.inc()
            if wanted != self._failed:  # retried every poll, logged once per version
                self._failed = wanted
                expected = isinstance(exc, DnsentinelError)  # registry unreachable, bad checksum: no traceback
                log.warning("cannot load promoted model %s (%s); keeping %s", wanted, exc, self.version,
                            exc_info=not expected)
            return False
        finally:
            self._reloading = False
        self.use(model)
        return True

    def _registry_unreachable(self, exc: Exception) -> None:
        """Keep scoring with the model in use; count every failed poll, log the first of an outage."""
        if self.metrics:
            self.metrics.model_registry_errors.inc()
        if not self._registry_down:
            self._registry_down = True
            log.warning("cannot read the model registry pointer (%s); scoring with %s until it answers again",
                        exc, self.version)

    async def score(self, names: Sequence[str]) -> Scored:
        """Decide ``names`` in the inference thread (``POST /score``; the loop keeps serving meanwhile)."""
        return await asyncio.get_running_loop().run_in_executor(self._infer, self.score_now, names)

    def score_now(self, names: Sequence[str]) -> Scored:
        """Decide ``names`` in the caller's thread: the verdict lane calls the model without a thread hop.

        One call at a time (the lock), so the model never sees two batches at once."""
        model = self.model  # one reference per call: a swap never mixes two versions in one batch
        assert model is not None, "start() or use() loads a model first"
        t0 = time.perf_counter()
        with self._calling:
            out = _score_sync(model, names)
        if self.metrics:
            self.metrics.inference.observe(time.perf_counter() - t0)
            self.metrics.predict_size.observe(len(names))
        return out

    def close(self) -> None:
        self._infer.shutdown(wait=False, cancel_futures=True)
        self._load.shutdown(wait=False, cancel_futures=True)
