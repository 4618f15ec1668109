"""``dnsentinel bench``: run every benchmark in bench/, print one table, rewrite the summary.

Each ``bench/*_bench.py`` (or ``*_bench.sh``) script reports its headline numbers through
``bench/benchlib.record``; this runner collects them from the file named by
``DNSENTINEL_BENCH_OUT`` so that a script stays a plain program you can also run by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from dnsentinel.settings import REPO_ROOT

BENCH_DIR = REPO_ROOT / "bench"
DOC = REPO_ROOT / "docs" / "BENCHMARKS.md"
RESULTS = REPO_ROOT / "docs" / "benchmarks.json"
"""The latest row per (bench, metric): a partial run (--only) updates its rows, keeps the rest."""
START, END = "<!-- summary:start -->", "<!-- summary:end -->"

console = Console()


def _scripts(only: list[str]) -> list[Path]:
    found = sorted(p for p in BENCH_DIR.glob("*_bench.*") if p.suffix in {".py", ".sh"})
    if only:
        found = [p for p in found if any(o in p.stem for o in only)]
    return found


def _run(script: Path, out: Path, quick: bool) -> tuple[int, float]:
    env = os.environ | {"DNSENTINEL_BENCH_OUT": str(out)}
    if quick:
        env["DNSENTINEL_BENCH_QUICK"] = "1"
    cmd = [sys.executable, str(script)] if script.suffix == ".py" else ["bash", str(script)]
    started = time.monotonic()
    rc = subprocess.call(cmd, cwd=REPO_ROOT, env=env)
    return rc, time.monotonic() - started


def _table(rows: list[dict]) -> Table:
    table = Table(title="dnsentinel benchmarks")
    for col in ("bench", "metric", "value", "target", "result", "config"):
        table.add_column(col, overflow="fold")
    for r in rows:
        op = ">=" if r["higher_is_better"] else "<="
        target = f"{op} {_num(r['target'])} {r['unit']}" if r["target"] is not None else ""
        table.add_row(r["bench"], r["metric"], f"{_num(r['value'])} {r['unit']}", target, _verdict(r), _config(r))
    return table


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _config(r: dict) -> str:
    """The row's configuration without the machine facts (they have a column of their own)."""
    machine = r.get("machine", "")
    return r["config"].replace(f"; {machine}", "").replace(machine, "").strip("; ,")


def _verdict(r: dict) -> str:
    if r["target"] is None:
        return ""
    ok = r["value"] >= r["target"] if r["higher_is_better"] else r["value"] <= r["target"]
    if ok:
        return "met"
    gap = (r["target"] - r["value"]) if r["higher_is_better"] else (r["value"] - r["target"])
    return f"missed by {100 * gap / r['target']:.0f}%"


def _markdown(rows: list[dict]) -> str:
    lines = [
        START,
        "## Summary (written by `dnsentinel bench`)",
        "",
        "| bench | metric | value | target | result | configuration | machine | when |",
        "|---|---|---:|---|---|---|---|---|",
    ]
    for r in rows:
        op = "≥" if r["higher_is_better"] else "≤"
        target = f"{op} {_num(r['target'])} {r['unit']}" if r["target"] is not None else ""
        lines.append(
            f"| {r['bench']} | {r['metric']} | {_num(r['value'])} {r['unit']} | {target} | {_verdict(r)} "
            f"| {_config(r)} | {r['machine']} | {r['at']} |"
        )
    lines.append(END)
    return "\n".join(lines)


def _merge(rows: list[dict]) -> list[dict]:
    """Fold this run's rows into the stored latest rows; returns them all, ordered."""
    latest = {(r["bench"], r["metric"]): r for r in json.loads(RESULTS.read_text())} if RESULTS.exists() else {}
    for r in rows:
        latest[(r["bench"], r["metric"])] = r
    merged = sorted(latest.values(), key=lambda r: r["bench"])
    RESULTS.write_text(json.dumps(merged, indent=1) + "\n", encoding="utf-8")
    return merged


def _rewrite_doc(rows: list[dict]) -> None:
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n"
    block = _markdown(rows)
    if START in text and END in text:
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        title, _, body = text.partition("\n")
        text = f"{title}\n\n{block}\n{body}"
    DOC.write_text(text, encoding="utf-8")


def bench(
    only: list[str] = typer.Option([], "--only", "-o", help="Run only scripts whose name contains this (repeatable)."),
    quick: bool = typer.Option(False, help="Smaller workloads (sets DNSENTINEL_BENCH_QUICK=1)."),
    write: bool = typer.Option(True, help="Rewrite the summary table in docs/BENCHMARKS.md."),
) -> None:
    """Run the benchmarks in bench/ against the running stack and print one table.

    Examples:\n
      dnsentinel bench                 # everything, rewrites docs/BENCHMARKS.md\n
      dnsentinel bench -o model -o replay --no-write
    """
    scripts = _scripts(only)
    if not scripts:
        raise typer.BadParameter(f"no benchmark in {BENCH_DIR} matches {only}")
    failed: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.jsonl"
        out.touch()
        for script in scripts:
            console.rule(f"[bold]{script.name}")
            rc, took = _run(script, out, quick)
            console.print(f"{script.name}: exit {rc} after {took:.0f} s")
            if rc != 0:
                failed.append(script.name)
        rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    console.print(_table(rows))
    if write and rows:
        rows = _merge(rows)
        _rewrite_doc(rows)
        console.print(f"summary written to {DOC}")
    if failed:
        console.print(f"[red]failed:[/] {', '.join(failed)}")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
