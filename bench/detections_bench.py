"""Behaviour detections: cost per event, and alerts on clients that are not infected.

Usage::

    .venv/bin/python bench/detections_bench.py [--minutes 30] [--rate 2000] [--clients 500]

Traffic is the load generator's model (``producers/loadgen.py``: Zipf-popular benign names
from the shipped corpus, 2% of clients "infected" with DGA and phishing names and a
random-subdomain flood), stamped at ``--rate`` events/s of event time for ``--minutes``. Each
distinct name gets the current model's real decision (label and calibrated score) once, as
the worker would; NXDOMAIN is what a resolver would answer: DGA names and the flood's random
names do not resolve, corpus benign and phishing names do. Both detection stages then run
in-process (no Kafka), so the numbers are the detections' own:

- **cost**: microseconds per event of stage 1 (every query) and stage 2 (signals only);
- **false alerts**: alerts on clients outside the infected set, and how many infected
  clients were found, per hour of traffic (the replayed home-lab capture is measured with
  the real worker, see docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from benchlib import machine, record  # noqa: E402  (bench/ is on sys.path when run as a script)

BENCH = "detections"


def _traffic(minutes: float, rate: float, clients: int, seed: int):
    from dnsentinel.producers.loadgen import Mix, TrafficModel

    model = TrafficModel(Mix(dga=0.02, phishing=0.01, flood=0.01), clients=clients, names="corpus", seed=seed)
    total = int(minutes * 60 * rate)
    t0 = 1_795_392_000_000
    rows = [(t0 + int(i * 1000 / rate), n, q, c) for i, (n, q, c) in enumerate(model.draw(total))]
    return rows, set(model.infected), set(model._dga), set(model.victims)


def _decide(names: list[str]):
    """Each name's (score, label) from the current model, and its popularity prior (as the worker has them)."""
    from dnsentinel.models import load
    from dnsentinel.models.detector import Detector

    detector = Detector.of(load())
    decided = detector.decide(names)
    return {n: (float(s), str(lb)) for n, s, lb in zip(names, decided.scores, decided.labels)}, detector.prior


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=2000.0, help="events per second of event time")
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="5 minutes of traffic")
    args = parser.parse_args()
    minutes = 5.0 if args.quick else args.minutes

    from dnsentinel.settings import get_settings
    from dnsentinel.stream_processor.detections import engine, rules
    from dnsentinel.verdict_cache.names import InvalidName, normalize, unscored_reason

    rows, infected, dga, victims = _traffic(minutes, args.rate, args.clients, args.seed)
    names = {}
    for _, n, _, _ in rows:
        if n not in names:
            try:
                names[n] = normalize(n)
            except InvalidName:
                names[n] = None
    decided, prior = _decide([n for n, nm in names.items() if nm is not None and unscored_reason(nm) is None])
    cfg = get_settings().detections
    rs = rules.load()
    clock = [0.0]
    domains = engine.DomainStage(cfg, rs, prior.vouches_for, clock=lambda: clock[0])
    clients = engine.ClientStage(cfg, rs, clock=lambda: clock[0])
    flood = {f".{v}" for v in victims}
    signals = []
    t = time.perf_counter()
    for ts, n, q, c in rows:
        nm = names[n]
        if nm is None:
            continue
        score, label = decided.get(nm.name, (None, None))
        nx = n in dga or any(n.endswith(v) for v in flood)
        sig = domains.observe(ts, c, nm.name, nm.registrable or nm.name, q, nx, score is not None, score, label,
                              resolved=not nx)
        if sig is not None:
            signals.append(sig)
    stage1 = time.perf_counter() - t
    t = time.perf_counter()
    for sig in signals:
        clients.on_signal(sig)
    stage2 = time.perf_counter() - t
    clock[0] = 1e9  # the end of the stream: every window closes
    alerts = list({a.id: a for a in [a.alert for a in clients.close()] + domains.close()}.values())  # episodes
    hours = minutes / 60
    on_clean = list({a.id: a for a in alerts if a.client and a.client not in infected and a.kind != "tunnel"}.values())
    rate_of = Counter(c for _, _, _, c in rows)
    found = {a.client for a in alerts if a.client in infected}
    kinds = Counter(a.kind for a in alerts)
    print(f"{len(rows):,} events, {len(signals):,} signals, {len(alerts)} alerts {dict(kinds)}; "
          f"{len(on_clean)} on clean clients, {len(found)}/{len(infected)} infected clients found ({machine()})")
    for a in on_clean[:10]:
        print(f"  FALSE? {a.kind} {a.client} ({rate_of[a.client] / (minutes * 60):.0f} q/s): {a.summary}")
    cfg_txt = f"loadgen mix, {args.clients} clients, {args.rate:.0f} ev/s x {minutes:.0f} min event time"
    record(BENCH, "stage 1 (every query)", 1e6 * stage1 / len(rows), "us/event", higher_is_better=False, config=cfg_txt)
    record(BENCH, "stage 2 (signals)", 1e6 * stage2 / max(1, len(rows)), "us/event", higher_is_better=False,
           config=f"{len(signals):,} signals for {len(rows):,} events")
    record(BENCH, "alert episodes on clean clients", len(on_clean) / hours, "per hour", higher_is_better=False,
           config=f"{cfg_txt}; {len({a.client for a in on_clean})} of {args.clients - len(infected)} clean clients")
    record(BENCH, "infected clients alerted", 100 * len(found) / len(infected), "%", config=cfg_txt)


if __name__ == "__main__":
    main()
