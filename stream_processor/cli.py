"""``dnsentinel worker`` and ``dnsentinel es-retention``: the stream processor's commands.

Faust, Kafka, TensorFlow and Elasticsearch are imported inside the commands so
``dnsentinel --help`` stays instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from dnsentinel.settings import Settings


def register(app: typer.Typer) -> None:
    """Add the stream processor's commands to the ``dnsentinel`` CLI."""

    @app.command(
        "worker",
        epilog="Examples:\n\n  dnsentinel worker\n\n  dnsentinel worker --loglevel debug --concurrency 1\n\n"
        "  DNSENTINEL_WORKER__APP_ID=w2 DNSENTINEL_WORKER__WEB_PORT=6067 dnsentinel worker",
    )
    def worker(
        loglevel: str = typer.Option("info", "--loglevel", "-l", help="critical|error|warning|info|debug"),
        workers: int = typer.Option(1, "--workers", "--concurrency", "-c", min=1,
                                    help="Processes in this consumer group on this host (each a Faust worker)."),
    ) -> None:
        """Run the Faust stream processor: query events in, verdicts out (Redis, Kafka, Elasticsearch)."""
        if workers > 1:
            _spawn(workers, loglevel)
            return
        _preflight()
        from dnsentinel.stream_processor.app import create_app

        app_ = create_app()
        from faust.worker import Worker

        worker_ = Worker(app_, loglevel=loglevel, quiet=True)
        # Faust's terminal spinner sets the root logger to DEBUG at -l warning and above, so every
        # library debug call (aiokafka: one per message sent) built a log record: ~3% of the CPU.
        worker_.spinner = None
        worker_.execute_from_commandline()

    @app.command("es-retention")
    def es_retention(
        days: int = typer.Option(None, "--days", help="Keep this many days (default: elasticsearch.retention_days)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="List what would be deleted."),
    ) -> None:
        """Delete date-stamped Elasticsearch indices (activity, events) past the retention.

        Retention counts from when the data arrived: an index goes once its day and its creation
        day are both older than the retention (a replayed old log stays for the full period).
        Workers also run this by themselves every ``elasticsearch.retention_interval_s``.
        """
        from elasticsearch import Elasticsearch

        from dnsentinel.settings import get_settings
        from dnsentinel.verdict_cache.es_schema import apply_retention, retention_due

        s = get_settings().elasticsearch
        keep = days if days is not None else s.retention_days
        es = Elasticsearch(**s.client_kwargs())
        old = (retention_due if dry_run else apply_retention)(es, keep, prefix=s.index_prefix)
        verb = "would delete" if dry_run else "deleted"
        typer.echo(f"{verb} {len(old)} index(es) older than {keep} days" + ("".join(f"\n  {n}" for n in old)))


    @app.command("es-rollup")
    def es_rollup(
        settle_s: float = typer.Option(None, "--settle-s", help="Roll hours closed this long (default: elasticsearch.rollup_settle_s)."),
    ) -> None:
        """Bring the hourly roll-up of the activity indices up to date (what workers do every
        ``elasticsearch.rollup_interval_s``): every closed hour whose roll-up is missing or differs
        from its minute documents is rolled again. Idempotent; safe next to running workers."""
        from elasticsearch import Elasticsearch

        from dnsentinel.settings import get_settings
        from dnsentinel.stream_processor.rollup import roll_up

        s = get_settings().elasticsearch
        es = Elasticsearch(**s.client_kwargs()).options(request_timeout=120)
        try:
            r = roll_up(es, s.index_prefix, settle_s=s.rollup_settle_s if settle_s is None else settle_s)
        except Exception as exc:
            typer.echo(f"elasticsearch at {s.url}: hourly roll-up failed ({exc}); check the cluster and run it again", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"rolled {r.hours} hour(s): {r.written:,} roll-up documents from {r.minute_docs:,} minute documents, "
                   f"{r.deleted:,} stale deleted, in {r.seconds:.1f} s")


def _preflight() -> None:
    """Redis and Kafka answer with these credentials: a wrong password, user or CA is one line
    naming the service, address and cause here, instead of a Faust crash (or endless retries) later."""
    from dnsentinel.kafka_check import check_kafka
    from dnsentinel.redis_client import check_redis
    from dnsentinel.settings import get_settings

    s = get_settings()
    check_redis(s.redis)
    check_kafka(s.kafka)
    _check_es_credentials(s)


def _check_es_credentials(s: Settings) -> None:
    """Elasticsearch refusing these credentials or this CA is fatal at start: that never heals, and
    the worker would score on while no count ever reached the index. Elasticsearch *down* is not
    (the worker runs without it and its sink retries), nor is a cluster without security."""
    import elastic_transport
    from elasticsearch import AuthenticationException, Elasticsearch

    es = s.elasticsearch
    try:
        with Elasticsearch(**{**es.client_kwargs(), "max_retries": 0, "request_timeout": 10}) as client:
            client.security.authenticate()
    except (AuthenticationException, elastic_transport.TlsError) as exc:
        raise es.unavailable(exc) from None
    except Exception:  # down, slow, or no security: the worker starts and its sink retries
        return


def _spawn(n: int, loglevel: str) -> None:
    """Run ``n`` worker processes of one consumer group (distinct web and metrics ports)."""
    import os
    import subprocess
    import sys

    from dnsentinel.settings import get_settings

    w = get_settings().worker
    procs = []
    for i in range(n):
        env = dict(os.environ)
        env["DNSENTINEL_WORKER__WEB_PORT"] = str(w.web_port + i)
        env["DNSENTINEL_WORKER__METRICS_PORT"] = str(w.metrics_port + i)
        procs.append(subprocess.Popen([sys.executable, "-m", "dnsentinel.cli.main", "worker", "-l", loglevel], env=env))
    try:
        for p in procs:
            p.wait()
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
