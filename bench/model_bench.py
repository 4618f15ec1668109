"""Model inference benchmark: batched names/s, load() time, single-name latency.

Usage::

    .venv/bin/python bench/model_bench.py                 # the current model
    .venv/bin/python bench/model_bench.py --model VERSION --names 200000

Names come from the project's own corpus copy (models/data), shuffled, so the
length mix is realistic. Prints numbers only (targets are checked by reading
them, not by asserting): >= 50,000 names/s batched on 2 CPU cores, load()
<= 3 s after TensorFlow is imported, single-name predict <= 5 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

def _names(count: int, seed: int) -> list[str]:
    from dnsentinel.models import dataset

    frame = dataset.load_corpus()
    return frame["domain"].sample(n=min(count, len(frame)), random_state=seed).tolist()


from benchlib import machine, record  # noqa: E402  (bench/ is on sys.path when run as a script)

BENCH = "model"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="version or model directory (default: current)")
    parser.add_argument("--names", type=int, default=200_000)
    parser.add_argument("--batch-sizes", default="1,64,1000,10000,100000")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per batch size")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()}  cpus: {os.cpu_count()}")
    t0 = time.perf_counter()
    import tensorflow as tf

    t_import = time.perf_counter() - t0
    from dnsentinel.models import load

    t1 = time.perf_counter()
    model = load(args.model)
    t_load = time.perf_counter() - t1
    gpus = tf.config.list_physical_devices("GPU")
    print(f"model {model.version} ({model.arch}); devices: {'GPU ' + str(len(gpus)) if gpus else 'CPU only'}")
    print(f"import tensorflow: {t_import:.2f} s; load(): {t_load:.2f} s (target <= 3 s)")
    device = f"GPU x{len(gpus)}" if gpus else "CPU"
    record(BENCH, "load() after TensorFlow import", t_load, "s", target=3.0, higher_is_better=False,
           config=f"{model.version}; {device}; {machine()}")

    names = _names(args.names, args.seed)
    mean_len = statistics.mean(len(n) for n in names)
    print(f"{len(names)} corpus names, mean length {mean_len:.1f}")

    latencies = []
    cpu0 = time.process_time()
    for name in names[:500]:
        t = time.perf_counter()
        model.predict([name])
        latencies.append((time.perf_counter() - t) * 1000)
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[int(len(latencies) * 0.99)]
    cpu_ms = (time.process_time() - cpu0) * 1000 / len(latencies)
    print(f"single-name predict: p50 {p50:.2f} ms, p99 {p99:.2f} ms, {cpu_ms:.2f} CPU-ms each (target <= 5 ms)")
    record(BENCH, "single-name predict, p50", p50, "ms", target=5.0, higher_is_better=False,
           config=f"{model.version}; {device}; p99 {p99:.2f} ms; {machine()}")

    for size in (int(s) for s in args.batch_sizes.split(",")):
        done, start, offset, cpu0 = 0, time.perf_counter(), 0, time.process_time()
        while time.perf_counter() - start < args.seconds:
            batch = names[offset : offset + size]
            if len(batch) < size:
                offset, batch = 0, names[:size]
            model.predict(batch)
            done += len(batch)
            offset += size
        rate = done / (time.perf_counter() - start)
        per_cpu = done / max(time.process_time() - cpu0, 1e-9)
        # On a shared machine wall-clock rates mostly measure the neighbours; names per CPU-second
        # times the core count is what the 2 cores would do if they were ours alone.
        print(
            f"batch {size:>7}: {rate:>10,.0f} names/s wall (incl. encoding); "
            f"{per_cpu:>9,.0f} names per CPU-second -> {per_cpu * (os.cpu_count() or 1):>9,.0f}/s on idle cores"
        )
        if size == max(int(s) for s in args.batch_sizes.split(",")):
            record(BENCH, f"batched predict, batch {size:,}", rate, "names/s", target=50_000,
                   config=f"{model.version}; {device}; {per_cpu:,.0f} names per CPU-second; {machine()}")
    _whole_decision(model, names, device)
    print(f"load average after: {os.getloadavg()}")


def _whole_decision(model, names: list[str], device: str, chunk: int = 50_000) -> None:
    """Names/s of ``Detector.decide``: normalization, scope, prior, calibrated model, thresholds.

    Two mixes: the corpus as it is (its benign names are all on the prior's ranking, so the
    model is spared for them, as on real traffic), and only names the prior does not know
    (every one goes through the model: the worst case). Each name is decided once, so the
    normalization caches help no more than on a stream of new names.
    """
    from dnsentinel.models.detector import Detector

    detector = Detector.of(model)
    unknown = [n for n, r in zip(names, _registrables(names), strict=True) if not detector.prior.vouches_for(r)]
    for label, mix in (("corpus mix", names), ("none on the ranking", unknown)):
        start, cpu0, judged = time.perf_counter(), time.process_time(), 0
        for i in range(0, len(mix), chunk):
            decided = detector.decide(mix[i : i + chunk])
            judged += sum(r == "model" for r in decided.reasons)
        rate = len(mix) / (time.perf_counter() - start)
        per_cpu = len(mix) / max(time.process_time() - cpu0, 1e-9)
        print(f"whole decision, {label}: {rate:,.0f} names/s wall, {per_cpu:,.0f} per CPU-second, "
              f"{judged / max(len(mix), 1):.0%} judged by the model")
        record(BENCH, f"whole decision ({label}), batch {chunk:,}", rate, "names/s", target=50_000,
               config=f"{model.version}; {device}; {judged / max(len(mix), 1):.0%} reach the model; "
                      f"{per_cpu:,.0f} names per CPU-second; {machine()}")


def _registrables(names: list[str]) -> list[str | None]:
    from dnsentinel.models.prior import registrable_of

    return registrable_of(names)

if __name__ == "__main__":
    main()
