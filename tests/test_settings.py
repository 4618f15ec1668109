"""Unit tests of the settings model and of the stack's settings checks (no services run)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dnsentinel.errors import ConfigError
from dnsentinel.settings import Settings, get_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    """Settings from defaults only: no DNSENTINEL_* variables, no ./dnsentinel.toml."""
    for name in list(os.environ):
        if name.startswith("DNSENTINEL_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_defaults_describe_the_local_stack():
    s = Settings()
    assert s.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert s.redis.url == "redis://127.0.0.1:6379/0"
    assert s.elasticsearch.url == "http://127.0.0.1:9200"
    assert (s.coredns.host, s.coredns.port) == ("127.0.0.1", 1053)
    assert (s.kafka.queries_partitions, s.kafka.verdicts_partitions, s.kafka.dlq_partitions) == (6, 6, 1)


def test_nested_environment_variables_override(monkeypatch):
    monkeypatch.setenv("DNSENTINEL_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    monkeypatch.setenv("DNSENTINEL_STACK__STATE_DIR", "/tmp/elsewhere")
    s = Settings()
    assert s.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert s.stack.state_dir == Path("/tmp/elsewhere")


def test_toml_config_file(monkeypatch, tmp_path):
    cfg = tmp_path / "conf.toml"
    cfg.write_text('[redis]\nurl = "redis://127.0.0.1:16379/2"\n[coredns]\nport = 2053\n')
    monkeypatch.setenv("DNSENTINEL_CONFIG", str(cfg))
    s = get_settings()
    assert s.redis.url.endswith(":16379/2") and s.coredns.port == 2053


def test_missing_config_file_is_a_config_error(monkeypatch, tmp_path):
    monkeypatch.setenv("DNSENTINEL_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="no such file"):
        get_settings()


@pytest.mark.parametrize(
    ("var", "value", "needle"),
    [
        ("DNSENTINEL_COREDNS__PORT", "70000", "DNSENTINEL_COREDNS__PORT"),
        ("DNSENTINEL_STACK__KAFKA_CONTROLLER_PORT", "0", "DNSENTINEL_STACK__KAFKA_CONTROLLER_PORT"),
        ("DNSENTINEL_STACK__ES_HEAP", "lots", "DNSENTINEL_STACK__ES_HEAP"),
        ("DNSENTINEL_KAFKA__QUERIES_PARTITIONS", "0", "DNSENTINEL_KAFKA__QUERIES_PARTITIONS"),
    ],
)
def test_bad_values_give_one_line_naming_the_variable(monkeypatch, var, value, needle):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as err:
        get_settings()
    assert needle in str(err.value) and "\n" not in str(err.value)


# --- the stack's checks (dnsentinel.cli.stackctl.stack_env) ---------------------------------


def _env(**sections):
    from dnsentinel.cli import stackctl

    return stackctl.stack_env(Settings(**sections))


def test_stack_env_maps_settings_to_script_variables():
    env = _env(
        kafka={"bootstrap_servers": "127.0.0.1:19092"},
        redis={"url": "redis://localhost:16379/3"},
        stack={"state_dir": "/tmp/x", "es_transport_port": 19300},
    )
    assert env["DS_KAFKA_PORT"] == "19092" and env["DS_KAFKA_HOST"] == "127.0.0.1"
    assert (env["DS_REDIS_HOST"], env["DS_REDIS_PORT"], env["DS_COREDNS_REDIS_DB"]) == ("localhost", "16379", "3")
    assert env["DS_ES_PORT"] == "9200" and env["DS_ES_TRANSPORT_PORT"] == "19300"
    assert env["DS_STATE_DIR"] == "/tmp/x" and env["DS_CACHE_DIR"] == "/tmp/x/cache"
    assert env["DS_COREDNS_KAFKA_BROKERS"] == "127.0.0.1:19092"


@pytest.mark.parametrize(
    ("sections", "needle"),
    [
        ({"redis": {"url": "redis://127.0.0.1:99999/0"}}, "invalid port"),
        ({"kafka": {"bootstrap_servers": "127.0.0.1:abc"}}, "invalid port"),
        ({"kafka": {"bootstrap_servers": "127.0.0.1:9092,127.0.0.1:9094"}}, "exactly one"),
        ({"elasticsearch": {"url": "http://no-such-host.invalid:9200"}}, "does not resolve"),
        ({"elasticsearch": {"url": "http://192.0.2.10:9200"}}, "not this machine"),
        ({"elasticsearch": {"url": "https://127.0.0.1:9200"}}, "http://"),
        ({"redis": {"url": "redis://127.0.0.1:9092/0"}}, "both use port 9092"),
        ({"coredns": {"health_port": 9200}}, "both use port 9200"),
    ],
)
def test_bad_stack_settings_are_one_line_config_errors(sections, needle):
    with pytest.raises(ConfigError) as err:
        _env(**sections)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_missing_jdk_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no bin/java"):
        _env(stack={"es_java_home": str(tmp_path)})


def test_too_old_jdk_for_elasticsearch_is_a_config_error(tmp_path):
    home = tmp_path / "jdk17"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text("")
    (home / "release").write_text('JAVA_VERSION="17.0.15"\n')
    with pytest.raises(ConfigError, match="needs Java 21"):
        _env(stack={"es_java_home": str(home)})


def test_no_jdk21_on_the_machine_is_a_config_error(monkeypatch, tmp_path):
    from dnsentinel.cli import stackctl

    monkeypatch.setattr(stackctl, "JVM_DIR", tmp_path)
    with pytest.raises(ConfigError, match="no JDK 21"):
        _env()


def test_unknown_service_is_a_config_error():
    from dnsentinel.cli import stackctl

    with pytest.raises(ConfigError, match="unknown service"):
        stackctl.up(Settings(), ("postgres",), echo=False)


def test_cli_prints_one_red_line_for_bad_settings(tmp_path):
    env = {**os.environ, "DNSENTINEL_REDIS__URL": "redis://127.0.0.1:99999/0", "COLUMNS": "300"}
    env = {k: v for k, v in env.items() if not k.startswith("DNSENTINEL_") or k == "DNSENTINEL_REDIS__URL"}
    proc = subprocess.run(
        [sys.executable, "-m", "dnsentinel.cli.main", "stack", "up"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "DNSENTINEL_REDIS__URL" in lines[0] and "invalid port" in lines[0]


# --- secrets from files (DNSENTINEL_<SETTING>_FILE) ---------------------------------------


def test_secrets_come_from_files_named_by_FILE_variables(monkeypatch, tmp_path):
    (tmp_path / "redis").write_text("s3cret-from-a-file\n")
    (tmp_path / "es").write_text("api key: with spaces and no newline")
    monkeypatch.setenv("DNSENTINEL_REDIS__PASSWORD_FILE", str(tmp_path / "redis"))
    monkeypatch.setenv("DNSENTINEL_ELASTICSEARCH__API_KEY_FILE", str(tmp_path / "es"))
    monkeypatch.setenv("DNSENTINEL_REDIS__URL", "redis://127.0.0.1:6390/0")
    s = get_settings()
    assert s.redis.password.get_secret_value() == "s3cret-from-a-file"  # one trailing newline dropped
    assert s.elasticsearch.api_key.get_secret_value() == "api key: with spaces and no newline"
    assert s.redis.url.endswith(":6390/0")  # the plain variables still apply
    assert "s3cret" not in repr(s) and "s3cret" not in str(s.model_dump())


def test_a_FILE_variable_beats_the_toml_file(monkeypatch, tmp_path):
    (tmp_path / "dnsentinel.toml").write_text('[dashboard]\nsession_secret = "from-toml-from-toml"\n')
    (tmp_path / "key").write_text("from-file-from-file")
    monkeypatch.setenv("DNSENTINEL_DASHBOARD__SESSION_SECRET_FILE", str(tmp_path / "key"))
    assert get_settings().dashboard.session_secret.get_secret_value() == "from-file-from-file"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"DNSENTINEL_REDIS__URL_FILE": "x"}, "DNSENTINEL_REDIS__URL is not a secret setting"),
        ({"DNSENTINEL_REDIS__PASSWORD_FILE": "/nonexistent/pw"}, "cannot read the secret file (FileNotFoundError"),
        ({"DNSENTINEL_REDIS__PASSWORD_FILE": "EMPTY"}, "the secret file is empty"),
        ({"DNSENTINEL_REDIS__PASSWORD_FILE": "EMPTY", "DNSENTINEL_REDIS__PASSWORD": "x"}, "both set; keep one"),
    ],
)
def test_bad_FILE_variables_are_one_line_config_errors(monkeypatch, tmp_path, env, needle):
    (tmp_path / "EMPTY").write_text("\n")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        get_settings()
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_every_secret_setting_is_a_SecretStr():
    from dnsentinel.settings import secret_settings

    assert set(secret_settings(Settings)) == {
        ("kafka", "sasl_password"), ("redis", "password"), ("redis", "sentinel_password"), ("elasticsearch", "password"),
        ("elasticsearch", "api_key"), ("dashboard", "session_secret")}


# --- dnsentinel stack status: services open to anyone -----------------------------------------


def test_status_warns_about_services_without_auth_beyond_loopback():
    from dnsentinel.cli import stackctl

    running = ["redis", "kafka", "elasticsearch", "coredns"]
    assert stackctl.exposure_warnings(Settings(), running) == []  # the local stack: loopback only
    exposed = Settings(redis={"url": "redis://0.0.0.0:6379/0"}, kafka={"bootstrap_servers": "10.0.0.8:9092"},
                       elasticsearch={"url": "http://192.0.2.10:9200"}, coredns={"host": "0.0.0.0"})
    lines = stackctl.exposure_warnings(exposed, running)
    assert [ln.split()[0] for ln in lines] == ["redis", "kafka", "elasticsearch"]  # DNS has no login to ask for
    assert "runs without auth on 10.0.0.8 (not loopback)" in lines[1] and "SASL" in lines[1]
    assert stackctl.exposure_warnings(exposed, ["coredns"]) == []  # only what runs
    secured = Settings(redis={"url": "redis://0.0.0.0:6379/0", "password": "pw"},
                       kafka={"bootstrap_servers": "10.0.0.8:9092", "security_protocol": "SASL_SSL"},
                       elasticsearch={"url": "https://192.0.2.10:9200", "api_key": "k"})
    assert stackctl.exposure_warnings(secured, running) == []


def test_status_masks_a_password_written_into_a_url():
    from dnsentinel.cli import stackctl

    where = stackctl.addresses(Settings(redis={"url": "redis://:hunter2@cache:6379/0"},
                                        elasticsearch={"url": "https://elastic:hunter2@es:9200"}))
    assert where["redis"] == "redis://:***@cache:6379/0" and where["elasticsearch"] == "https://elastic:***@es:9200"
