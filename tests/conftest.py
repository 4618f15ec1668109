"""Session-wide fixtures shared by every component's tests.

``stack`` brings the real local stack up once per test session through the
same code path as ``dnsentinel stack up`` (deploy/ scripts via
dnsentinel.cli.stackctl) and yields the Settings. It never skips: a service
that cannot start fails every test that needs it, loudly, with the service's
own error and hint. It leaves the stack running afterwards: it is shared with
teammates' sessions and the next run starts instantly.

The first ``up`` on a fresh machine (downloads, the CoreDNS build, JVM
starts on 2 busy cores) can take longer than pytest-timeout's per-test limit,
so it runs right after collection, outside any test, when some collected
test uses ``stack``; the fixture then only confirms (a fast, idempotent ``up``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from dnsentinel.errors import DnsentinelError
from dnsentinel.settings import Settings, get_settings

_early: dict[str, str] = {}


def _bring_up() -> str | None:
    """Start the stack; the failure message, or None when every service is healthy."""
    from dnsentinel.cli import stackctl

    settings = get_settings()
    try:
        stackctl.up(settings)
    except DnsentinelError as exc:
        return f"the local stack could not start: {exc}"
    sick = [f"{r.name}: {r.state} {r.detail}" for r in stackctl.status(settings) if not r.healthy]
    if sick:
        return "the local stack is not healthy after `up`: " + "; ".join(sick)
    return None


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly or not any("stack" in getattr(i, "fixturenames", ()) for i in session.items):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    started = time.monotonic()
    if reporter:
        reporter.write_line("dnsentinel: bringing the local stack up (dnsentinel stack up)...")
    err = _bring_up()
    if err:
        _early["error"] = err
    if reporter:
        reporter.write_line(f"dnsentinel: stack {'FAILED' if err else 'up'} after {time.monotonic() - started:.0f}s")


@pytest.fixture(scope="session")
def stack() -> Iterator[Settings]:
    err = _early.get("error") or _bring_up()
    if err:
        pytest.fail(err, pytrace=False)
    yield get_settings()
