"""The detection model: train, evaluate, version and serve a character-level classifier.

Public API (stable; other components and outside scripts depend on it)::

    from dnsentinel.models import load
    m = load()                       # current model of the registry (settings.model.registry_dir)
    m = load("charcnn-20261122-2300")  # a version, or a path to a model directory
    m.predict(["example.com", "xjwqkqz.biz"])   # numpy float32 P(malicious), same order
    m.thresholds.block, m.thresholds.allow, m.version, m.arch
    m.predict_family(names)          # [(family | None, probability), ...]
    m.explain("xjwqkqz.biz")         # one readable line

Importing this package does not import TensorFlow; :func:`load` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dnsentinel.models.serving import Model

__all__ = ["load"]


def load(name_or_path: Any = None, **kwargs: Any) -> Model:
    """Load a model from the registry (see :func:`dnsentinel.models.serving.load`)."""
    from dnsentinel.models.serving import load as _load

    return _load(name_or_path, **kwargs)
