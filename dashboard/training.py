"""Training as a background job that outlives the page and the Streamlit process.

The dashboard never trains in its own process: it starts ``dnsentinel train
… --name NAME`` detached (own session, no stdin, output to a log file), records
who started it in a small job file, and reads progress from the files the
trainer writes into the model directory (``status.json``, ``history.jsonl``).
A page reload, or a restart of the dashboard, finds the job again from those
files.

How big a run may be depends on who starts it: :func:`start` takes the starter's
``TrainingCap`` (``dashboard.training_caps``, per role) and refuses a run over it, or one
more run while the cap's number of jobs is already running.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from dnsentinel.settings import TrainingCap

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
JOBS_DIR = ".jobs"


@dataclass(frozen=True)
class JobRequest:
    """The form of the Models page, validated before anything starts."""

    name: str
    arch: str = "charcnn"
    epochs: int = 5
    batch_size: int = 512
    sample_size: int = 200_000
    include_vetted: bool = True
    hold_out_families: bool = False
    """An evaluation run (9 DGA families kept out, see models/dataset.py) rather than a model to ship."""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"model name {self.name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        for field, low, high in (("epochs", 1, 500), ("batch_size", 8, 65536), ("sample_size", 100, 50_000_000)):
            value = getattr(self, field)
            if not low <= value <= high:
                raise ValueError(f"{field.replace('_', ' ')} {value} is outside {low}-{high}")

    def argv(self) -> list[str]:
        """The ``dnsentinel train`` command line (the models teammate's CLI)."""
        return [sys.executable, "-m", "dnsentinel.cli.main", "train",
                "--arch", self.arch, "--epochs", str(self.epochs), "--batch-size", str(self.batch_size),
                "--sample-size", str(self.sample_size),
                "--include-vetted" if self.include_vetted else "--no-include-vetted",
                "--holdout", "default" if self.hold_out_families else "none",
                "--name", self.name]


@dataclass(frozen=True)
class Job:
    name: str
    pid: int
    by: str
    started_at: float
    argv: list[str]
    log: str


@dataclass(frozen=True)
class Progress:
    """What the trainer has written so far; ``state`` is running/done/failed, or died/starting."""

    state: str
    status: dict
    history: list[dict]
    log_tail: str


def model_dir(registry: Path, name: str) -> Path:
    return registry / name


def _jobs(registry: Path) -> Path:
    return registry / JOBS_DIR


def check_cap(request: JobRequest, cap: TrainingCap, running_jobs: int) -> None:
    """Raise ValueError (shown on the page as is) when ``request`` is over ``cap``."""
    for what, asked, most in (("epochs", request.epochs, cap.max_epochs),
                              ("sample size", request.sample_size, cap.max_sample_size)):
        if asked > most:
            raise ValueError(f"{what} {asked:,} is over your role's cap of {most:,} (dashboard.training_caps)")
    if running_jobs >= cap.max_concurrent_jobs:
        raise ValueError(f"{running_jobs} training job(s) already running; your role's cap is "
                         f"{cap.max_concurrent_jobs} at a time: wait for one to finish")


def running(registry: Path) -> list[Job]:
    """Jobs whose trainer is still at work."""
    return [j for j in jobs(registry) if progress(registry, j).state in ("running", "starting")]


def start(registry: Path, request: JobRequest, by: str, env: dict[str, str] | None = None,
          cap: TrainingCap | None = None) -> Job:
    """Launch the trainer detached from this process; refuses a name in use and a run over ``cap``."""
    if cap is not None:
        check_cap(request, cap, len(running(registry)))
    if model_dir(registry, request.name).exists() or (_jobs(registry) / f"{request.name}.json").exists():
        raise ValueError(f"a model or job named {request.name!r} already exists; pick another name")
    _jobs(registry).mkdir(parents=True, exist_ok=True)
    log = _jobs(registry) / f"{request.name}.log"
    argv = request.argv()
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, env={**os.environ, **(env or {})})
    job = Job(request.name, proc.pid, by, time.time(), argv, str(log))
    (_jobs(registry) / f"{request.name}.json").write_text(json.dumps(asdict(job)))
    return job


def jobs(registry: Path) -> list[Job]:
    """Every job the dashboard started, newest first (unreadable job files are skipped)."""
    found = []
    for path in _jobs(registry).glob("*.json"):
        try:
            found.append(Job(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            continue
    return sorted(found, key=lambda j: j.started_at, reverse=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child (started by this very process and not yet reaped) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def read_history(path: Path) -> list[dict]:
    """Per-epoch metrics; a half-written last line (the trainer is appending) is skipped."""
    rows = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _tail(path: str, limit: int = 4000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def progress(registry: Path, job: Job) -> Progress:
    mdir = model_dir(registry, job.name)
    try:
        status = json.loads((mdir / "status.json").read_text())
    except (OSError, ValueError):
        status = {}
    state = str(status.get("state") or status.get("status") or "")
    alive = _alive(job.pid)
    if state not in ("done", "failed"):
        if not alive:
            state = "died"  # exited without writing a final status: show its log
        elif not state:
            state = "starting"
    return Progress(state, status, read_history(mdir / "history.jsonl"), _tail(job.log))
