"""The one settings model used by every Python component.

Values come, highest priority first, from: keyword arguments, environment
variables (``DNSENTINEL_`` prefix, ``__`` between nested names, e.g.
``DNSENTINEL_KAFKA__BOOTSTRAP_SERVERS``), a TOML file named by
``DNSENTINEL_CONFIG`` (or ``./dnsentinel.toml`` when present), and the
defaults below, which describe the local stack that ``dnsentinel stack up``
starts. Components never hard-code an address: they ask :func:`get_settings`.

A secret setting (a ``SecretStr`` field) can also come from a file named by the same
variable with ``_FILE`` appended (``DNSENTINEL_REDIS__PASSWORD_FILE=/run/secrets/redis``),
the way Docker and Kubernetes hand secrets to containers: see :class:`SecretFileSource`.
"""

from __future__ import annotations

import os
from ipaddress import IPv4Address, IPv6Address
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from dnsentinel.errors import ConfigError, ServiceUnavailable
from dnsentinel.verdict_cache.vocabulary import RpzAction

REPO_ROOT = Path(__file__).resolve().parent.parent
"""Repository root when running from a checkout (editable install)."""

Port = int


def _port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError(f"port {value} is outside 1-65535")
    return value


class KafkaSettings(BaseModel):
    """Where the event log lives, and the topics of verdict_cache/SPEC.md §2."""

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    queries_topic: str = "dns.queries"
    verdicts_topic: str = "dns.verdicts"
    dlq_topic: str = "dns.queries.dlq"
    queries_partitions: int = Field(6, ge=1)
    verdicts_partitions: int = Field(6, ge=1)
    dlq_partitions: int = Field(1, ge=1)
    replication_factor: int = Field(1, ge=1)
    """Replicas of each pipeline topic (1: the local stack's one broker; 3 on a cluster)."""
    min_insync_replicas: int = Field(1, ge=1)
    """Replicas that must have an ``acks=all`` write before it is acknowledged (2 of 3 on a cluster)."""

    @field_validator("min_insync_replicas")
    @classmethod
    def _min_isr_fits(cls, value: int, info: Any) -> int:
        rf = info.data.get("replication_factor")
        if rf is not None and value > rf:
            raise ValueError(f"min_insync_replicas {value} exceeds replication_factor {rf}: every acks=all write would fail")
        return value

    def confluent_config(self) -> dict[str, str]:
        """librdkafka settings (connection and security only) for confluent-kafka clients."""
        conf: dict[str, str] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            conf["sasl.username"] = self.sasl_username
        if self.sasl_password:
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_cafile:
            conf["ssl.ca.location"] = str(self.ssl_cafile)
        if self.ssl_certfile:
            conf["ssl.certificate.location"] = str(self.ssl_certfile)
        if self.ssl_keyfile:
            conf["ssl.key.location"] = str(self.ssl_keyfile)
        return conf


