"""Fixtures for the dashboard's AppTest unit tests: fakes in place of ES, Redis and the registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from dnsentinel.dashboard import auth, data

from dash_fakes import FakeCache, FakeStore

APP_DIR = Path(data.__file__).resolve().parent


@pytest.fixture
def fakes(monkeypatch, tmp_path):
    store, cache = FakeStore(), FakeCache()
    monkeypatch.setattr(data, "store", lambda: store)
    monkeypatch.setattr(data, "verdict_cache", lambda: cache)
    monkeypatch.setenv("DNSENTINEL_MODEL__REGISTRY_DIR", str(tmp_path / "registry"))
    from dnsentinel.settings import get_settings

    get_settings.cache_clear()
    data.clear()
    yield store, cache
    data.clear()
    get_settings.cache_clear()


def logged_in(at, user: str = "alice", ttl_s: int = 3600):
    """An AppTest whose session is already logged in (as the login form would leave it)."""
    import time

    at.session_state["dnsentinel_auth"] = auth.Session(user, time.time() + ttl_s)
    return at


def page(name: str):
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(APP_DIR / "pages" / f"{name}.py"), default_timeout=30)
