"""Elasticsearch unreachable: verdicts still reach Redis and DNS; the backlog is indexed once it is back."""

from __future__ import annotations

import pytest

from dnsentinel.cli.demo import dns_answer, is_blocked
from dnsentinel.verdict_cache.es_schema import Q_NAME

from .conftest import rand_label, total, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _pick(fs, label: str, want: int) -> list[str]:
    """Never-seen random names the worker's model gives ``label`` (asked through its /score page)."""
    found: list[str] = []
    for _ in range(5):
        batch = [rand_label(15) + ".com" for _ in range(64)] if label == "malicious" else \
            [f"shop-{rand_label(5)}.com" for _ in range(64)]
        found += [n for n, lb in fs.score(batch).items() if lb == label]
        if len(found) >= want:
            return found[:want]
    pytest.fail(f"the worker's model gave no {label} label to 320 random names", pytrace=False)


def _verdict_docs(es, prefix: str, names: list[str]) -> int:
    es.indices.refresh(index=f"{prefix}-verdicts", ignore_unavailable=True)
    return es.count(index=f"{prefix}-verdicts", query={"terms": {Q_NAME: names}}, ignore_unavailable=True)["count"]


def test_elasticsearch_down_verdicts_still_flow_and_backlog_is_indexed(healthy):
    fs = healthy
    bad = _pick(fs, "malicious", 5)
    good = _pick(fs, "benign", 5)
    names = bad + good
    es = fs.es()
    prefix = fs.settings.elasticsearch.index_prefix
    errors_before = total(fs.worker_metrics(0), "dnsentinel_worker_es_errors_total")

    fs.proxy.cut()
    try:
        cache = fs.cache()
        assert not cache.get_verdicts(names), "fresh names already have verdicts before any query"
        for n in names:  # first queries: events to the worker; answered (a fast verdict may already block)
            rcode, detail = dns_answer(fs.settings, n)
            assert rcode == "NOERROR" or (n in bad and "malicious" in detail), (n, rcode, detail)
        wait_for(lambda: len(cache.get_verdicts(names)) == len(names), 90,
                 "verdicts in Redis while Elasticsearch is down", every=0.5)
        for n in bad:
            wait_for(lambda: is_blocked(fs.settings, *dns_answer(fs.settings, n)), 5, f"DNS to block {n}")
        for n in good:
            assert not is_blocked(fs.settings, *dns_answer(fs.settings, n)), n
        wait_for(lambda: total(fs.worker_metrics(0), "dnsentinel_worker_es_errors_total") > errors_before, 60,
                 "the worker to count its failed Elasticsearch writes", every=1)
        assert total(fs.worker_metrics(0), "dnsentinel_worker_es_backlog_actions") > 0, "no backlog while ES is down"
        assert _verdict_docs(es, prefix, names) == 0, "documents reached Elasticsearch through a cut connection?"
    finally:
        fs.proxy.restore()

    wait_for(lambda: _verdict_docs(es, prefix, names) == len(names), 90,
             "the backlog (verdict documents) to be indexed once Elasticsearch is back", every=2)
    wait_for(lambda: total(fs.worker_metrics(0), "dnsentinel_worker_es_backlog_actions") == 0, 60,
             "the worker's Elasticsearch backlog to drain", every=1)
    assert total(fs.worker_metrics(0), "dnsentinel_worker_es_dropped_actions_total") == 0
