"""How the analysts' commands (``dnsentinel report``, ``dnsentinel alerts``) read times and print rows.

One format switch (table for people, CSV for spreadsheets, JSON for scripts), one way to read
``--since``/``--until`` and one way to write a time, so the commands agree with each other.
Heavy imports (rich, csv, json) happen when a command prints, keeping the CLI's start fast.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from contextlib import contextmanager
from enum import Enum
from typing import Any, Callable, Iterator, Sequence


class OutputFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


def iso_utc(ms: int) -> str:
    """Epoch milliseconds as ISO 8601 UTC to the second (what JSON and CSV rows carry)."""
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).isoformat(timespec="seconds")


def table_time(iso: str) -> str:
    """An :func:`iso_utc` time as a table shows it (``2025-11-20 09:00:00``, UTC)."""
    return iso[:19].replace("T", " ")


def parse_when(text: str | None) -> int | None:
    """``--since``/``--until``: ISO 8601 (UTC unless a zone is given), epoch s/ms/µs, or ``2h``/``3d`` ago."""
    if text is None:
        return None
    t = text.strip()
    units = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    if len(t) >= 2 and t[-1] in units and t[:-1].isdigit():
        return int((time.time() - int(t[:-1]) * units[t[-1]]) * 1000)
    try:
        num = float(t)
    except ValueError:
        when = dt.datetime.fromisoformat(t)  # raises ValueError for anything else
        return int((when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)).timestamp() * 1000)
    if not math.isfinite(num):
        raise ValueError(f"{t!r} is not a time")
    # epoch seconds, milliseconds or microseconds: their magnitudes do not overlap for real dates
    return int(num / 1000) if num > 1e14 else int(num) if num > 1e11 else int(num * 1000)


def emit(rows: Sequence[dict[str, Any]], out: OutputFormat, csv_columns: Sequence[str],
         print_table: Callable[[], None]) -> None:
    """Print ``rows`` as JSON (every field) or CSV (``csv_columns``), or call ``print_table``."""
    import sys

    if out is OutputFormat.json:
        import json

        json.dump(list(rows), sys.stdout, indent=1)
        sys.stdout.write("\n")
    elif out is OutputFormat.csv:
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=list(csv_columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    else:
        print_table()


@contextmanager
def elasticsearch_errors() -> Iterator[None]:
    """An unreachable Elasticsearch becomes the CLI's one-line :class:`ServiceUnavailable`."""
    from dnsentinel.errors import ServiceUnavailable

    try:
        yield
    except Exception as exc:
        if type(exc).__name__ in ("ConnectionError", "ConnectionTimeout"):
            raise ServiceUnavailable(f"Elasticsearch unreachable: {exc}") from exc
        raise
