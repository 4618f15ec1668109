"""Background application processes of the local stack: workers, the dashboard, load.

The services (Kafka, Redis, Elasticsearch, CoreDNS) are run by deploy/ scripts; the Python
applications on top of them are run from here, each detached in its own session with a pid
file under ``<state>/run/apps`` and a log under ``<state>/logs``, so that ``dnsentinel stack
down`` (and Ctrl-C in the demo) can stop every one of them and leave nothing behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from dnsentinel.settings import Settings


@dataclass(frozen=True)
class App:
    """One managed process: a name, its command line and extra environment."""

    name: str
    argv: list[str]
    env: dict[str, str]


def _dirs(settings: Settings) -> tuple[Path, Path]:
    run = settings.stack.state_dir / "run" / "apps"
    logs = settings.stack.state_dir / "logs"
    run.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    return run, logs


def cli_argv(*args: str) -> list[str]:
    """A ``dnsentinel`` command line that runs with this interpreter (works without PATH)."""
    return [sys.executable, "-m", "dnsentinel.cli.main", *args]


def worker_app(settings: Settings, index: int) -> App:
    """Worker ``index`` of the consumer group, with its own web and metrics ports."""
    w = settings.worker
    env = {
        "DNSENTINEL_WORKER__WEB_PORT": str(w.web_port + index),
        "DNSENTINEL_WORKER__METRICS_PORT": str(w.metrics_port + index),
    }
    return App(f"worker-{index + 1}", cli_argv("worker", "--loglevel", "warning"), env)


def dashboard_app(settings: Settings) -> App:
    d = settings.dashboard
    return App("dashboard", cli_argv("dashboard", "--port", str(d.port), "--address", d.address), {})


def pid_of(settings: Settings, name: str) -> int | None:
    """The live pid of a managed app, or None."""
    run, _ = _dirs(settings)
    pidfile = run / f"{name}.pid"
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def start(settings: Settings, app: App) -> int:
    """Start ``app`` unless it already runs; returns its pid."""
    pid = pid_of(settings, app.name)
    if pid is not None:
        return pid
    run, logs = _dirs(settings)
    log = open(logs / f"{app.name}.log", "ab")
    proc = subprocess.Popen(
        app.argv,
        env=os.environ | app.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # immune to the terminal's Ctrl-C; we stop it ourselves
    )
    (run / f"{app.name}.pid").write_text(str(proc.pid))
    return proc.pid


def running(settings: Settings) -> dict[str, int]:
    """Managed apps that are alive, by name."""
    run, _ = _dirs(settings)
    alive = {}
    for pidfile in sorted(run.glob("*.pid")):
        pid = pid_of(settings, pidfile.stem)
        if pid is not None:
            alive[pidfile.stem] = pid
    return alive


def stop_all(settings: Settings, timeout_s: float = 20.0, only: set[str] | None = None) -> list[str]:
    """Stop every managed app, or those named in ``only`` (TERM to the group, then KILL)."""
    run, _ = _dirs(settings)
    targets = {n: p for n, p in running(settings).items() if only is None or n in only}
    for pid in targets.values():
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(_alive(p) for p in targets.values()):
        time.sleep(0.2)
    for pid in targets.values():
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)
    for name in targets:
        (run / f"{name}.pid").unlink(missing_ok=True)
    return list(targets)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie child of ours counts as gone
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except OSError:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
