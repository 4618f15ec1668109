"""The cluster profile's driver without starting anything: settings file, certificate expiry, CLI options."""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dnsentinel.cli.cluster import profile
from dnsentinel.errors import ConfigError
from dnsentinel.settings import Settings


def test_the_settings_file_is_valid_settings_for_every_component(tmp_path: Path) -> None:
    """deploy/multi/dnsentinel.toml.tmpl renders into settings the model accepts (extra keys are errors)."""
    env = {**os.environ, "DS_CLUSTER_DIR": str(tmp_path)}
    out = subprocess.run([str(profile.CLUSTER_SH), "settings"], env=env, capture_output=True, text=True, check=True)
    path = Path(out.stdout.strip())
    nodes = profile.node_table()
    data = tomllib.loads(path.read_text())
    assert not [k for section in data.values() for k in section if "password" in k], "no secret in the file"
    data["redis"].update(username="worker", password="pw")
    s = Settings(**data)
    assert len(s.kafka.bootstrap_servers.split(",")) == int(nodes["KAFKA_NODES"])
    assert s.kafka.security_protocol == "SASL_SSL" and s.kafka.sasl_mechanism == "SCRAM-SHA-512"
    assert len(s.elasticsearch.client_kwargs()["hosts"]) == int(nodes["ES_NODES"])  # type: ignore[arg-type]
    assert all(h.startswith("https://") for h in s.elasticsearch.client_kwargs()["hosts"])  # type: ignore[union-attr]
    assert len(s.redis.sentinels) == int(nodes["SENTINEL_NODES"]) and s.redis.tls
    assert s.redis.sentinel_master == nodes["REDIS_MASTER_NAME"]
    for ca in (s.kafka.ssl_cafile, s.redis.ssl_ca_certs, s.elasticsearch.ca_certs):
        assert ca == tmp_path / "pki" / "ca.crt"


@pytest.mark.parametrize(("days", "level"), [(400, "ok"), (29.5, "warn"), (0.5, "warn"), (-1, "error")])
def test_certificate_levels(days: float, level: str) -> None:
    assert profile.CertExpiry("kafka-1", 0, days).level == level


def test_certificates_are_read_from_pki_sh(tmp_path: Path) -> None:
    subprocess.run([str(profile.PKI_SH), str(tmp_path)], check=True, capture_output=True)
    settings = Settings()
    os.environ["DS_CLUSTER_DIR"] = str(tmp_path)
    try:
        certs = {c.name: c for c in profile.certificates(settings)}
    finally:
        del os.environ["DS_CLUSTER_DIR"]
    assert {"ca", "redis-primary", "sentinel-1", "kafka-1", "es-1"} <= set(certs)
    assert all(c.level == "ok" for c in certs.values())


def test_an_unknown_cluster_service_is_a_one_line_error() -> None:
    with pytest.raises(ConfigError, match="unknown cluster service 'zookeeper'"):
        profile.up(Settings(), ("zookeeper",))


def test_an_unknown_profile_is_a_usage_error() -> None:
    from dnsentinel.cli.main import app

    result = CliRunner().invoke(app, ["stack", "status", "--profile", "triple"])
    assert result.exit_code == 2
    assert "single, cluster" in result.output
