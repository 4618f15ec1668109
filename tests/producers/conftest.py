"""Fixtures of the producers tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import LOGS


@pytest.fixture
def logs() -> Path:
    return LOGS
