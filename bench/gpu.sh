#!/usr/bin/env bash
# One-shot GPU benchmark (issue 18): run it on a machine with an NVIDIA GPU, from the repository root.
#
#   bash bench/gpu.sh                 # everything (training the shipped recipe takes minutes)
#   GPU_BENCH_TRAIN=0 bash bench/gpu.sh   # inference and worker only
#
# Records, as JSON lines in $OUT/gpu-bench.jsonl (or ./gpu-bench-<time>.jsonl) and on stdout:
#   1. the device (nvidia-smi, what TensorFlow sees) and the placement models/device.py chose;
#   2. inference names/s of the promoted model at 1k / 8k / 64k-name calls, float32 and with the
#      mixed-precision choice scoring.mixed_precision=auto made (and the probe names' score gap);
#   3. the time to train the shipped recipe (--holdout none --epochs 8 --sample-size 560000) into a
#      scratch registry (never promoted), in float32;
#   4. the worker's events/s with the GPU: bench/worker_bench.py against the real stack when Kafka,
#      Redis and Elasticsearch answer here, else its --pipeline-only mode with the real model
#      (in-memory Kafka/Redis/Elasticsearch, so the worker's own code plus GPU inference).
# Not part of `dnsentinel bench` (the file name does not end in _bench): a CPU box would only
# measure its CPU. Copy the numbers into docs/BENCHMARKS.md with the device named.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
if [ -n "${OUT:-}" ]; then DEST="$OUT/gpu-bench"; else DEST="./gpu-bench-$(date -u +%Y%m%dT%H%M%S)"; fi
RESULTS="$DEST.jsonl"
: > "$RESULTS"
export TF_CPP_MIN_LOG_LEVEL=2 DNSENTINEL_SCORING__DEVICE=${DNSENTINEL_SCORING__DEVICE:-gpu}
note() { echo "$1" | tee -a "$RESULTS"; }

if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "no nvidia-smi: this script needs an NVIDIA GPU" >&2
  exit 2
fi
note "$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
  | "$PY" -c 'import json,sys; print(json.dumps({"step": "device", "nvidia_smi": sys.stdin.read().strip()}))')"

# 1-2. inference: float32, then what mixed_precision=auto keeps
"$PY" - <<'EOF' | tee -a "$RESULTS"
import json, random, string, time
import tensorflow as tf
from dnsentinel.models import device, load
from dnsentinel.settings import ScoringSettings

rng = random.Random(5)
names = ["".join(rng.choices(string.ascii_lowercase + string.digits, k=rng.randint(6, 24))) + ".com"
         for _ in range(262_144)]
print(json.dumps({"step": "tensorflow", "gpus": [d.name for d in tf.config.list_physical_devices("GPU")]}))
for mixed in ("off", "auto"):
    s = ScoringSettings(device="gpu", mixed_precision=mixed, batch_size=65_536)
    model = load(placement=device.placement(s, device.choose(s.device, len(tf.config.list_physical_devices("GPU")))[0]))
    for size in (1_000, 8_000, 64_000):
        model.predict(names[:size])  # warm-up: traces this shape bucket
        done, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 5 and done < len(names):
            model.predict(names[done:done + size])
            done += size
        wall = time.perf_counter() - t0
        print(json.dumps({"step": "inference", "model": model.version, "mixed_precision": mixed,
                          "precision": model.precision, "probe_gap": getattr(model, "precision_gap", None),
                          "batch": size, "names_per_s": round(done / wall)}), flush=True)
EOF

# 3. training time of the shipped recipe (scratch registry, never promoted)
if [ "${GPU_BENCH_TRAIN:-1}" = 1 ]; then
  REG=$(mktemp -d)
  start=$(date +%s)
  DNSENTINEL_MODEL__REGISTRY_DIR="$REG" DNSENTINEL_SCORING__MIXED_PRECISION=off .venv/bin/dnsentinel train \
    --holdout none --epochs 8 --sample-size 560000 --promote never --name gpu-bench >"$DEST.train.log" 2>&1
  secs=$(( $(date +%s) - start ))
  note "{\"step\": \"train\", \"recipe\": \"--holdout none --epochs 8 --sample-size 560000\", \"seconds\": $secs, \"cpu_reference_seconds\": 548.9}"
  rm -rf "$REG"
fi

# 4. the worker with the GPU
if "$PY" -c 'import socket,sys
for port in (9092, 6379, 9200):
    socket.create_connection(("127.0.0.1", port), timeout=1).close()' 2>/dev/null; then
  "$PY" bench/worker_bench.py --events 300000 --skip-latency 2>&1 | grep '^{' | tail -1 \
    | "$PY" -c 'import json,sys; print(json.dumps({"step": "worker", "mode": "real stack", **json.loads(sys.stdin.read())}))' \
    | tee -a "$RESULTS"
else
  "$PY" bench/worker_bench.py --pipeline-only --real-model --events 300000 --unseen 0.05 | tail -1 \
    | "$PY" -c 'import json,sys; print(json.dumps({"step": "worker", "mode": "pipeline only, real model", **json.loads(sys.stdin.read())}))' \
    | tee -a "$RESULTS"
fi
echo "results: $RESULTS"
