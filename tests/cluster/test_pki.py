"""deploy/multi/pki.sh for real host names: extra SANs per node from PKI_SANS_<NODE>.

Runs the script in a temporary directory (no cluster needed) and reads the certificates back
with ``openssl x509`` (what the script itself uses).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from dnsentinel.settings import REPO_ROOT

PKI_SH = REPO_ROOT / "deploy" / "multi" / "pki.sh"


def pki(directory: Path, **sans: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PKI_SANS_")} | sans
    return subprocess.run(["bash", str(PKI_SH), str(directory)], env=env, capture_output=True, text=True)


def names(cert: Path) -> tuple[set[str], set[str]]:
    """The DNS names and IP addresses of a certificate's subjectAltName."""
    out = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-ext", "subjectAltName"],
                         capture_output=True, text=True, check=True).stdout
    entries = [e.strip() for e in out.splitlines()[-1].split(",")]
    dns = {e.removeprefix("DNS:") for e in entries if e.startswith("DNS:")}
    ips = {e.removeprefix("IP Address:") for e in entries if e.startswith("IP Address:")}
    return dns, ips


def test_default_sans_are_node_name_and_loopback(tmp_path: Path) -> None:
    assert pki(tmp_path).returncode == 0
    dns, ips = names(tmp_path / "pki" / "kafka-1.crt")
    assert dns == {"kafka-1", "localhost"}
    assert ips == {"127.0.0.1"}
    assert not (tmp_path / "pki" / "kafka-1.sans").exists()


def test_extra_sans_for_one_node_reissue_only_that_node(tmp_path: Path) -> None:
    assert pki(tmp_path).returncode == 0
    other_before = (tmp_path / "pki" / "es-2.crt").read_bytes()

    out = pki(tmp_path, PKI_SANS_ES_1="DNS:es1.dns.example,IP:10.0.2.11")

    assert out.returncode == 0, out.stderr
    dns, ips = names(tmp_path / "pki" / "es-1.crt")
    assert dns == {"es-1", "localhost", "es1.dns.example"}
    assert ips == {"127.0.0.1", "10.0.2.11"}
    assert (tmp_path / "pki" / "es-2.crt").read_bytes() == other_before
    keystore = (tmp_path / "pki" / "es-1.keystore.pem").read_text()
    assert (tmp_path / "pki" / "es-1.crt").read_text().strip() in keystore


def test_bad_sans_fail_with_one_line_and_keep_the_old_pair(tmp_path: Path) -> None:
    assert pki(tmp_path).returncode == 0
    key_before = (tmp_path / "pki" / "redis-primary.key").read_bytes()

    out = pki(tmp_path, PKI_SANS_REDIS_PRIMARY="not-a-san")

    assert out.returncode != 0
    assert "PKI_SANS_REDIS_PRIMARY" in out.stderr and "Traceback" not in out.stderr
    assert (tmp_path / "pki" / "redis-primary.key").read_bytes() == key_before
    assert not list((tmp_path / "pki").glob("*.new.*"))
