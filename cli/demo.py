"""``dnsentinel demo``: the whole system on one machine, shown step by step.

Starts the stack, workers and the dashboard, replays a sample log and keeps generated traffic
flowing, then proves the main promise on a name nobody has seen: its first query is answered
normally, a malicious verdict arrives well under a second later, the next query is blocked, and
an analyst's vetted allow unblocks it. Ctrl-C (or ``dnsentinel stack down``) stops everything.
"""

from __future__ import annotations

import random
import string
import time
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console

from dnsentinel.cli import apps
from dnsentinel.errors import DnsentinelError, ServiceUnavailable
from dnsentinel.settings import Settings, get_settings

console = Console()

DEMO_LOGIN = ("analyst", "dnsentinel")


def _dashboard_login(settings: Settings) -> str:
    """How to log in: the demo login only while the dashboard offers it (no user anywhere, loopback)."""
    from dnsentinel.dashboard.auth import Accounts

    try:
        demo = Accounts.from_settings(settings).demo_available(settings.dashboard.address)
    except Exception:  # Redis unreachable: the dashboard would say so on its login page
        demo = False
    return f"{DEMO_LOGIN[0]} / {DEMO_LOGIN[1]}" if demo else "your dashboard users (dnsentinel users list)"


@dataclass
class BlockTimings:
    """What the demo measures on one never-seen name (milliseconds)."""

    name: str
    score: float
    first_answer: str
    verdict_ms: float
    blocked_answer: str
    first_query_to_block_ms: float
    unblock_ms: float | None = None


def _step(n: int, total: int, text: str) -> None:
    console.print(f"\n[bold cyan][{n}/{total}][/] {text}")


# --- DNS ---------------------------------------------------------------------------------


def dns_answer(settings: Settings, name: str, timeout_s: float = 2.0) -> tuple[str, str]:
    """Ask the local CoreDNS for ``name`` A; returns (rcode text, first answer or EDE text)."""
    import dns.edns
    import dns.message
    import dns.query
    import dns.rcode

    query = dns.message.make_query(name, "A", use_edns=0)
    reply = dns.query.udp(query, settings.coredns.host, port=settings.coredns.port, timeout=timeout_s)
    rcode = dns.rcode.to_text(reply.rcode())
    answers = [rr.to_text() for rrset in reply.answer for rr in rrset]
    ede = [opt.text or "" for opt in reply.options if opt.otype == dns.edns.OptionType.EDE]
    detail = answers[0] if answers else (f"EDE: {ede[0]}" if ede else "no answer")
    return rcode, detail


def is_blocked(settings: Settings, rcode: str, detail: str) -> bool:
    """Blocked answers are NXDOMAIN/REFUSED/NODATA with an EDE, or a null/sinkhole address."""
    return rcode != "NOERROR" or detail.startswith("EDE") or detail in ("0.0.0.0", "::")


# --- the never-seen DGA name -------------------------------------------------------------


def fresh_dga_name(settings: Settings, tries: int = 200) -> tuple[str, float]:
    """A random name that no one has queried and the current model calls malicious."""
    from dnsentinel.models import load
    from dnsentinel.models.detector import Detector
    from dnsentinel.verdict_cache.cache import VerdictCache

    detector = Detector.of(load())
    cache = VerdictCache.from_settings(settings)
    rng = random.Random()
    for _ in range(tries):
        batch = [
            "".join(rng.choices(string.ascii_lowercase, k=rng.randint(12, 20))) + rng.choice((".com", ".net", ".biz", ".info"))
            for _ in range(32)
        ]
        decided = detector.decide(batch)
        known = cache.get_verdicts(batch)
        for name, score, label in zip(batch, decided.scores, decided.labels):
            if label == "malicious" and name not in known:
                return name, float(score)
    raise DnsentinelError("could not find a random name the current model calls malicious; is the model trained?")


def first_query_to_block(settings: Settings, name: str, score: float, timeout_s: float = 10.0) -> BlockTimings:
    """Query a never-seen name, wait for its verdict, query again; times each step."""
    from dnsentinel.verdict_cache.cache import VerdictCache

    cache = VerdictCache.from_settings(settings)
    t0 = time.perf_counter()
    rcode, detail = dns_answer(settings, name)
    first = f"{rcode} {detail}"
    if is_blocked(settings, rcode, detail):
        raise DnsentinelError(f"{name} was blocked on its first query ({first}); it was not new")
    deadline = t0 + timeout_s
    verdict = None
    while time.perf_counter() < deadline:
        verdict = cache.get_verdicts([name]).get(name)
        if verdict is not None:
            break
        time.sleep(0.005)
    if verdict is None:
        raise ServiceUnavailable(f"no verdict for {name} within {timeout_s:.0f} s: are the plugin, Kafka and a worker running?")
    verdict_ms = (time.perf_counter() - t0) * 1000
    while time.perf_counter() < deadline:
        rcode, detail = dns_answer(settings, name)
        if is_blocked(settings, rcode, detail):
            break
        time.sleep(0.005)
    else:
        raise DnsentinelError(f"{name} has verdict {verdict.label} but was not blocked within {timeout_s:.0f} s")
    block_ms = (time.perf_counter() - t0) * 1000
    return BlockTimings(name, score, first, verdict_ms, f"{rcode} {detail}", block_ms)


