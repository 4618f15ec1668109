"""Behaviour detections, driven by hand-made event sequences (positive, negative, the edge between)."""

from __future__ import annotations

import random
import string

import pytest

from dnsentinel.errors import ConfigError
from dnsentinel.settings import DetectionSettings
from dnsentinel.stream_processor.detections import engine, rules
from dnsentinel.stream_processor.detections.tunnel import char_entropy
from dnsentinel.stream_processor.detections.windows import Episodes, Windows
from dnsentinel.verdict_cache.alerts import Alert, Signal

T0 = 1_525_000_000_000  # 2018: replays keep their own time
CFG = DetectionSettings()


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _random_labels(n: int, length: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(length)) for _ in range(n)]


def _stages(cfg: DetectionSettings = CFG, rule_set: rules.RuleSet | None = None, popular=lambda _d: False):
    clock = Clock()
    rs = rule_set or rules.load()
    return clock, engine.DomainStage(cfg, rs, popular, clock=clock), engine.ClientStage(cfg, rs, clock=clock)


def _flush(clock: Clock, domain: engine.DomainStage, client: engine.ClientStage) -> tuple[list[Alert], list[engine.ClientAlert]]:
    clock.t += CFG.idle_flush_s + 1
    return domain.close(), client.close()


def _feed(domain, client, events) -> None:
    for ev in events:
        sig = domain.observe(**ev)
        if sig is not None:
            client.on_signal(Signal.parse(sig.encode()))  # through the wire format, as between workers


def _q(ts, name, domain, client="10.0.0.5", qtype="A", nxdomain=False, judgeable=True, score=None, label=None):
    return dict(ts=ts, client=client, name=name, domain=domain, qtype=qtype, nxdomain=nxdomain,
                judgeable=judgeable, score=score, label=label)


# --- windows -------------------------------------------------------------------------------------

def test_windows_close_by_each_keys_own_time_and_by_idleness() -> None:
    clock = Clock()
    w: Windows[str, list] = Windows(60_000, 10_000, 5_000, list, clock=clock)
    w.at("a", T0).append(1)
    w.at("b", T0 + 3_600_000).append(2)  # another key an hour ahead: does not close "a"
    assert list(w.close()) == []
    w.at("a", T0 + 60_000 + 10_000).append(3)  # a's own time passes its first window + lateness
    assert [(k, agg) for k, _s, agg in w.close()] == [("a", [1])]
    w.at("a", T0 + 5).append(4)  # late: counted, judged on its own
    assert w.late == 1
    clock.t = 6
    assert sorted(k for k, _s, _a in w.close()) == ["a", "a", "b"]


def test_episodes_merge_findings_within_the_cooldown() -> None:
    ep = Episodes(cooldown_ms=3_600_000)
    first = ep.record("dga_host", "10.0.0.5", None, T0, T0 + 50_000, 20)
    again = ep.record("dga_host", "10.0.0.5", None, T0 + 120_000, T0 + 150_000, 30)
    assert again.id == first.id and again.count == 50 and again.first_seen == T0
    later = ep.record("dga_host", "10.0.0.5", None, T0 + 10_000_000, T0 + 10_001_000, 5)
    assert later.id != first.id


# --- DGA host ------------------------------------------------------------------------------------

def _dga_burst(n: int, mean_score: float, client: str = "10.0.0.5") -> list[dict]:
    return [_q(T0 + i * 1000, f"{label}.com", f"{label}.com", client=client, nxdomain=True, score=mean_score)
            for i, label in enumerate(_random_labels(n, 14))]


def test_dga_host_alerts_on_many_random_nxdomains_from_one_client() -> None:
    clock, domain, client = _stages()
    _feed(domain, client, _dga_burst(CFG.dga_host.nx_min_names, 0.4))
    _tunnels, alerts = _flush(clock, domain, client)
    assert len(alerts) == 1
    alert = alerts[0].alert
    assert (alert.kind, alert.client, alert.first_seen) == ("dga_host", "10.0.0.5", T0)
    assert alert.details["nxdomain_names"] == len(alert.evidence) == CFG.dga_host.nx_min_names


