"""Session-wide fixtures shared by every component's tests.

``stack`` brings the real local stack up once per test session through the
same code path as ``dnsentinel stack up`` (deploy/ scripts via
dnsentinel.cli.stackctl) and yields the Settings. It never skips: a service
that cannot start fails every test that needs it, loudly, with the service's
own error and hint. It leaves the stack running afterwards: it is shared with
teammates' sessions and the next run starts instantly.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dnsentinel.errors import DnsentinelError
from dnsentinel.settings import Settings, get_settings


@pytest.fixture(scope="session")
def stack() -> Iterator[Settings]:
    from dnsentinel.cli import stackctl

    settings = get_settings()
    try:
        stackctl.up(settings)
    except DnsentinelError as exc:
        pytest.fail(f"the local stack could not start: {exc}", pytrace=False)
    sick = [f"{r.name}: {r.state} {r.detail}" for r in stackctl.status(settings) if not r.healthy]
    if sick:
        pytest.fail("the local stack is not healthy after `up`: " + "; ".join(sick), pytrace=False)
    yield settings
