"""Elasticsearch of the cluster profile: clients per user, health, and the users' sanity check.

deploy/cluster/elasticsearch.sh starts the nodes with security on (TLS on HTTP and transport) and
writes the file-realm users (:data:`USERS`) and roles (deploy/multi/elasticsearch/roles.yml)
before their first start. This module does what needs a client: it checks that the cluster has
every node and is green, and that each user logs in with the role its component needs. Every
expected failure (wrong password, untrusted CA, node down) becomes one line through
``ElasticsearchSettings.unavailable`` (common/settings.py), which every component can use too.

    python -m dnsentinel.cli.cluster.es check     # after deploy/cluster/elasticsearch.sh start
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from dnsentinel.cli.cluster.profile import CLUSTER_ENV, cluster_dir, read_env_file, run_main
from dnsentinel.errors import ServiceUnavailable
from dnsentinel.settings import ElasticsearchSettings, Settings

USERS: dict[str, str] = {"admin": "superuser", "worker": "dnsentinel_worker", "dashboard": "dnsentinel_dashboard"}
"""File-realm user -> its role (deploy/cluster/elasticsearch.sh REALM_USERS); coredns and replay have none."""
REPLICAS = 1
"""Replica copies of every index on the cluster: one node can be lost without losing data."""


def urls(env: Mapping[str, str]) -> str:
    """Every node's HTTPS address, comma-separated: node N on ES_HTTP_PORT + N - 1."""
    host, base = env["CLUSTER_HOST"], int(env["ES_HTTP_PORT"])
    return ",".join(f"https://{host}:{base + i}" for i in range(int(env["ES_NODES"])))


def es_settings(settings: Settings, user: str, directory: Path | None = None,
                env: Mapping[str, str] | None = None) -> ElasticsearchSettings:
    """``settings.elasticsearch`` pointed at the cluster as ``user`` (every node, the profile's CA, replicas)."""
    if user not in USERS:
        raise ValueError(f"no Elasticsearch user {user!r}; one of {', '.join(USERS)}")
    directory = directory or cluster_dir(settings)
    secrets_file = directory / "secrets.env"
    if not secrets_file.is_file():
        raise ServiceUnavailable(f"elasticsearch cluster: no {secrets_file}; "
                                 "start it first: deploy/cluster/elasticsearch.sh start")
    password = read_env_file(secrets_file)[f"PASSWORD_{user.upper()}"]
    return settings.elasticsearch.model_copy(update={
        "url": urls(env or read_env_file(CLUSTER_ENV)),
        "username": user,
        "password": SecretStr(password),
        "api_key": None,
        "ca_certs": directory / "pki" / "ca.crt",
        "verify_certs": True,
        "replicas": REPLICAS,
    })


def client(es: ElasticsearchSettings, **overrides: Any) -> Any:
    """An ``Elasticsearch`` client for ``es`` (no retries by default: a wrong password fails at once)."""
    from elasticsearch import Elasticsearch

    return Elasticsearch(**{**es.client_kwargs(), "max_retries": 0, **overrides})  # type: ignore[arg-type]


def health(es: ElasticsearchSettings, wait_for: str = "yellow", timeout_s: float = 30.0) -> dict[str, Any]:
    """``_cluster/health`` once the cluster is at least ``wait_for``; a one-line error otherwise."""
    from elasticsearch import ApiError, TransportError

    try:
        with client(es, request_timeout=timeout_s + 10) as c:
            found = dict(c.options(ignore_status=408).cluster.health(wait_for_status=wait_for, timeout=f"{timeout_s:g}s"))
    except (ApiError, TransportError) as exc:
        raise es.unavailable(exc) from None
    if found.get("timed_out"):
        raise ServiceUnavailable(f"elasticsearch at {es.url}: cluster {found.get('status')} with "
                                 f"{found.get('number_of_nodes')} nodes, not {wait_for} within {timeout_s:g} s")
    return found


def whoami(es: ElasticsearchSettings) -> dict[str, Any]:
    """``_security/_authenticate``: the user the credentials log in as, and its roles."""
    from elasticsearch import ApiError, TransportError

    try:
        with client(es) as c:
            return dict(c.security.authenticate())
    except (ApiError, TransportError) as exc:
        raise es.unavailable(exc) from None


def shard_copies(es: Any, index: str) -> dict[int, list[tuple[str, str]]]:
    """Shard number -> [(node, ``p``/``r``)] of the started copies of ``index`` (``_cat/shards``)."""
    out: dict[int, list[tuple[str, str]]] = {}
    for row in es.cat.shards(index=index, format="json", h="shard,prirep,state,node"):
        if row.get("state") == "STARTED":
            out.setdefault(int(row["shard"]), []).append((row["node"], row["prirep"]))
    return out


def check(settings: Settings, directory: Path | None = None) -> list[str]:
    """Every node joined and the cluster green; each user of :data:`USERS` logs in with its role.

    Returns one line per finding; raises ServiceUnavailable on the first failure.
    """
    env = read_env_file(CLUSTER_ENV)
    admin = es_settings(settings, "admin", directory, env)
    found = health(admin, wait_for="green")
    nodes = int(env["ES_NODES"])
    if found["number_of_nodes"] != nodes:
        raise ServiceUnavailable(f"elasticsearch at {admin.url}: {found['number_of_nodes']} of {nodes} nodes "
                                 "joined; see deploy/cluster/elasticsearch.sh status")
    lines = [f"cluster {found['cluster_name']}: {found['status']}, {nodes} nodes"]
    for user, role in USERS.items():
        me = whoami(es_settings(settings, user, directory, env))
        if role not in me.get("roles", []):
            raise ServiceUnavailable(f"elasticsearch: user {user} has roles {me.get('roles')}, not {role}; "
                                     "check deploy/multi/elasticsearch/roles.yml and the users the script wrote")
        lines.append(f"user {user}: role {role} ({me['authentication_realm']['type']} realm)")
    return lines


def seed_models(settings: Settings, directory: Path | None = None) -> list[str]:
    """A cluster without a current model gets this checkout's current one (published, then promoted).

    Workers on the cluster read the shared registry (``model.registry_backend = "elasticsearch"``
    in deploy/multi/dnsentinel.toml.tmpl) and refuse to start without a current model; a registry
    that already has one is left alone, so a promotion made on the cluster survives a restart.
    """
    from dnsentinel.models import registry, shared_registry

    admin = settings.model_copy(update={
        "elasticsearch": es_settings(settings, "admin", directory),
        "model": settings.model.model_copy(update={"registry_backend": "elasticsearch"})})
    shared = shared_registry.from_settings(admin)
    current = shared.current_version()
    if current:
        return [f"models: current {current} (kept)"]
    local = registry.read_pointer(registry.registry_dir())
    if not local:
        raise ServiceUnavailable("models: the shared registry has no current model and this checkout has none "
                                 "to seed it with (models/registry/CURRENT)")
    shared.publish(registry.version_dir(local))
    shared.promote(local)
    return [f"models: published and promoted {local} (the checkout's current model)"]


COMMANDS = {"check": check, "seed-models": seed_models}


def main(argv: list[str] | None = None) -> int:
    return run_main("es", "es-cluster", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