def vetted_allow_unblocks(settings: Settings, timings: BlockTimings, timeout_s: float = 5.0) -> float:
    """An analyst allows the name; returns the milliseconds until DNS answers it again."""
    from dnsentinel.verdict_cache.cache import VerdictCache

    cache = VerdictCache.from_settings(settings)
    t0 = time.perf_counter()
    cache.set_vetted(timings.name, "allow", by="demo", note="dnsentinel demo: analyst override")
    while time.perf_counter() - t0 < timeout_s:
        rcode, detail = dns_answer(settings, timings.name)
        if not is_blocked(settings, rcode, detail):
            return (time.perf_counter() - t0) * 1000
        time.sleep(0.005)
    raise DnsentinelError(f"vetted allow of {timings.name} did not reach DNS within {timeout_s:.0f} s")


# --- traffic -----------------------------------------------------------------------------


def write_sample_log(path: Path, lines: int = 3000, seed: int = 11) -> Path:
    """A Zeek dns.log of the last hour of a small office, drawn by the load generator's mix.

    DGA names get NXDOMAIN, as unregistered DGA domains do, and ten minutes before the end the
    infected client tries 20 of them within a minute (a DGA looking for its C2), which the
    behaviour detections report as a ``dga_host`` alert.
    """
    from dnsentinel.producers.loadgen import Mix, TrafficModel

    traffic = TrafficModel(Mix(dga=0.03, phishing=0.02, flood=0.0), clients=60, seed=seed)
    dga = set(traffic._dga)
    now = time.time()
    header = (
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tdns\n"
        "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\ttrans_id\trtt\tquery\tqclass\t"
        "qclass_name\tqtype\tqtype_name\trcode\trcode_name\tAA\tTC\tRD\tRA\tZ\tanswers\tTTLs\trejected\n"
    )
    queries = [(now - 3600 + 3600 * i / lines, name, qtype, client)
               for i, (name, qtype, client) in enumerate(traffic.draw(lines))]
    burst = sorted(dga)[:20]
    minute = (now - 600) // 60 * 60  # the burst inside one minute window
    queries += [(minute + 5 + k, name, "A", traffic.infected[0]) for k, name in enumerate(burst)]
    rows = []
    for i, (ts, name, qtype, client) in enumerate(sorted(queries)):
        rcode = "3\tNXDOMAIN" if name in dga else "0\tNOERROR"
        rows.append(
            f"{ts:.6f}\tCdemo{i:x}\t{client}\t{40000 + i % 20000}\t10.0.0.1\t53\tudp\t{i % 65536}\t0.0012\t"
            f"{name}\t1\tC_INTERNET\t1\t{qtype}\t{rcode}\tF\tF\tT\tT\t0\t-\t-\tF\n"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "".join(rows), encoding="utf-8")
    return path


def wait_alerts(settings: Settings, since_ms: int, timeout_s: float = 45.0) -> list:
    """The behaviour alerts raised since ``since_ms`` (event time), once the replay's windows have closed."""
    from elasticsearch import Elasticsearch

    from dnsentinel.dashboard import alerts
    from dnsentinel.verdict_cache.es_schema import index_name

    es = Elasticsearch(**settings.elasticsearch.client_kwargs())  # type: ignore[arg-type]
    index = index_name("alerts", prefix=settings.elasticsearch.index_prefix)
    deadline = time.monotonic() + timeout_s
    found: list = []
    while time.monotonic() < deadline and not found:
        time.sleep(2.0)
        es.indices.refresh(index=index, ignore_unavailable=True)
        found = alerts.list_alerts(es, index, 20, since_ms=since_ms)
    return found


def _wait_port(host: str, port: int, timeout_s: float) -> bool:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.5)
    return False


def wait_pipeline(settings: Settings, timeout_s: float = 180.0) -> float:
    """Produce a canary event and wait for its verdict: proves workers consume and score."""
    from dnsentinel.producers.kafka_out import EventProducer
    from dnsentinel.verdict_cache.cache import VerdictCache
    from dnsentinel.verdict_cache.events import QueryEvent, encode_event
    from dnsentinel.verdict_cache.names import routing_key

    cache = VerdictCache.from_settings(settings)
    producer = EventProducer(settings=settings)
    name = "canary-" + "".join(random.choices(string.ascii_lowercase, k=10)) + ".example.org"
    t0 = time.monotonic()
    next_send = t0
    while time.monotonic() - t0 < timeout_s:
        if time.monotonic() >= next_send:  # resend: the group may still be rebalancing
            event = QueryEvent(ts=int(time.time() * 1000), name=name, qtype="A", client="127.0.0.1",
                               source="loadgen", server="demo")
            producer.produce(routing_key(name), encode_event(event))
            next_send = time.monotonic() + 5
        producer.poll()
        if cache.get_verdicts([name]):
            producer.close()
            return time.monotonic() - t0
        time.sleep(0.1)
    producer.close()
    raise ServiceUnavailable(f"workers produced no verdict within {timeout_s:.0f} s; see {settings.stack.state_dir}/logs/worker-*.log")