class RedisSettings(BaseModel):
    """The verdict cache (verdict_cache/SPEC.md §3).

    Either one server (``url``) or, with ``sentinels`` set, whichever server the Sentinels name
    as the master of ``sentinel_master``: clients then follow a failover without a restart.
    Clients come from :mod:`dnsentinel.redis_client` (``sync_client``, ``async_client``), never
    from ``url`` directly.
    """

    url: str = "redis://127.0.0.1:6379/0"
    """One server; with ``sentinels``, only its scheme (``rediss``: TLS) and database number count."""
    username: str | None = None
    password: SecretStr | None = None
    ssl: bool = False
    """TLS to Redis (and to the Sentinels); a ``rediss://`` URL turns it on too."""
    ssl_ca_certs: Path | None = None
    """CA that signed the servers' certificates (PEM); unset: the system's trusted roots."""
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    """Client certificate and key (PEM), for servers that ask for one (``tls-auth-clients yes``)."""
    sentinels: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Sentinel addresses, ``host:port`` each (a list, or one comma-separated string in the environment)."""
    sentinel_master: str = "dnsentinel"
    """The master name the Sentinels monitor (``sentinel monitor NAME ...``)."""
    sentinel_username: str | None = None
    sentinel_password: SecretStr | None = None
    """Sentinel's own ACL user; unset: Sentinels that ask for no password."""
    key_prefix: str = "dnsentinel"
    socket_timeout_s: float = Field(2.0, gt=0)
    connect_timeout_s: float = Field(2.0, gt=0)
    """Longest wait for a TCP (and TLS) connection, so an unreachable server is an error, not a hang."""
    ttl_malicious_s: int = Field(7 * 86400, ge=1)
    ttl_benign_s: int = Field(86400, ge=1)
    ttl_uncertain_s: int = Field(3600, ge=1)
    vetted_replicas: int = Field(0, ge=0)
    """Replicas a vetted change must reach before it returns (``WAIT``). Replication is
    asynchronous: without it, a primary killed right after an analyst's decision can take the
    decision with it when Sentinel promotes the replica. 1 on a primary + replica (the cluster
    profile); 0 (no wait) on a single server."""
    vetted_wait_ms: int = Field(500, ge=1)
    """Longest wait for those replicas; past it the change stands on the primary alone (logged and
    counted as ``unreplicated``), so a dead replica slows vetting down but never stops it."""

    @field_validator("sentinels", mode="before")
    @classmethod
    def _split_sentinels(cls, value: Any) -> Any:
        """``"h1:26379,h2:26379"`` (environment) or a JSON list, as well as a real list."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("sentinels")
    @classmethod
    def _check_sentinels(cls, value: list[str]) -> list[str]:
        for address in value:
            sentinel_address(address)
        return value

    @property
    def tls(self) -> bool:
        """Whether connections use TLS (``ssl`` or a ``rediss://`` URL)."""
        return self.ssl or self.url.lower().startswith("rediss://")

    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """``sentinels`` as ``(host, port)`` pairs."""
        return [sentinel_address(a) for a in self.sentinels]

    def client_kwargs(self) -> dict[str, object]:
        """Keyword arguments for ``redis.Redis.from_url(url, **kwargs)``: timeouts, credentials and
        TLS files (TLS itself comes from a ``rediss://`` URL there). Components use
        ``dnsentinel.redis_client`` instead, which also honours ``ssl`` and ``sentinels``."""
        kwargs: dict[str, object] = {"socket_timeout": self.socket_timeout_s,
                                     "socket_connect_timeout": self.connect_timeout_s}
        if self.username:
            kwargs["username"] = self.username
        if self.password:
            kwargs["password"] = self.password.get_secret_value()
        kwargs.update({k: v for k, v in self.tls_kwargs().items() if k != "ssl"})
        return kwargs

    def tls_kwargs(self) -> dict[str, object]:
        """redis-py's TLS arguments (``ssl``, CA, client certificate); empty without TLS."""
        if not self.tls:
            return {}
        kwargs: dict[str, object] = {"ssl": True}
        if self.ssl_ca_certs:
            kwargs["ssl_ca_certs"] = str(self.ssl_ca_certs)
        if self.ssl_certfile:
            kwargs["ssl_certfile"] = str(self.ssl_certfile)
        if self.ssl_keyfile:
            kwargs["ssl_keyfile"] = str(self.ssl_keyfile)
        return kwargs


def sentinel_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) of one Sentinel; ValueError naming the setting otherwise."""
    host, sep, port = address.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"redis.sentinels: {address!r} is not host:port (e.g. 10.0.0.5:26379)")
    return host, int(port)


class RpzSettings(BaseModel):
    """``dnsentinel lists export-rpz``: the response policy zone other resolvers load."""

    zone: str = "rpz.dnsentinel.local"
    ttl_s: int = Field(300, ge=1)
    nameserver: str = "localhost."
    block_action: RpzAction = "nxdomain"
    """Blocked and malicious names: NXDOMAIN (``CNAME .``) or the sinkhole addresses."""
    sinkhole_ipv4: IPv4Address = IPv4Address("0.0.0.0")
    sinkhole_ipv6: IPv6Address = IPv6Address("::")
    honeypot_ipv4: IPv4Address = IPv4Address("192.0.2.53")
    honeypot_ipv6: IPv6Address = IPv6Address("2001:db8::53")


class ElasticsearchSettings(BaseModel):
    """Analytics storage; the client accepts URL + user/password or API key + CA."""

    url: str = "http://127.0.0.1:9200"
    """One node, or several comma-separated (every node of a cluster: the client fails over between them)."""
    username: str | None = None
    password: SecretStr | None = None
    api_key: SecretStr | None = None
    ca_certs: Path | None = None
    verify_certs: bool = True
    index_prefix: str = "dnsentinel"
    shards: int = Field(1, ge=1)
    """Primary shards of every index the templates create (verdict_cache/es_schema.py)."""
    replicas: int = Field(0, ge=0)
    """Replica copies of every shard: 0 for the single local node, 1 on a cluster (a node can be lost)."""
    retention_days: int = Field(30, ge=1)
    """Dated indices (activity, events) are deleted this long after their day and their arrival."""
    retention_interval_s: float = Field(3600.0, gt=0)
    """How often each worker applies the retention by itself (deleting is idempotent)."""
    rollup_interval_s: float = Field(300.0, gt=0)
    """How often each worker brings the hourly roll-up (``hourly`` indices) up to date; rolling is idempotent,
    and late data shows on the dashboard's rolled hours after the next run."""
    rollup_settle_s: float = Field(300.0, ge=0)
    """An hour is rolled up once it has been closed this long (later data is caught by the next run)."""
    request_timeout_s: float = Field(10.0, gt=0)

    def client_kwargs(self) -> dict[str, object]:
        """Keyword arguments for ``elasticsearch.Elasticsearch(**kwargs)``."""
        kwargs: dict[str, object] = {
            "hosts": [u.strip() for u in self.url.split(",") if u.strip()],
            "request_timeout": self.request_timeout_s,
        }
        if self.username and self.password:
            kwargs["basic_auth"] = (self.username, self.password.get_secret_value())
        if self.api_key:
            kwargs["api_key"] = self.api_key.get_secret_value()
        if self.ca_certs:
            kwargs["ca_certs"] = str(self.ca_certs)
        if not self.verify_certs:
            kwargs["verify_certs"] = False
        return kwargs

    def unavailable(self, exc: BaseException) -> ServiceUnavailable:
        """The one-line error for an elasticsearch-py failure, naming the node, the user and the fix.

        ``raise settings.elasticsearch.unavailable(exc) from None`` where a component meets an
        expected failure (wrong password, missing privilege, untrusted certificate, node down):
        the raw exceptions are a page of urllib3 / ssl chaining that names neither the user nor
        the setting to change.
        """
        return ServiceUnavailable(f"elasticsearch at {self._node_of(exc)}: {self._reason(exc)}")

    def _who(self) -> str:
        if self.api_key:
            return "the API key"
        return f"user {self.username}" if self.username else "anonymous requests"

    def _node_of(self, exc: BaseException) -> str:
        node = getattr(getattr(exc, "meta", None), "node", None)
        if node is not None and getattr(node, "host", None):
            return f"{node.scheme}://{node.host}:{node.port}"
        return ",".join(redact_url(u.strip()) for u in self.url.split(",") if u.strip())

    def _reason(self, exc: BaseException) -> str:
        import elastic_transport as et
        from elasticsearch import ApiError, AuthenticationException, AuthorizationException

        if isinstance(exc, AuthenticationException):
            if not (self.api_key or (self.username and self.password)):
                return ("authentication required; set elasticsearch.username and .password "
                        "(DNSENTINEL_ELASTICSEARCH__USERNAME / __PASSWORD) or .api_key")
            return f"authentication failed for {self._who()} (check the password or API key)"
        if isinstance(exc, AuthorizationException):
            return f"{self._who()} is not allowed to do this: {_es_error_reason(exc)}"
        if isinstance(exc, et.TlsError) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
            return (f"TLS failed ({_tls_reason(exc)}); elasticsearch.ca_certs "
                    f"(DNSENTINEL_ELASTICSEARCH__CA_CERTS) must name the CA that signed the node's certificate"
                    f"{'' if self.ca_certs is None else f', now {self.ca_certs}'}")
        if isinstance(exc, et.ConnectionTimeout):
            return f"no answer within {self.request_timeout_s:g} s (elasticsearch.request_timeout_s)"
        if isinstance(exc, et.ConnectionError):
            if "Remote end closed" in _tls_reason(exc) and "http://" in self.url:
                return f"the connection was closed ({_tls_reason(exc)}); a node with TLS on needs https:// in elasticsearch.url"
            return f"unreachable ({_tls_reason(exc)}); is it running?"
        if isinstance(exc, ApiError):
            return f"HTTP {exc.meta.status}: {_es_error_reason(exc)}"
        return str(exc) or type(exc).__name__


