"""The offline decision: what dnsentinel says about a name before any analyst has.

Layers, cheapest first (docs/MODEL.md, "How a name gets its label"):

1. *Not a public DNS name* (a URL, an mDNS service, ``nas.lan``, a reverse name,
   a TLD that does not exist): ``unscored``, with the reason. No verdict, no vetting.
2. *Popularity prior*: a registrable domain on the model's ranking is ``benign``,
   except below open platforms (``x.weebly.com`` is judged).
3. *The model*: its calibrated score against the version's ``block`` / ``allow`` thresholds.

``dnsentinel score`` and the stream worker both call :meth:`Detector.decide`, so the
label a file gets offline is the label the worker writes (vetted decisions, held in
Redis, come on top of it in the worker only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from dnsentinel.models import prior as prior_mod
from dnsentinel.models.serving import Thresholds
from dnsentinel.verdict_cache.names import scope
from dnsentinel.verdict_cache.vocabulary import Label


class Scorer(Protocol):
    """What the detector needs of a model: a version, thresholds and calibrated scores."""

    version: str
    thresholds: Any

    def predict(self, domains: Sequence[object]) -> Any: ...


@dataclass
class Decisions:
    """One row per input name, in input order."""

    names: list[str]
    """The normalized name, or the input text where it is not a DNS name."""
    scores: np.ndarray
    """Calibrated model score; 0.0 where the model did not judge (prior, unscored)."""
    labels: list[Label]
    reasons: list[str]
    """``model``, ``prior`` or ``unscored:<why>`` (vocabulary.UNSCORED_REASONS)."""


class Detector:
    """A model, its thresholds and its popularity prior: one version's whole offline decision."""

    def __init__(self, model: Scorer, prior: prior_mod.Prior = prior_mod.EMPTY) -> None:
        self.model = model
        self.prior = prior
        t = model.thresholds
        self.thresholds = Thresholds(block=float(t.block), allow=float(t.allow))

    @classmethod
    def of(cls, model: Any) -> Detector:
        """The model's detector, with the prior stored beside its weights (none for older versions)."""
        if isinstance(model, Detector):
            return model
        path = getattr(model, "path", None)
        return cls(model, prior_mod.load(path) if path is not None else prior_mod.EMPTY)

    @property
    def version(self) -> str:
        return str(self.model.version)

    def predict_family(self, names: Sequence[str]) -> list[tuple[str | None, float]]:
        fn = getattr(self.model, "predict_family", None)
        return fn(list(names)) if fn is not None else [(None, 0.0)] * len(names)

    def decide(self, raw: Sequence[object]) -> Decisions:
        """Labels for names as they come (log lines, files, analysts' input)."""
        names: list[str] = []
        reasons: list[str | None] = []
        registrable: list[str | None] = []
        for item in raw:
            name, why = scope(item) if isinstance(item, str | bytes) else (None, "not_hostname")
            names.append(name.name if name is not None else (item if isinstance(item, str) else repr(item)))
            reasons.append(None if why is None else f"unscored:{why}")
            registrable.append(name.registrable if name is not None else None)
        return self._decide(names, reasons, registrable)

    def _decide(self, names: list[str], reasons: list[str | None], registrable: list[str | None]) -> Decisions:
        for i, reg in enumerate(registrable):
            if reasons[i] is None and self.prior.vouches_for(reg):
                reasons[i] = "prior"
        todo = [i for i, r in enumerate(reasons) if r is None]
        scores = np.zeros(len(names), dtype=np.float64)
        labels: list[Label] = ["benign" if r == "prior" else "unscored" for r in reasons]  # model rows: below
        if todo:
            scored = np.asarray(self.model.predict([names[i] for i in todo]), dtype=np.float64)
            scores[todo] = scored
            for i, label in zip(todo, self.thresholds.labels(scored), strict=True):
                labels[i] = label
                reasons[i] = "model"
        return Decisions(names, scores, labels, [r or "model" for r in reasons])