# --- the command -------------------------------------------------------------------------


def demo(
    workers: int = typer.Option(1, min=1, help="Worker processes in the consumer group."),
    dashboard: bool = typer.Option(True, help="Start the dashboard."),
    traffic: bool = typer.Option(True, help="Keep generated traffic flowing (loadgen) while the demo runs."),
    wait: bool = typer.Option(True, help="After the steps, keep running until Ctrl-C, then stop everything."),
) -> None:
    """Run the full demo: stack, plugin, workers, dashboard, replay, and a DGA name blocked live.

    Examples:\n
      dnsentinel demo\n
      dnsentinel demo --workers 2 --no-wait    # leave it running; stop with 'dnsentinel stack down'
    """
    from dnsentinel.cli import stackctl

    settings = get_settings()
    total = 7
    _step(1, total, "Starting the stack: Redis, Kafka, Elasticsearch, CoreDNS with the dnsentinel plugin")
    stackctl.up(settings)
    try:
        _step(2, total, f"Starting {workers} worker(s)" + (" and the dashboard" if dashboard else ""))
        for i in range(workers):
            apps.start(settings, apps.worker_app(settings, i))
        if dashboard:
            apps.start(settings, apps.dashboard_app(settings))
        took = wait_pipeline(settings)
        console.print(f"  workers are scoring: a canary event got its verdict after {took:.1f} s")

        _step(3, total, "Replaying a sample Zeek log (the last hour of a small office network)")
        sample = write_sample_log(settings.stack.state_dir / "demo" / "office-dns.log")
        rc = __import__("subprocess").call(apps.cli_argv("replay", str(sample), "--no-progress", "--wait-verdicts", "--wait-timeout", "120"))
        if rc != 0:
            raise DnsentinelError(f"replay of {sample} failed (exit {rc})")
        raised = wait_alerts(settings, int((time.time() - 3700) * 1000))
        for a in raised:
            console.print(f"  alert       : {a.severity} {a.kind} — {a.summary}")
        if not raised:
            console.print("  alert       : none yet (see `dnsentinel alerts --since 2h` in a minute)")

        if traffic:
            _step(4, total, "Generated traffic flows in the background (dnsentinel loadgen, 200 queries/s)")
            apps.start(settings, apps.App("loadgen", apps.cli_argv("loadgen", "--rate", "200", "--duration", "86400"), {}))
        else:
            _step(4, total, "No generated traffic (--no-traffic)")

        _step(5, total, "A DGA-like name that nobody has ever queried")
        name, score = fresh_dga_name(settings)
        console.print(f"  {name}  (the model will score it {score:.4f})")
        t = first_query_to_block(settings, name, score)
        console.print(f"  first query : {t.first_answer}   (answered normally: nothing is known yet)")
        console.print(f"  verdict     : malicious, in Redis {t.verdict_ms:.0f} ms after the first query")
        console.print(f"  next query  : {t.blocked_answer}   (blocked {t.first_query_to_block_ms:.0f} ms after the first query)")

        _step(6, total, "An analyst vets the name as allowed")
        t.unblock_ms = vetted_allow_unblocks(settings, t)
        rcode, detail = dns_answer(settings, name)
        console.print(f"  after allow : {rcode} {detail}   (DNS saw the decision after {t.unblock_ms:.0f} ms)")

        _step(7, total, "Look around")
        d = settings.dashboard
        if dashboard:
            ready = _wait_port(d.address, d.port, 60)
            login = _dashboard_login(settings)
            state = "" if ready else "  (still starting)"
            console.print(f"  dashboard   : http://{d.address}:{d.port}   login {login}{state}")
        console.print(f"  DNS         : dig @{settings.coredns.host} -p {settings.coredns.port} example.com")
        console.print(f"  status      : dnsentinel stack status;  logs under {settings.stack.state_dir}/logs")
        if not wait:
            console.print("\nLeft running. Stop everything with: [bold]dnsentinel stack down[/]")
            return
        console.print("\nRunning. Press [bold]Ctrl-C[/] to stop everything.")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        console.print("\nStopping …")
        apps.stop_all(settings)
        stackctl.down(settings)
    except DnsentinelError:
        console.print(f"[yellow]Left the stack running for a look: logs under {settings.stack.state_dir}/logs; "
                      "stop it with 'dnsentinel stack down'.[/]")
        raise


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
