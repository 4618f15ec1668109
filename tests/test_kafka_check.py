"""Unit tests of the Kafka start-up check's error mapping (fake librdkafka errors, no broker).

Checked by hand against the cluster profile's SASL_SSL SCRAM-SHA-512 brokers too (wrong
password, unknown user, missing CA, TLS to a plain port): the messages below are theirs.
"""

from __future__ import annotations

import pytest

from dnsentinel.errors import ServiceUnavailable
from dnsentinel.kafka_check import _fatal, check_kafka, explain_kafka
from dnsentinel.settings import KafkaSettings

SCRAM = KafkaSettings(bootstrap_servers="10.0.0.1:19092,10.0.0.2:19092", security_protocol="SASL_SSL",
                      sasl_mechanism="SCRAM-SHA-512", sasl_username="worker", sasl_password="pw")


class FakeError:
    """What librdkafka hands the error callback: a code name and a text."""

    def __init__(self, name: str, text: str) -> None:
        self._name, self._text = name, text

    def name(self) -> str:
        return self._name

    def str(self) -> str:
        return self._text


@pytest.mark.parametrize(("err", "needle", "fatal"), [
    (FakeError("_AUTHENTICATION", "sasl_ssl://10.0.0.1:19092/bootstrap: SASL authentication error: Authentication "
               "failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"),
     "authentication failed for user worker (SASL SCRAM-SHA-512: wrong password or unknown user", True),
    (FakeError("_SSL", "sasl_ssl://10.0.0.1:19092/bootstrap: SSL handshake failed: error:0A000086:SSL routines::"
               "certificate verify failed: broker certificate could not be verified"),
     "TLS certificate not trusted (set kafka.ssl_cafile", True),
    (FakeError("_TRANSPORT", "ssl://10.0.0.1:9092/bootstrap: SSL handshake failed: Disconnected: SSL connection "
               "closed by peer: connecting to a PLAINTEXT broker listener?"), "the broker port is plain TCP", True),
    (FakeError("_TRANSPORT", "10.0.0.1:19092/bootstrap: Disconnected while requesting ApiVersion: might be caused by "
               "incorrect security.protocol configuration (connecting to a SSL listener?)"),
     "is it a TLS listener?", False),
    (FakeError("_TRANSPORT", "sasl_plaintext://127.0.0.1:9092/bootstrap: SASL SCRAM-SHA-512 mechanism handshake "
               "failed: Broker: Request not valid in current SASL state"), "kafka.sasl_mechanism", True),
    (FakeError("_TRANSPORT", "10.0.0.1:19092/bootstrap: Connect to ipv4#10.0.0.1:19092 failed: Connection refused"),
     "unreachable (", False),
])
def test_librdkafka_errors_become_a_cause_and_the_setting_to_fix(err, needle, fatal):
    assert needle in explain_kafka(err, SCRAM)
    assert _fatal(err) is fatal


def test_nothing_listening_is_one_line_naming_the_brokers():
    with pytest.raises(ServiceUnavailable) as exc:
        check_kafka(KafkaSettings(bootstrap_servers="127.0.0.1:1"), timeout_s=1.0)
    msg = str(exc.value)
    assert msg.startswith("kafka at 127.0.0.1:1: unreachable (") and "\n" not in msg


def test_the_worker_s_faust_credentials_carry_scram_and_the_ca_alone(tmp_path):
    import ssl
    import subprocess

    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from dnsentinel.errors import ConfigError
    from dnsentinel.settings import Settings
    from dnsentinel.stream_processor.app import _broker_credentials

    ca = tmp_path / "ca.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test CA",
                    "-keyout", str(tmp_path / "ca.key"), "-out", str(ca)], check=True, capture_output=True)
    s = Settings(kafka={**SCRAM.model_dump(), "sasl_password": "pw", "ssl_cafile": ca})
    auth = credentials_to_aiokafka_auth(_broker_credentials(s))
    assert (auth["security_protocol"], auth["sasl_mechanism"], auth["sasl_plain_username"], auth["sasl_plain_password"]) \
        == ("SASL_SSL", "SCRAM-SHA-512", "worker", "pw")
    context = auth["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "test CA"),),)]

    missing = Settings(kafka={**SCRAM.model_dump(), "sasl_password": "pw", "ssl_cafile": tmp_path / "nope.crt"})
    with pytest.raises(ConfigError, match=r"kafka TLS files .*nope\.crt.*cannot load them"):
        _broker_credentials(missing)
