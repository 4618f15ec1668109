"""Device selection (models/device.py): what ``scoring.*`` settings decide, on any machine.

The same decisions a GPU run takes are made here with the GPU count passed in, so the CPU
machine covers the code path; bench/gpu.sh measures it on a real GPU.
"""

from __future__ import annotations

import pytest

from dnsentinel.errors import ConfigError
from dnsentinel.models import device
from dnsentinel.settings import ScoringSettings, Settings


@pytest.mark.parametrize(("wanted", "gpus", "expected"), [
    ("auto", 0, ("cpu", 0)), ("auto", 2, ("gpu", 0)), ("cpu", 2, ("cpu", 0)),
    ("gpu", 1, ("gpu", 0)), ("gpu:1", 2, ("gpu", 1)),
])
def test_device_choice(wanted, gpus, expected):
    assert device.choose(wanted, gpus) == expected


@pytest.mark.parametrize(("wanted", "gpus"), [("gpu", 0), ("gpu:2", 2)])
def test_asking_for_a_missing_gpu_names_the_setting(wanted, gpus):
    with pytest.raises(ConfigError, match="scoring.device"):
        device.choose(wanted, gpus)


def test_placement_sizes_batches_and_mixed_precision_for_the_device():
    auto = ScoringSettings()
    cpu, gpu = device.placement(auto, "cpu"), device.placement(auto, "gpu")
    assert (cpu.name, cpu.batch_size, cpu.mixed_precision) == ("/CPU:0", device.CPU_BATCH, False)
    assert (gpu.name, gpu.batch_size, gpu.mixed_precision, gpu.forced) == ("/GPU:0", device.GPU_BATCH, True, False)
    assert device.placement(ScoringSettings(mixed_precision="off"), "gpu").mixed_precision is False
    forced = device.placement(ScoringSettings(mixed_precision="on", batch_size=500), "cpu")
    assert forced.mixed_precision and forced.forced and forced.batch_size == 500


def test_scoring_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("DNSENTINEL_SCORING__DEVICE", "gpu:1")
    monkeypatch.setenv("DNSENTINEL_SCORING__BACKEND", "onnx")
    s = Settings().scoring
    assert (s.device, s.backend, s.memory_growth) == ("gpu:1", "onnx", True)
    monkeypatch.setenv("DNSENTINEL_SCORING__DEVICE", "tpu")
    with pytest.raises(Exception, match="device"):
        Settings()


def test_configure_on_this_machine_and_the_worker_backend():
    placed = device.configure(ScoringSettings(device="auto"))
    import tensorflow as tf

    assert placed.kind == ("gpu" if tf.config.get_visible_devices("GPU") else "cpu")
    assert device.for_worker(device.placement(ScoringSettings(backend="tensorflow"), "cpu")).backend == "tensorflow"
    worker = device.for_worker(placed)
    import importlib.util

    has_onnx = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("tf2onnx") is not None
    assert worker.backend == ("onnx" if has_onnx else "tensorflow")