def _es_error_reason(exc: BaseException) -> str:
    """Elasticsearch's own ``error.reason`` of an API error (else the exception's text), one line."""
    body = getattr(exc, "body", None)
    err = body.get("error") if isinstance(body, dict) else None
    reason = err.get("reason") if isinstance(err, dict) else (err if isinstance(err, str) else None)
    return " ".join(str(reason or exc).split())[:300]


def _tls_reason(exc: BaseException) -> str:
    """The innermost cause of a transport error (``certificate verify failed: ...``), one line."""
    import ssl

    inner: BaseException = exc
    while (nxt := inner.__cause__ or inner.__context__) is not None and nxt is not inner:
        inner = nxt
    if isinstance(inner, ssl.SSLCertVerificationError):
        text = f"certificate verify failed: {inner.verify_message}"
    elif isinstance(inner, ConnectionRefusedError):
        text = "connection refused"
    else:
        text = str(inner) or type(inner).__name__
    return " ".join(text.split())[:200]


class CoreDNSSettings(BaseModel):
    """The local CoreDNS instance with the dnsentinel plugin compiled in."""

    host: str = "127.0.0.1"
    port: Port = 1053
    metrics_port: Port = 9153
    health_port: Port = 8080
    ready_port: Port = 8181
    upstream: str | None = None
    """Forward non-blocked queries here; when unset (no network), a template plugin answers."""
    server_id: str = "coredns-local"

    _check_ports = field_validator("port", "metrics_port", "health_port", "ready_port")(_port)


