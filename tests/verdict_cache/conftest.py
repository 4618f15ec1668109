"""Fixtures of the verdict cache tests: the real Redis under a unique key prefix."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def vc_settings(request: pytest.FixtureRequest) -> Any:
    """Settings of the shared stack (infra's ``stack`` fixture when present, else the defaults)."""
    try:
        stack = request.getfixturevalue("stack")
    except pytest.FixtureLookupError:
        stack = None
    settings = getattr(stack, "settings", None)
    if settings is None:
        from dnsentinel.settings import get_settings

        settings = stack if stack is not None and hasattr(stack, "redis") else get_settings()
    return settings


@pytest.fixture()
def redis_client(vc_settings: Any) -> Iterator[Any]:
    """A client of the real Redis; unreachable Redis fails the test loudly."""
    import redis

    from dnsentinel.redis_client import sync_client

    r = vc_settings.redis
    client = sync_client(r)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {r.url} is unreachable ({exc}); start the stack: dnsentinel stack up")
    yield client
    client.close()


@pytest.fixture()
def cache(redis_client: Any, vc_settings: Any) -> Iterator[Any]:
    """A VerdictCache under a random key prefix, deleted afterwards."""
    from dnsentinel.verdict_cache.cache import VerdictCache

    prefix = f"test-vc-{uuid.uuid4().hex[:10]}"
    yield VerdictCache(redis_client, prefix=prefix)
    doomed = list(redis_client.scan_iter(match=f"{prefix}:*", count=1000))
    for i in range(0, len(doomed), 1000):
        redis_client.delete(*doomed[i : i + 1000])
