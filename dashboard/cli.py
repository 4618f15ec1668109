"""``dnsentinel dashboard``: run the Streamlit app headless, telemetry off."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

APP = Path(__file__).resolve().parent / "app.py"


def streamlit_argv(port: int, address: str) -> list[str]:
    """The ``streamlit run`` command line (headless, no usage stats, no file watcher)."""
    return [sys.executable, "-m", "streamlit", "run", str(APP),
            "--server.headless", "true", "--server.port", str(port), "--server.address", address,
            "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
            "--global.developmentMode", "false", "--client.toolbarMode", "minimal"]


def register(app: typer.Typer) -> None:
    @app.command("dashboard")
    def dashboard(
        port: Annotated[Optional[int], typer.Option(help="Port to listen on (default: dashboard.port).")] = None,
        address: Annotated[Optional[str], typer.Option(help="Address to bind (default: dashboard.address).")] = None,
    ) -> None:
        """Run the analysts' dashboard.

        Examples: [bold]dnsentinel dashboard[/] · [bold]dnsentinel dashboard --port 8600 --address 0.0.0.0[/]
        """
        from dnsentinel.settings import get_settings

        cfg = get_settings().dashboard
        argv = streamlit_argv(port or cfg.port, address or cfg.address)
        typer.echo(f"dashboard on http://{address or cfg.address}:{port or cfg.port}")
        env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
        raise typer.Exit(subprocess.call(argv, env=env))
