"""``--wait-verdicts``: block until the workers have written a verdict for every replayed name.

Only scorable names (kind ``domain``) are awaited: workers never score reverse, bare or invalid
names (SPEC §1.1), so waiting for them would never end. The check reads Redis in batches
through ``VerdictCache.get_verdicts`` and forgets names as they arrive, so each round asks only
for what is still missing.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable

BATCH = 5_000


def wait_for_verdicts(names: Iterable[str], cache: Any, timeout_s: float, poll_s: float = 0.5,
                      on_progress: Callable[[int, int], None] | None = None) -> set[str]:
    """Wait until every name has a verdict; returns the names still missing at the timeout."""
    missing = set(names)
    total = len(missing)
    deadline = time.monotonic() + timeout_s
    while missing:
        pending = list(missing)
        for i in range(0, len(pending), BATCH):
            chunk = pending[i : i + BATCH]
            found = cache.get_verdicts(chunk)
            missing.difference_update(found)
        if on_progress is not None:
            on_progress(total - len(missing), total)
        if not missing or time.monotonic() >= deadline:
            break
        time.sleep(poll_s)
    return missing
