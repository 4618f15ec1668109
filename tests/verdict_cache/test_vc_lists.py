"""List parsing (unit), list import and RPZ export (integration with the real Redis, BIND's checker)."""

from __future__ import annotations

import gzip
import io
import lzma
import shutil
import subprocess
from pathlib import Path

import dns.rdatatype
import dns.zone
import pytest
from typer.testing import CliRunner

from dnsentinel.verdict_cache.cache import Verdict, VerdictCache
from dnsentinel.verdict_cache.lists import LineError, export_rpz, import_list, parse_line

SAMPLE = """\
# a comment
! an Adblock comment
[Adblock Plus 2.0]

0.0.0.0 ads.example.com tracker.example.net   # two names
127.0.0.1 localhost
127.0.0.1\tWWW.Mixed-Case.ORG.
:: v6.example.com
||evil.test^
||important.test^$important
||evil.test^$third-party
@@||good.test^
||x.com/path^
bad name.com
10.0.0.1 foo.com
plain.example.org
plain.example.org
*.wild.example
bücher.de
a..b
""" + "x" * 64 + """.com
*
"""


@pytest.mark.parametrize("line, entries", [
    (b"", []),
    (b"   # comment", []),
    (b"! adblock comment", []),
    (b"[Adblock Plus 2.0]", []),
    (b"example.com", ["example.com"]),
    (b"Example.COM.  # trailing comment", ["example.com"]),
    (b"0.0.0.0 a.com b.com", ["a.com", "b.com"]),
    (b"127.0.0.1 localhost", []),
    (b"0.0.0.0 0.0.0.0", []),
    (b"::1 ip6-localhost ads.com", ["ads.com"]),
    (b"||ads.example.com^", ["ads.example.com"]),
    (b"||ads.example.com^$important", ["ads.example.com"]),
    (b"*.example.com", ["*.example.com"]),
    ("bücher.de".encode(), ["xn--bcher-kva.de"]),
    (b"example.com\r\n", ["example.com"]),
])
def test_parse_line_accepts(line: bytes, entries: list[str]) -> None:
    assert parse_line(line) == entries


@pytest.mark.parametrize("line, reason", [
    (b"@@||good.test^", "adblock_exception"),
    (b"||ads.com^$third-party", "adblock_options"),
    (b"||ads.com/banner^", "adblock_path"),
    (b"||ads.com", "adblock_path"),
    (b"||ads.*.com^", "adblock_path"),
    (b"10.0.0.1 foo.com", "hosts_address"),
    (b"2001:db8::1 foo.com", "hosts_address"),
    (b"bad name.com", "bad_format"),
    (b"a..b", "name:empty_label"),
    (b"a/b.com", "name:bad_char"),
    (b"\xff.com", "name:bad_idn"),
    (b"*", "name:bad_char"),
    (b"0.0.0.0 ok.com bad_\x01.com", "name:bad_char"),
    (b"x" * 5000, "too_long"),
])
def test_parse_line_rejects(line: bytes, reason: str) -> None:
    with pytest.raises(LineError) as info:
        parse_line(line)
    assert info.value.reason == reason


def _rpz(vetted: dict[str, str], malicious: list[str], **kw) -> str:
    out = io.StringIO()
    args = dict(zone="rpz.test", ttl=60, nameserver="localhost.", block_action="nxdomain",
                sinkhole=("0.0.0.0", "::"), honeypot=("192.0.2.53", "2001:db8::53"), serial=7)
    args.update(kw)
    export_rpz(vetted, malicious, out, **args)
    return out.getvalue()


def _records(text: str) -> dict[str, set[str]]:
    zone = dns.zone.from_text(text, origin="rpz.test", relativize=True, check_origin=True)
    out: dict[str, set[str]] = {}
    for name, node in zone.nodes.items():
        for rdataset in node.rdatasets:
            if rdataset.rdtype in (dns.rdatatype.SOA, dns.rdatatype.NS):
                continue
            for rdata in rdataset:
                out.setdefault(str(name), set()).add(f"{dns.rdatatype.to_text(rdataset.rdtype)} {rdata}")
    return out


