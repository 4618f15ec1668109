"""Waiting for the real services in integration tests: poll a condition, fail with what was awaited.

On ``sys.path`` through pyproject's ``[tool.pytest.ini_options] pythonpath`` (``tests/lib``), so
test packages import it by name instead of importing one another's conftest.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import pytest


def wait_for(cond: Callable[[], Any], timeout_s: float, what: str, every: float = 0.2) -> Any:
    """Poll ``cond`` until it is truthy and return its value; fail naming ``what`` (and the last
    value) after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(every)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what} (last: {last!r})", pytrace=False)
