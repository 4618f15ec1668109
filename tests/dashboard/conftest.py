"""Fixtures for the dashboard's AppTest unit tests: fakes in place of ES, Redis and the registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from dnsentinel.dashboard import auth, data, guard
from dnsentinel.dashboard.sessions import Session
from dnsentinel.settings import get_settings

from dash_fakes import FakeCache, FakeStore, MemoryRedis

APP_DIR = Path(data.__file__).resolve().parent


@pytest.fixture
def accounts(monkeypatch, tmp_path):
    """Users, login limits and sessions over an in-memory Redis; the app listens on loopback."""
    monkeypatch.setenv("DNSENTINEL_STACK__STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("DNSENTINEL_DASHBOARD__USERS", "{}")
    get_settings.cache_clear()
    acc = auth.Accounts.from_settings(get_settings(), MemoryRedis())
    acc.users.rounds = 4  # bcrypt's cheapest cost: tests hash many passwords
    monkeypatch.setattr(guard, "accounts", lambda: acc)
    monkeypatch.setattr(guard, "listen_address", lambda: "127.0.0.1")
    return acc


@pytest.fixture
def fakes(monkeypatch, tmp_path, accounts):
    store, cache = FakeStore(), FakeCache()
    monkeypatch.setattr(data, "store", lambda: store)
    monkeypatch.setattr(data, "verdict_cache", lambda: cache)
    monkeypatch.setenv("DNSENTINEL_MODEL__REGISTRY_DIR", str(tmp_path / "registry"))
    get_settings.cache_clear()
    data.clear()
    yield store, cache
    data.clear()
    get_settings.cache_clear()


def logged_in(at, user: str = "alice", ttl_s: int = 3600, role: str = "admin"):
    """An AppTest whose session is already resolved (as ``app.py`` leaves it for the pages)."""
    import time

    at.session_state[auth.SESSION_KEY] = Session(user, time.time() + ttl_s, role)
    return at


def page(name: str):
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(APP_DIR / "pages" / f"{name}.py"), default_timeout=30)