def test_rpz_policy_matches_the_spec_precedence() -> None:
    text = _rpz(
        {"evil.test": "block", "trap.test": "honeypot", "weebly.com": "allow", "*.example.com": "allow",
         "www.example.com": "block", "com": "block"},
        ["paypal-verify.weebly.com", "bad.example.com", "xjwqkzpt.net"],
    )
    rr = _records(text)
    assert rr["evil.test"] == rr["*.evil.test"] == {"CNAME ."}
    assert rr["trap.test"] == rr["*.trap.test"] == {"A 192.0.2.53", "AAAA 2001:db8::53"}
    assert rr["weebly.com"] == {"CNAME rpz-passthru."}  # exact allow only
    assert "*.weebly.com" not in rr
    assert rr["paypal-verify.weebly.com"] == {"CNAME ."}  # still malicious
    assert rr["xjwqkzpt.net"] == {"CNAME ."}
    assert "*.xjwqkzpt.net" not in rr  # model verdicts apply to the exact name
    # the wildcard allow beats the deeper block and the model verdict: passthru, never NXDOMAIN
    for owner in ("example.com", "*.example.com", "www.example.com", "*.www.example.com", "bad.example.com"):
        assert rr[owner] == {"CNAME rpz-passthru."}, owner
    assert rr["com"] == rr["*.com"] == {"CNAME ."}


def test_rpz_refuses_a_nameserver_inside_the_zone() -> None:
    with pytest.raises(ValueError, match="outside"):
        _rpz({}, [], nameserver="ns.rpz.test.")


def test_rpz_sinkhole_action() -> None:
    rr = _records(_rpz({"evil.test": "block"}, ["m.test"], block_action="sinkhole", sinkhole=("0.0.0.0", "::")))
    assert rr["evil.test"] == rr["m.test"] == {"A 0.0.0.0", "AAAA ::"}