def test_dga_host_edge_one_name_short_or_typos_do_not_alert() -> None:
    clock, domain, client = _stages()
    _feed(domain, client, _dga_burst(CFG.dga_host.nx_min_names - 1, 0.4))  # one short
    _feed(domain, client, _dga_burst(40, 0.05, client="10.0.0.6"))  # many NXDOMAINs, but ordinary-looking
    assert _flush(clock, domain, client)[1] == []


def test_dga_host_by_scores_promotes_the_uncertain_names() -> None:
    clock, domain, client = _stages()
    events = [_q(T0 + i, f"{lbl}.net", f"{lbl}.net", score=0.97, label="uncertain" if i % 2 else "malicious")
              for i, lbl in enumerate(_random_labels(CFG.dga_host.flagged_min_names, 12))]
    _feed(domain, client, events)
    [found] = _flush(clock, domain, client)[1]
    assert found.alert.kind == "dga_host" and found.alert.details["flagged_names"] == CFG.dga_host.flagged_min_names
    assert sorted(found.promote) == sorted(e["name"] for e in events if e["label"] == "uncertain")


def test_unscored_names_and_same_name_repeats_do_not_make_a_dga_host() -> None:
    clock, domain, client = _stages()
    chrome_probes = [_q(T0 + i, lbl, lbl, nxdomain=True, judgeable=False) for i, lbl in enumerate(_random_labels(50, 10))]
    retries = [_q(T0 + i, "xjwqkzpt.com", "xjwqkzpt.com", nxdomain=True, score=0.99) for i in range(100)]
    _feed(domain, client, chrome_probes + retries)
    assert _flush(clock, domain, client)[1] == []


# --- tunnel --------------------------------------------------------------------------------------

def test_tunnel_alerts_on_many_unique_encoded_labels_even_without_a_public_suffix() -> None:
    clock, domain, client = _stages()
    _feed(domain, client, [_q(T0 + i * 200, f"{lbl}.pirate.sea", "pirate.sea", qtype="NULL", judgeable=False)
                           for i, lbl in enumerate(_random_labels(CFG.tunnel.min_unique, 30))])
    [alert], _ = _flush(clock, domain, client)
    assert (alert.kind, alert.domain, alert.client, alert.severity) == ("tunnel", "pirate.sea", "10.0.0.5", "high")
    assert alert.details["unique_subdomains"] == CFG.tunnel.min_unique and alert.evidence[0].endswith(".pirate.sea")


def test_tunnel_edge_and_negatives() -> None:
    clock, domain, client = _stages(popular=lambda d: d == "akamaiedge.net")
    few = [_q(T0 + i, f"{lbl}.t1.example", "t1.example", qtype="TXT") for i, lbl in
           enumerate(_random_labels(CFG.tunnel.min_unique - 1, 30))]  # one short
    cdn = [_q(T0 + i, f"{lbl}.akamaiedge.net", "akamaiedge.net") for i, lbl in enumerate(_random_labels(500, 30))]
    web = [_q(T0 + i, f"host{i}.shop.example", "shop.example") for i in range(100)]  # short, plain, A
    _feed(domain, client, few + cdn + web)
    assert _flush(clock, domain, client)[0] == []


def test_entropy_of_encoded_labels_is_above_words() -> None:
    assert char_entropy(_random_labels(50, 30)) > 5.0 > char_entropy(["mail", "www", "shop", "images"])


# --- behaviour rules -----------------------------------------------------------------------------

