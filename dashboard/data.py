"""The pages' only door to the services: cached clients and cached queries.

Clients are ``st.cache_resource`` (one per process); read results are
``st.cache_data`` with short TTLs so a page rerun, several analysts, or the
auto-refresh share one Elasticsearch aggregation. Tests replace ``store``,
``verdict_cache`` and ``registry`` with fakes.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from dnsentinel.settings import get_settings

READ_TTL_S = 30
LIVE_TTL_S = 5


@st.cache_resource(show_spinner=False)
def store():
    """The ES-backed :class:`Store` for the configured index prefix."""
    from elasticsearch import Elasticsearch

    from dnsentinel.dashboard.store import Store

    settings = get_settings()
    es = Elasticsearch(**settings.elasticsearch.client_kwargs()).options(request_timeout=settings.dashboard.query_timeout_s)
    return Store(es, settings.elasticsearch.index_prefix)


@st.cache_resource(show_spinner=False)
def verdict_cache():
    """The Redis verdict cache (vetted lists, live verdicts)."""
    from dnsentinel.verdict_cache.cache import VerdictCache

    return VerdictCache.from_settings(get_settings())


def registry():
    """The models registry module (list, roll back); imported on first use."""
    from dnsentinel.models import registry as reg

    return reg


def gate():
    """The quality-gate module: ``promote(version, force=)`` and its ``GateRefused``; imported on first use."""
    from dnsentinel.models import gate as quality_gate

    return quality_gate


@st.cache_data(ttl=READ_TTL_S, show_spinner=False)
def fetch(method: str, *args: Any, **kwargs: Any) -> Any:
    """``store().<method>(*args)`` cached for half a minute (charts, tables)."""
    return getattr(store(), method)(*args, **kwargs)


@st.cache_data(ttl=LIVE_TTL_S, show_spinner=False)
def fetch_live(method: str, *args: Any, **kwargs: Any) -> Any:
    """Like :func:`fetch` with a few seconds' TTL (the vetting queue after a decision)."""
    return getattr(store(), method)(*args, **kwargs)


def live_verdict(name: str) -> dict:
    """Redis' view of one name: the decision the DNS path takes now, and the cached verdict."""
    cache = verdict_cache()
    verdict = cache.get_verdicts([name]).get(name)
    return {"decision": cache.decide_many([name]).get(name, "unknown"), "verdict": verdict}


def vetted_history(name: str, count: int = 1000) -> list[dict]:
    """Entries of the Redis vetted log for ``name`` or its wildcard entry."""
    wanted = {name, f"*.{name}"}
    return [e for e in verdict_cache().vetted_log(count=count) if e.get("name") in wanted]


@st.cache_resource(show_spinner="Loading the model…")
def model(version: str | None = None):
    """A loaded model (TensorFlow is imported here, only when an explanation is asked for)."""
    from dnsentinel.models import load

    return load(version) if version else load()


class _WhoisFailed(Exception):
    """Carries a failed lookup out of the cache: ``st.cache_data`` keeps no exceptions, so failures are retried."""

    def __init__(self, result: Any) -> None:
        self.result = result


@st.cache_data(ttl=get_settings().dashboard.whois_cache_ttl_s, show_spinner="Asking WHOIS…")
def _whois_ok(domain: str):
    from dnsentinel.dashboard.whois_lookup import lookup

    result = lookup(domain, get_settings().dashboard.whois_timeout_s)
    if not result.ok:
        raise _WhoisFailed(result)
    return result


def whois(domain: str):
    """WHOIS of ``domain``: answers cached for ``whois_cache_ttl_s``, failures not cached."""
    try:
        return _whois_ok(domain)
    except _WhoisFailed as failed:
        return failed.result


def clear() -> None:
    """Drop cached reads (after a write, so the analyst sees it at once)."""
    fetch.clear()
    fetch_live.clear()