class WorkerSettings(BaseModel):
    """Stream processor tuning knobs."""

    app_id: str = "dnsentinel-worker"
    batch_max: int = Field(2048, ge=1)
    batch_within_s: float = Field(0.05, gt=0)
    """How long an idle worker blocks for the first event of its next batch."""
    batch_linger_s: float = Field(0.005, ge=0)
    """After that first event, how long it waits for the events right behind it (every new name
    of the batch waits this long; a backlog is taken at once, without it)."""
    lru_size: int = Field(200_000, ge=0)
    web_port: Port = 6066
    metrics_port: Port = 9464
    metrics_host: str = "127.0.0.1"
    """Address the Prometheus endpoint binds (``0.0.0.0``: every interface, for a remote scraper)."""
    activity_window_s: int = Field(60, ge=1)
    index_raw_events: bool = False
    max_new_names_per_domain_per_min: int = Field(300, ge=1)
    model_poll_s: float = Field(5.0, gt=0)
    """How often the registry pointer is read for hot model reload."""
    gc_full_collect_s: float = Field(3600.0, gt=0)
    """Between full garbage collections (the worker freezes its objects a few times a second, so
    only this one sees reference cycles that died after being frozen; stream_processor/app.py)."""
    es_flush_interval_s: float = Field(0.25, gt=0)
    """Aggregated counts go to Elasticsearch this often; Kafka offsets are committed after.
    Short on purpose: one flush's document building briefly holds up the batches behind it
    (1 s flushes gave a ~450 ms verdict p99 at 5,000 events/s, 0.25 s gave 142 ms)."""
    es_bulk_chunk: int = Field(2000, ge=1)
    es_max_retries: int = Field(3, ge=0)
    """Retries of rejected (429) bulk items; a cluster that is down is retried until it is back."""
    es_max_pending_actions: int = Field(200_000, ge=1)
    es_max_pending_events: int = Field(2_000_000, ge=1)
    """Bounds of the Elasticsearch backlog; beyond them the oldest chunk is dropped and counted."""


