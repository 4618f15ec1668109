"""What every benchmark script shares: machine facts and one way to report a result.

Scripts stay runnable on their own and print what they like; each headline number is also
passed to :func:`record`, which appends a JSON row to the file named by ``DNSENTINEL_BENCH_OUT``
when ``dnsentinel bench`` runs the script. The runner turns those rows into one table and
rewrites the summary at the top of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass


@dataclass
class Result:
    """One headline number; ``target`` is a goal from DESIGN.md when there is one."""

    bench: str
    metric: str
    value: float
    unit: str
    target: float | None = None
    higher_is_better: bool = True
    config: str = ""

    @property
    def verdict(self) -> str:
        if self.target is None:
            return ""
        ok = self.value >= self.target if self.higher_is_better else self.value <= self.target
        if ok:
            return "met"
        if self.higher_is_better:
            return f"missed by {100 * (self.target - self.value) / self.target:.0f}%"
        return f"missed by {100 * (self.value - self.target) / self.target:.0f}%"


def machine() -> str:
    """Cores, memory and load now: numbers taken on a busy 2-core machine must say so."""
    load = os.getloadavg()[0]
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.machine()} {os.cpu_count()} cores {mem_gib:.0f} GiB, load {load:.1f}"


def record(
    bench: str,
    metric: str,
    value: float,
    unit: str,
    *,
    target: float | None = None,
    higher_is_better: bool = True,
    config: str = "",
) -> Result:
    """Print a result line and, under ``dnsentinel bench``, hand it to the runner."""
    result = Result(bench, metric, float(value), unit, target, higher_is_better, config)
    verdict = f" [{result.verdict}]" if result.verdict else ""
    print(f"RESULT {bench}: {metric} = {value:,.3f} {unit}{verdict}  ({config})", flush=True)
    out = os.environ.get("DNSENTINEL_BENCH_OUT")
    if out:
        row = asdict(result) | {"machine": machine(), "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
    return result
