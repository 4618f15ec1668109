"""WHOIS for the domain page: bounded in time, every failure a readable message.

python-whois blocks on a TCP connection to registry servers (none reachable on
an isolated network), so the lookup runs in a worker thread and is abandoned
after the timeout instead of freezing the page.
"""

from __future__ import annotations

import concurrent.futures as cf
from dataclasses import dataclass
from typing import Any

_POOL = cf.ThreadPoolExecutor(max_workers=2, thread_name_prefix="whois")
FIELDS = ("domain_name", "registrar", "creation_date", "updated_date", "expiration_date",
          "name_servers", "status", "org", "country", "emails")


@dataclass(frozen=True)
class WhoisResult:
    ok: bool
    fields: dict[str, str]
    error: str | None = None


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple, set)):
        return ", ".join(sorted({str(v) for v in value}))
    return "" if value is None else str(value)


def _query(domain: str) -> dict[str, Any]:
    import whois  # python-whois; imported lazily (it reads its TLD table at import)

    return dict(whois.whois(domain))


def lookup(domain: str, timeout_s: float, query=_query) -> WhoisResult:
    """WHOIS of a registrable domain; never raises."""
    future = _POOL.submit(query, domain)
    try:
        raw = future.result(timeout=timeout_s)
    except cf.TimeoutError:
        return WhoisResult(False, {}, f"WHOIS for {domain} timed out after {timeout_s:g} s (no answer from the registry)")
    except Exception as exc:
        return WhoisResult(False, {}, f"WHOIS for {domain} failed: {type(exc).__name__}: {exc}".strip())
    fields = {k: _text(raw.get(k)) for k in FIELDS if raw.get(k)}
    if not fields:
        return WhoisResult(False, {}, f"WHOIS for {domain} returned no record")
    return WhoisResult(True, fields)