class DgaHostSettings(BaseModel):
    """A client resolving many random or non-existent names (stream_processor/detections/dga_host.py)."""

    nx_min_names: int = Field(15, ge=1)
    """Distinct NXDOMAIN names (public, judgeable) per client and window..."""
    nx_min_mean_score: float = Field(0.2, ge=0, le=1)
    """...whose mean model score is at least this (random-looking misses, not typos)."""
    score_sum_min: float = Field(6.0, gt=0)
    """Or: the client's distinct names' calibrated scores sum to this..."""
    flagged_min_names: int = Field(8, ge=1)
    """...over at least this many flagged names (score >= flag_score, or malicious/uncertain)."""
    flag_score: float = Field(0.5, ge=0, le=1)
    promote_uncertain: bool = True
    """Evidence names whose verdict was uncertain become malicious for everyone, with the alert as reason."""


class TunnelSettings(BaseModel):
    """Many unique encoded labels below one domain (stream_processor/detections/tunnel.py)."""

    min_unique: int = Field(40, ge=2)
    """Distinct subdomains of one domain per window before it is looked at..."""
    min_mean_length: float = Field(20.0, gt=0)
    min_entropy: float = Field(4.2, gt=0)
    """...then any of: mean subdomain length, character entropy (bits/char), payload-type share."""
    min_payload_share: float = Field(0.5, gt=0, le=1)
    min_bytes_per_window: int = Field(20_000, ge=1)
    """Or: this many bytes of query names per window (exfiltration in A queries)."""
    skip_popular: bool = True
    """Leave domains on the model's popularity prior alone (a tunnel needs the attacker's own name server)."""
    block_domain: bool = False
    """Put a vetted block on the tunnel's domain (by ``detector:tunnel``) when it alerts."""


class DetectionSettings(BaseModel):
    """Behaviour detections in the stream (event-time windows) and where their alerts go."""

    enabled: bool = True
    window_s: int = Field(60, ge=5)
    lateness_s: int = Field(15, ge=0)
    """How far behind the newest event time an event may arrive and still count."""
    idle_flush_s: float = Field(5.0, gt=0)
    """Close every open window after this much wall time without events (the end of a replay)."""
    cooldown_s: int = Field(3600, ge=0)
    """Findings for the same kind, client and domain within this gap update one alert."""
    newly_observed_days: int = Field(90, ge=1)
    """A registrable domain not seen for this long counts as newly observed again (bounds Redis memory)."""
    signals_topic: str = "dns.signals"
    alerts_topic: str = "dns.alerts"
    rules_file: Path | None = None
    """Behaviour rules (TOML); None: the shipped stream_processor/detections/rules.toml."""
    dga_host: DgaHostSettings = Field(default_factory=DgaHostSettings)
    tunnel: TunnelSettings = Field(default_factory=TunnelSettings)


class ScoringSettings(BaseModel):
    """How the model runs: device, precision, batch size, backend (the worker, ``dnsentinel score``, training)."""

    device: str = Field("auto", pattern=r"^(auto|cpu|gpu(:\d+)?)$")
    """``auto``: the first GPU when one is present, else the CPU; ``cpu``; ``gpu`` / ``gpu:N`` (an error without one)."""
    memory_growth: bool = True
    """Let TensorFlow take GPU memory as it needs it instead of all at start (room for other processes)."""
    mixed_precision: Literal["auto", "on", "off"] = "auto"
    """float16 compute with float32 weights. ``auto``: on a GPU, and kept only if the scores of a probe
    set stay within ``mixed_precision_tolerance`` of float32 (checked at load); ``on`` forces it."""
    mixed_precision_tolerance: float = Field(1e-3, gt=0)
    batch_size: int | None = Field(None, ge=1)
    """Names per inference call; None: 4,096 on a CPU, 65,536 on a GPU."""
    backend: Literal["auto", "tensorflow", "onnx"] = "auto"
    """``onnx``: calls of up to 64 names run the network converted by tf2onnx in onnxruntime (the
    ``onnx`` extra; 2-10x faster there), bigger ones stay in TensorFlow (faster there,
    docs/BENCHMARKS.md). ``auto``: ``onnx`` in the worker when the extra is installed, else TensorFlow."""


