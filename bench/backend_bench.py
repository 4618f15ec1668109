"""Scoring backends on the CPU: TensorFlow against onnxruntime, batched, through ``Model.predict``.

Loads the promoted model twice (``scoring.backend`` tensorflow and onnx, models/device.py), checks
the scores agree (max absolute difference), then times ``predict`` over the same random names at
several call sizes: 1-16 names is what the worker's verdict lane sends at 5,000 events/s with 1%
new names, 4,096 is a full chunk (a backlog, ``dnsentinel score --input``). Names per wall second
and per CPU second (the machine is shared: the CPU figure factors the neighbours out).

    .venv/bin/python bench/backend_bench.py [--names 50000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import string
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SIZES = (1, 16, 128, 1024, 4096)


def _names(n: int, seed: int = 3) -> list[str]:
    rng = random.Random(seed)
    tlds = ("com", "net", "org", "io", "de", "co.uk", "info")
    return ["".join(rng.choices(string.ascii_lowercase + string.digits, k=rng.randint(6, 24))) + "." + rng.choice(tlds)
            for _ in range(n)]


def _time(model, names: list[str], size: int, budget_s: float = 4.0) -> dict[str, float]:
    calls = [names[i:i + size] for i in range(0, len(names), size)]
    model.predict(calls[0])  # warm (shapes)
    done = 0
    c0, t0 = time.process_time(), time.perf_counter()
    for call in calls:
        model.predict(call)
        done += len(call)
        if time.perf_counter() - t0 > budget_s:
            break
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"names_per_s": round(done / wall), "names_per_cpu_s": round(done / cpu) if cpu else None,
            "ms_per_call": round(1000 * wall * size / done, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--names", type=int, default=50_000)
    args = ap.parse_args()
    from dnsentinel.models import device, load
    from dnsentinel.settings import ScoringSettings

    names = _names(args.names)
    models = {b: load(placement=device.placement(ScoringSettings(backend=b), "cpu")) for b in ("tensorflow", "onnx")}
    import numpy as np

    diff = float(np.max(np.abs(models["tensorflow"].predict(names[:5000]) - models["onnx"].predict(names[:5000]))))
    out: dict[str, object] = {"model": models["tensorflow"].version, "max_abs_diff": diff, "sizes": {}}
    for size in SIZES:
        out["sizes"][size] = {b: _time(m, names, size) for b, m in models.items()}  # type: ignore[index]
        print(json.dumps({size: out["sizes"][size]}), flush=True)  # type: ignore[index]
    out["loadavg"] = [round(x, 1) for x in os.getloadavg()]
    print(json.dumps(out, indent=2))
    _record(out)


def _record(out: dict) -> None:
    from benchlib import machine, record

    for size, by in out["sizes"].items():
        tf_, ort = by["tensorflow"], by["onnx"]
        record("model", f"onnxruntime / TensorFlow names/s, {size}-name calls (CPU)",
               round(ort["names_per_s"] / tf_["names_per_s"], 2), "x",
               config=f"{out['model']}; TF {tf_['names_per_s']:,}/s ({tf_['ms_per_call']} ms/call), onnxruntime "
                      f"{ort['names_per_s']:,}/s ({ort['ms_per_call']} ms/call); max score diff "
                      f"{out['max_abs_diff']:.1e}; {machine()}")


if __name__ == "__main__":
    main()