@pytest.mark.skipif(shutil.which("named-checkzone") is None, reason="bind9-utils (named-checkzone) not installed")
def test_rpz_loads_in_bind(tmp_path: Path) -> None:
    path = tmp_path / "rpz.test.zone"
    path.write_text(_rpz({"evil.test": "block", "trap.test": "honeypot", "*.example.com": "allow",
                          "_dmarc.evil2.test": "block", "xn--bcher-kva.de": "block", "_x.trap2.test": "honeypot"},
                         ["m.test"]))
    result = subprocess.run(["named-checkzone", "-k", "fail", "rpz.test", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


# -- integration ----------------------------------------------------------------------------------


def _write(path: Path, text: str, kind: str) -> Path:
    data = text.encode("utf-8")
    if kind == "gz":
        path = path.with_suffix(".txt.gz")
        path.write_bytes(gzip.compress(data))
    elif kind == "xz":
        path = path.with_suffix(".txt.xz")
        path.write_bytes(lzma.compress(data))
    else:
        path.write_bytes(data)
    return path


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["plain", "gz", "xz"])
def test_import_reports_bad_lines_and_imports_the_rest(cache: VerdictCache, tmp_path: Path, kind: str) -> None:
    path = _write(tmp_path / "list.txt", SAMPLE, kind)
    seen = []
    report = import_list(cache, path, "block", "tester", "sample", batch=3, max_examples=3,
                         progress=lambda done, total: seen.append((done, total)))
    expected = {"ads.example.com", "tracker.example.net", "www.mixed-case.org", "v6.example.com", "evil.test",
                "important.test", "plain.example.org", "*.wild.example", "xn--bcher-kva.de"}
    assert set(cache.list_vetted("block")) == expected
    assert report.added == len(expected) and report.duplicates == 1 and report.lines == SAMPLE.count("\n")
    assert dict(report.bad) == {"adblock_options": 1, "adblock_exception": 1, "adblock_path": 1, "bad_format": 1,
                                "hosts_address": 1, "name:empty_label": 1, "name:label_too_long": 1,
                                "name:bad_char": 1}
    assert [(b.line, b.reason) for b in report.examples] == [(11, "adblock_options"), (12, "adblock_exception"),
                                                             (13, "adblock_path")]
    assert report.examples[0].file == str(path)
    assert seen and seen[-1][0] == seen[-1][1] == path.stat().st_size
    again = import_list(cache, path, "block", "tester")
    assert again.unchanged == len(expected) and again.added == 0
    other = import_list(cache, path, "allow", "tester")
    assert other.conflicts == len(expected) and not cache.list_vetted("allow")
    replaced = import_list(cache, path, "allow", "tester", replace=True)
    assert replaced.changed == len(expected) and set(cache.list_vetted("allow")) == expected


@pytest.mark.integration
def test_truncated_archive_keeps_what_was_read(cache: VerdictCache, tmp_path: Path) -> None:
    data = gzip.compress("".join(f"n{i}.example.com\n" for i in range(20000)).encode())
    path = tmp_path / "cut.txt.gz"
    path.write_bytes(data[: len(data) // 2])
    report = import_list(cache, path, "block", "tester", batch=1000)
    assert report.bad["unreadable"] == 1
    assert 0 < report.added < 20000
    assert len(cache.list_vetted()) == report.added


@pytest.mark.integration
def test_cli_round_trip(cache: VerdictCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dnsentinel.cli.main import app
    from dnsentinel.settings import get_settings

    monkeypatch.setenv("DNSENTINEL_REDIS__KEY_PREFIX", cache.prefix)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        src = _write(tmp_path / "list.txt", SAMPLE, "gz")
        res = runner.invoke(app, ["lists", "import", str(src), "--as", "block", "--by", "cli", "--note", "n"])
        assert res.exit_code == 0, res.output
        assert f"{src}:11: adblock_options" in res.output.replace("\n", "")
        cache.put_verdicts([Verdict("xjwqkzpt.net", "malicious", 0.99, "m1", 1795392000)])
        res = runner.invoke(app, ["lists", "show", "--action", "block"])
        assert res.exit_code == 0 and "ads.example.com" in res.output
        res = runner.invoke(app, ["lists", "show", "a.evil.test"])
        assert res.exit_code == 0 and "decision block" in res.output
        out = tmp_path / "blocks.txt"
        res = runner.invoke(app, ["lists", "export", str(out), "--plain"])
        assert res.exit_code == 0 and len(out.read_text().split()) == 9
        res = runner.invoke(app, ["lists", "remove", "evil.test", "not-there.test", "--by", "cli"])
        assert res.exit_code == 1 and "evil.test: removed" in res.output and "not a vetted entry" in res.output
        zone = tmp_path / "rpz.zone"
        res = runner.invoke(app, ["lists", "export-rpz", str(zone)])
        assert res.exit_code == 0, res.output
        text = zone.read_text()
        assert "xjwqkzpt.net CNAME ." in text and "\nevil.test " not in text
        dns.zone.from_text(text, origin=get_settings().rpz.zone, relativize=True)
        res = runner.invoke(app, ["lists", "import", str(src), "--as", "drop", "--by", "cli"])
        assert res.exit_code != 0
    finally:
        get_settings.cache_clear()


def test_cli_says_clearly_when_redis_is_unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dnsentinel.cli.main import app
    from dnsentinel.errors import ServiceUnavailable
    from dnsentinel.settings import get_settings

    monkeypatch.setenv("DNSENTINEL_REDIS__URL", "redis://127.0.0.1:1/0")  # nothing listens on port 1
    monkeypatch.setenv("DNSENTINEL_REDIS__SOCKET_TIMEOUT_S", "0.5")
    get_settings.cache_clear()
    try:
        res = CliRunner().invoke(app, ["lists", "show"])
        assert res.exit_code != 0
        assert isinstance(res.exception, ServiceUnavailable) and "unreachable" in str(res.exception)
    finally:
        get_settings.cache_clear()