class ModelSettings(BaseModel):
    """Where the versioned model registry lives."""

    registry_dir: Path = REPO_ROOT / "models" / "registry"
    registry_backend: Literal["local", "elasticsearch"] = "local"
    """``local``: the folder above is the registry (one host). ``elasticsearch``: versions are published
    to, and the current pointer lives in, Elasticsearch, so workers on every host follow promotions
    (models/README.md, "Shared registry")."""
    shared_index_prefix: str | None = None
    """Indices of the shared registry: ``<prefix>-models*``; defaults to ``elasticsearch.index_prefix``."""
    cache_dir: Path | None = None
    """Where a host keeps the versions it downloaded from the shared registry; defaults to
    ``<stack.state_dir>/models``."""
    chunk_bytes: int = Field(256 * 1024, ge=1024, le=16 * 1024 * 1024)
    """Bytes of a file per shared-registry chunk document (stored base64, a third larger)."""


Role = Literal["viewer", "analyst", "admin"]
"""Dashboard roles, least to most; what each may do is dashboard/access.py's table."""


class TrainingCap(BaseModel):
    """The largest training run one role may start from the dashboard."""

    max_epochs: int = Field(ge=1)
    max_sample_size: int = Field(ge=100)
    max_concurrent_jobs: int = Field(ge=1)
    """A new run is refused while this many dashboard training jobs are running (anyone's)."""


class DashboardSettings(BaseModel):
    """The analysts' Streamlit app."""

    address: str = "127.0.0.1"
    port: Port = 8501
    users: dict[str, str] = Field(default_factory=dict)
    """Bootstrap admins: name -> bcrypt hash. Users made with ``dnsentinel users`` live in Redis;
    with neither, a loopback-only dashboard has the demo login (dashboard/README.md)."""
    session_ttl_s: int = Field(8 * 3600, ge=60)
    session_secret: SecretStr | None = None
    """HMAC key of the session cookie; unset, one is generated into ``<state_dir>/dashboard/session.key``.
    Instances behind one address must share it."""
    login_max_failures: int = Field(5, ge=1)
    """Failed logins of one user name within ``login_failure_window_s`` before it is locked out."""
    login_max_failures_per_address: int = Field(20, ge=1)
    """The same, per client address (one office behind NAT shares one)."""
    login_failure_window_s: int = Field(900, ge=1)
    login_lockout_s: int = Field(900, ge=1)
    training_caps: dict[Role, TrainingCap] = Field(default_factory=lambda: {
        "admin": TrainingCap(max_epochs=50, max_sample_size=5_000_000, max_concurrent_jobs=1)})
    """Per role; a role without an entry starts no training (only admins may train at all)."""
    whois_timeout_s: float = Field(5.0, gt=0)
    whois_cache_ttl_s: int = Field(86400, ge=0)
    query_timeout_s: float = Field(30.0, gt=0)
    """Elasticsearch timeout of the dashboard's aggregations (wide ranges over millions of docs)."""


class StackSettings(BaseModel):
    """The local stack run by deploy/ scripts."""

    state_dir: Path = REPO_ROOT / ".state"
    cache_dir: Path | None = None
    """Downloads (Maven jars, the ES zip); defaults to ``<state_dir>/cache``. Several state dirs may share one."""
    kafka_controller_port: Port = 9093
    es_transport_port: Port = 9300
    """Elasticsearch's node-to-node port (bound on loopback, unused by clients)."""
    java_home: Path | None = None
    """JDK for Kafka; defaults to the machine's java."""
    es_java_home: Path | None = None
    """JDK 21+ for Elasticsearch 9; defaults to the newest JDK under /usr/lib/jvm."""
    kafka_heap: str = Field("512m", pattern=r"^[1-9][0-9]*[mMgG]$")
    es_heap: str = Field("1g", pattern=r"^[1-9][0-9]*[mMgG]$")
    start_timeout_s: float = Field(600.0, gt=0)
    """Longest wait for one service to turn healthy (ES takes minutes on a loaded 2-core machine)."""

    _check_ports = field_validator("kafka_controller_port", "es_transport_port")(_port)