def test_ip_echo_then_dnsbl_self_lookup_like_trickbot() -> None:
    clock, domain, client = _stages()
    echo = ["api.ipify.org", "icanhazip.com", "checkip.amazonaws.com", "ipinfo.io"]
    zones = ["zen.spamhaus.org", "bl.spamcop.net", "b.barracudacentral.org", "cbl.abuseat.org", "dnsbl.sorbs.net"]
    events = [_q(T0 + i, n, n.split(".", n.count(".") - 1)[-1]) for i, n in enumerate(echo)]
    events += [_q(T0 + 100 + i, f"4.113.0.203.{z}", z.split(".", z.count(".") - 1)[-1]) for i, z in enumerate(zones)]
    _feed(domain, client, events)
    found = {a.alert.kind: a.alert for a in _flush(clock, domain, client)[1]}
    assert set(found) == {"ip_echo", "dnsbl_lookup"}
    assert found["dnsbl_lookup"].details["distinct"] == 5 and "203.0.113.4" in found["dnsbl_lookup"].summary


def test_a_mail_server_checking_many_addresses_once_each_is_not_a_dnsbl_self_lookup() -> None:
    clock, domain, client = _stages()
    _feed(domain, client, [_q(T0 + i, f"{i % 250}.{i // 250}.51.198.zen.spamhaus.org", "spamhaus.org") for i in range(300)])
    assert _flush(clock, domain, client)[1] == []


def test_exempt_clients_and_mx_bursts(tmp_path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text('[[rule]]\nkind = "mx_burst"\ndescription = "Spam bot"\nmatch = "qtype"\nqtypes = ["mx"]\n'
                    'min_distinct = 5\nexempt_clients = ["192.0.2.25/32"]\n')
    clock, domain, client = _stages(rule_set=rules.load(path))
    for who in ("10.0.0.9", "192.0.2.25"):
        _feed(domain, client, [_q(T0 + i, f"d{i}.example", f"d{i}.example", client=who, qtype="MX") for i in range(5)])
    [found] = _flush(clock, domain, client)[1]
    assert (found.alert.kind, found.alert.client) == ("mx_burst", "10.0.0.9")


@pytest.mark.parametrize("text,message", [
    ("not toml [", "not valid TOML"),
    ("x = 1", "expected one or more [[rule]] tables"),
    ('[[rule]]\nkind = "a b"\ndescription = "d"\nmatch = "names"\nnames = ["x.com"]', "rule 1 (a b): kind"),
    ('[[rule]]\nkind = "xy"\ndescription = "d"\nmatch = "names"', "needs a non-empty 'names' list"),
    ('[[rule]]\nkind = "xy"\ndescription = "d"\nmatch = "qtype"\nqtypes = ["MX"]\nexempt_clients = ["10.0.0.300"]',
     "exempt_clients"),
    ('[[rule]]\nkind = "xy"\ndescription = "d"\nmatch = "names"\nnames = ["a.com"]\nwindow = 5', "window"),
])
def test_bad_rules_files_name_the_rule_and_field(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="behaviour rules .*bad.toml") as err:
        rules.load(path)
    assert message in str(err.value)


def test_many_flagged_names_under_one_domain_are_a_tunnel_not_a_dga_host() -> None:
    clock, domain, client = _stages()
    _feed(domain, client, [_q(T0 + i, f"{lbl}.exfil.example", "exfil.example", qtype="TXT", score=0.9,
                              label="uncertain") for i, lbl in enumerate(_random_labels(60, 40))])
    tunnels, hosts = _flush(clock, domain, client)
    assert [a.kind for a in tunnels] == ["tunnel"] and hosts == []


def test_flagged_names_that_resolve_are_not_a_dga_host() -> None:
    """A busy client reaching several flagged sites that exist (phishing pages) is not a DGA."""
    clock, domain, client = _stages()
    _feed(domain, client, [_q(T0 + i, f"{lbl}-login.net", f"{lbl}-login.net", score=0.95, label="malicious")
                           | {"resolved": True} for i, lbl in enumerate(_random_labels(30, 8))])
    assert _flush(clock, domain, client)[1] == []
