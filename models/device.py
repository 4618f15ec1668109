"""Where and how the network runs: GPU or CPU, memory growth, mixed precision, names per call.

One place reads ``scoring.*`` (settings.py) for the worker, ``dnsentinel score`` and training:

- ``device``: ``auto`` takes the first GPU TensorFlow sees, else the CPU; ``cpu`` hides every
  GPU; ``gpu`` / ``gpu:N`` insists (an error naming the setting when there is none).
- memory growth on the chosen GPU, so a worker takes memory as it needs it and leaves the rest
  to its neighbours (TensorFlow's default maps the whole card at start).
- mixed precision (float16 compute, float32 weights): ``auto`` tries it on a GPU only, and
  :class:`~dnsentinel.models.serving.Model` keeps it only when a probe set's scores stay within
  ``mixed_precision_tolerance`` (1e-3) of float32; ``on`` forces it, ``off`` never.
- names per inference call: 4,096 on a CPU (beyond that the CPU gains nothing and the padding of
  a length-sorted chunk grows), 65,536 on a GPU (a card needs big calls to be busy).

TensorFlow fixes device visibility when it first touches a device, so :func:`configure` runs
before any model is built, once per process; a later call with other settings (a test process
that already ran TensorFlow) keeps what is in place and says so in the log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from dnsentinel.errors import ConfigError

if TYPE_CHECKING:
    from dnsentinel.settings import ScoringSettings

log = logging.getLogger(__name__)

CPU_BATCH = 4096
GPU_BATCH = 65_536
Kind = Literal["cpu", "gpu"]


@dataclass(frozen=True)
class Placement:
    """What :func:`configure` decided: the device, the call size, and whether to try float16."""

    kind: Kind
    name: str
    """TensorFlow's device name, e.g. ``/GPU:0`` (the chosen GPU is the only one left visible)."""
    batch_size: int
    mixed_precision: bool
    """Try float16 compute (the model keeps it only within ``tolerance``, unless ``forced``)."""
    forced: bool
    tolerance: float
    backend: Literal["auto", "tensorflow", "onnx"]
    """``auto`` runs TensorFlow in :class:`~dnsentinel.models.serving.Model`; the worker resolves it
    with :func:`for_worker`."""


def choose(device: str, gpus: int) -> tuple[Kind, int]:
    """``scoring.device`` against the number of GPUs present: (kind, GPU index)."""
    if device == "cpu" or (device == "auto" and gpus == 0):
        return "cpu", 0
    if device == "auto":
        return "gpu", 0
    index = int(device.partition(":")[2] or 0)
    if index >= gpus:
        raise ConfigError(f"scoring.device={device}: TensorFlow sees {gpus} GPU(s); use auto or cpu "
                          "(DNSENTINEL_SCORING__DEVICE)")
    return "gpu", index


def placement(s: ScoringSettings, kind: Kind) -> Placement:
    """The decisions that follow from the settings once the device kind is known (pure: unit-tested)."""
    mixed = s.mixed_precision == "on" or (s.mixed_precision == "auto" and kind == "gpu")
    return Placement(kind=kind, name=f"/{kind.upper()}:0", batch_size=s.batch_size or (GPU_BATCH if kind == "gpu"
                                                                                       else CPU_BATCH),
                     mixed_precision=mixed, forced=s.mixed_precision == "on",
                     tolerance=s.mixed_precision_tolerance, backend=s.backend)


def for_worker(p: Placement) -> Placement:
    """The worker's placement: ``backend=auto`` becomes ``onnx`` when the onnx extra is installed
    (its verdict lane sends calls of a few names, where onnxruntime is several times faster)."""
    if p.backend != "auto":
        return p
    import importlib.util

    found = all(importlib.util.find_spec(m) is not None for m in ("tf2onnx", "onnxruntime"))
    return replace(p, backend="onnx" if found else "tensorflow")


_configured: Placement | None = None


def configure(s: ScoringSettings | None = None) -> Placement:
    """Apply ``scoring.*`` to TensorFlow (device visibility, memory growth) once; the placement."""
    global _configured
    if s is None:
        from dnsentinel.settings import get_settings

        s = get_settings().scoring
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    kind, index = choose(s.device, len(gpus))
    wanted = placement(s, kind)
    if _configured is not None and _configured.kind == kind:
        return wanted
    try:
        if gpus:
            tf.config.set_visible_devices([gpus[index]] if kind == "gpu" else [], "GPU")
        if kind == "gpu" and s.memory_growth:
            tf.config.experimental.set_memory_growth(gpus[index], True)
    except RuntimeError as exc:  # TensorFlow already initialized its devices in this process
        log.warning("scoring.device=%s: TensorFlow's devices are already set up (%s); keeping them", s.device, exc)
        visible = tf.config.get_visible_devices("GPU")
        wanted = placement(s, "gpu" if visible else "cpu")
    _configured = wanted
    log.info("scoring on %s (%s), %d names per call, mixed precision %s, backend %s", wanted.name,
             gpus[index].name if kind == "gpu" else "CPU", wanted.batch_size,
             "tried" if wanted.mixed_precision else "off", wanted.backend)
    return wanted