ENV_PREFIX = "DNSENTINEL_"
FILE_SUFFIX = "_FILE"


def secret_settings(model: type[BaseModel], under: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The path of every ``SecretStr`` setting (``("redis", "password")``, …), found by type."""
    found: list[tuple[str, ...]] = []
    for name, field in model.model_fields.items():
        kinds = get_args(field.annotation) or (field.annotation,)
        if SecretStr in kinds:
            found.append((*under, name))
        for kind in kinds:
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                found += secret_settings(kind, (*under, name))
    return found


def _env_name(path: tuple[str, ...]) -> str:
    return ENV_PREFIX + "__".join(path).upper()


class SecretFileSource(PydanticBaseSettingsSource):
    """Secrets read from files named by ``DNSENTINEL_<SETTING>_FILE`` variables.

    Container platforms mount secrets as files and pass their paths, so the secret never
    sits in the environment (``/proc/<pid>/environ``, ``docker inspect``). Only secret
    settings accept it, and a variable set both ways is an error rather than a silent pick.
    One trailing newline (``echo pw > file``) is dropped.
    """

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything happens in __call__

    def __call__(self) -> dict[str, Any]:
        secrets = {_env_name(path): path for path in secret_settings(self.settings_cls)}
        values: dict[str, Any] = {}
        for var, file_name in os.environ.items():
            var = var.upper()
            if not (var.startswith(ENV_PREFIX) and var.endswith(FILE_SUFFIX)):
                continue
            plain = var[: -len(FILE_SUFFIX)]
            if plain not in secrets:
                raise ConfigError(f"{var}: {plain} is not a secret setting; a *_FILE variable names one of "
                                  + ", ".join(f"{name}{FILE_SUFFIX}" for name in sorted(secrets)))
            if plain in {k.upper() for k in os.environ}:
                raise ConfigError(f"{var} and {plain} are both set; keep one")
            *parents, leaf = secrets[plain]
            node = values
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = _read_secret(var, file_name)
        return values


def _read_secret(var: str, file_name: str) -> str:
    try:
        text = Path(file_name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{var}={file_name}: cannot read the secret file ({type(exc).__name__}: "
                          f"{getattr(exc, 'strerror', None) or exc})") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise ConfigError(f"{var}={file_name}: the secret file is empty")
    return text


class Settings(BaseSettings):
    """All of dnsentinel's configuration, for every component."""

    model_config = SettingsConfigDict(
        env_prefix="DNSENTINEL_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    rpz: RpzSettings = Field(default_factory=RpzSettings)
    elasticsearch: ElasticsearchSettings = Field(default_factory=ElasticsearchSettings)
    coredns: CoreDNSSettings = Field(default_factory=CoreDNSSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    detections: DetectionSettings = Field(default_factory=DetectionSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    stack: StackSettings = Field(default_factory=StackSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, SecretFileSource(settings_cls)]
        config_file = config_path()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)


def redact_url(url: str) -> str:
    """``url`` without the password some write into it (``redis://:pw@host``), for messages and tables."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:" if parts.username else ":"
    return parts._replace(netloc=f"{user}***@{parts.netloc.rsplit('@', 1)[1]}").geturl()


def config_path() -> Path | None:
    """The TOML config file in effect, if any (``DNSENTINEL_CONFIG`` or ``./dnsentinel.toml``)."""
    named = os.environ.get("DNSENTINEL_CONFIG")
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(f"DNSENTINEL_CONFIG={named}: no such file; point it at a TOML config file")
        return path
    local = Path("dnsentinel.toml")
    return local if local.is_file() else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; raises :class:`ConfigError` with a one-line reason."""
    try:
        return Settings()
    except ConfigError:
        raise
    except Exception as exc:  # pydantic.ValidationError, tomllib errors
        raise ConfigError(_one_line(exc)) from exc


def _one_line(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        parts = []
        for err in errors():
            where = "DNSENTINEL_" + "__".join(str(p).upper() for p in err.get("loc", ()))
            parts.append(f"{where}: {err.get('msg')}")
        return "bad settings: " + "; ".join(parts)
    return f"bad settings: {exc}"
