"""The model as the worker uses it: off the event loop, swappable while running.

Inference runs in a dedicated single-thread executor so the asyncio loop keeps
serving Kafka heartbeats, fetches and commits while TensorFlow works (and one
thread means calls never overlap: the model sees one batch at a time). Hot
reload polls the registry pointer, loads the new version in a thread and swaps
the reference between two batches: in-flight batches finish on the old model,
no event is lost, every verdict names the version that scored it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

from dnsentinel.stream_processor.pipeline import decide, thresholds_of

log = logging.getLogger(__name__)


class Scored:
    """Scores (and optional family guesses) of one model call, plus the version that made them."""

    __slots__ = ("names", "scores", "labels", "families", "version")

    def __init__(self, names: Sequence[str], scores: Sequence[float], labels: list[str],
                 families: list[tuple[str | None, float | None]], version: str) -> None:
        self.names, self.scores, self.labels, self.families, self.version = names, scores, labels, families, version


def _score_sync(model: Any, names: Sequence[str]) -> Scored:
    scores = [float(s) for s in model.predict(list(names))]
    allow, block = thresholds_of(model)
    labels = [decide(s, allow, block) for s in scores]
    families: list[tuple[str | None, float | None]] = [(None, None)] * len(names)
    predict_family = getattr(model, "predict_family", None)
    if predict_family is not None:
        bad = [i for i, label in enumerate(labels) if label != "benign"]
        if bad:
            try:
                guesses = predict_family([names[i] for i in bad])
                for i, (fam, p) in zip(bad, guesses):
                    families[i] = (fam, None if p is None else float(p))
            except Exception:  # a family guess is optional: never lose the verdict over it
                log.exception("family prediction failed; verdicts go out without a family")
    return Scored(names, scores, labels, families, str(model.version))


class ModelHolder:
    """Holds the current model; :meth:`score` and :meth:`maybe_reload` are safe to interleave."""

    def __init__(self, loader: Callable[[str | None], Any], current_version: Callable[[], str | None] | None = None,
                 metrics: Any = None) -> None:
        self._loader = loader
        self._current_version = current_version
        self.metrics = metrics
        self._infer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dnsentinel-infer")
        self._load = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dnsentinel-load")
        self.model: Any = None
        self._reloading = False

    @property
    def version(self) -> str | None:
        return None if self.model is None else str(self.model.version)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._swap(await loop.run_in_executor(self._load, self._loader, None))

    def _swap(self, model: Any) -> None:
        old = self.version
        self.model = model
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
        except Exception:
            log.exception("cannot read the model registry pointer; keeping %s", self.version)
            return False
        if wanted is None or wanted == self.version:
            return False
        self._reloading = True
        try:
            model = await loop.run_in_executor(self._load, self._loader, wanted)
        except Exception:
            log.exception("cannot load promoted model %s; keeping %s", wanted, self.version)
            return False
        finally:
            self._reloading = False
        self._swap(model)
        return True

    async def score(self, names: Sequence[str]) -> Scored:
        model = self.model  # one reference per call: a swap never mixes two versions in one batch
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        out = await loop.run_in_executor(self._infer, _score_sync, model, names)
        if self.metrics:
            self.metrics.inference.observe(time.perf_counter() - t0)
            self.metrics.predict_size.observe(len(names))
        return out

    def close(self) -> None:
        self._infer.shutdown(wait=False, cancel_futures=True)
        self._load.shutdown(wait=False, cancel_futures=True)
