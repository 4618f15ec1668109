"""Replay log files into ``dns.queries``: parse, encode, produce, pace, count, summarise.

Every line ends up in exactly one bucket of the summary: produced, skipped (malformed, with a
reason; the first few are shown with their line numbers) or ignored (well-formed records that
are not queries). Nothing is dropped silently.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol

from dnsentinel.producers.encode import EventEncoder, NameInfo
from dnsentinel.producers.formats import SNIFF_BYTES, UnknownFormat, binary_parser, detect, text_parser
from dnsentinel.producers.pacing import Pacer
from dnsentinel.producers.parse_zeek import ZeekTsv
from dnsentinel.producers.records import Ignored, ParseError, ParseStats, Query
from dnsentinel.producers.sources import Source, SourceError, follow_lines, open_source

MAX_EXAMPLES = 5


class Sink(Protocol):
    def produce(self, key: bytes, value: str | bytes) -> None: ...


@dataclass
class ReplayOptions:
    fmt: str = "auto"
    rate: float | None = None
    speed: float | None = None
    follow: bool = False
    mapping: dict[str, str] = field(default_factory=dict)
    collect_names: bool = False
    """Keep the set of scorable names produced (for ``--wait-verdicts``)."""


@dataclass
class FileSummary:
    path: str
    fmt: str | None = None
    lines: int = 0
    produced: int = 0
    unscorable: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class ReplaySummary:
    files: list[FileSummary] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    duration_s: float = 0.0
    interrupted: bool = False

    @property
    def lines(self) -> int:
        return sum(f.lines for f in self.files)

    @property
    def produced(self) -> int:
        return sum(f.produced for f in self.files)

    @property
    def skipped(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for f in self.files:
            total.update(f.skipped)
        return total

    @property
    def ignored(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for f in self.files:
            total.update(f.ignored)
        return total


Progress = Callable[[Source, ParseStats, int], None]
"""Called now and then with the source, its parse stats and events produced so far."""


def replay_file(path: str, sink: Sink, opts: ReplayOptions, summary: ReplaySummary,
                progress: Progress | None = None, on_open: Callable[[Source, str], None] | None = None,
                stop: Callable[[], bool] = lambda: False) -> FileSummary:
    """Replay one file into ``sink``; errors of the file itself are recorded, not raised."""
    result = FileSummary(path=path)
    summary.files.append(result)
    try:
        src = open_source(path, follow=opts.follow)
    except SourceError as exc:
        result.error = str(exc)
        return result
    try:
        fmt = opts.fmt
        if fmt == "auto":
            fmt = detect(src.stream.peek(SNIFF_BYTES)[:SNIFF_BYTES]) or ""
            if not fmt:
                raise UnknownFormat(src.error or f"{path}: format not recognised; pass --format")
        result.fmt = fmt
        if on_open is not None:
            on_open(src, fmt)
        stats = ParseStats()
        if fmt == "dnstap":
            if opts.follow:
                raise SourceError("--follow is for text logs, not dnstap")
            items = binary_parser(fmt, src.stream, stats)
        else:
            lines: Iterable[str] = follow_lines(src.stream, stop=stop) if opts.follow else src.text()
            items = text_parser(fmt, lines, stats, opts.mapping)
        tick = (lambda n: progress(src, stats, n)) if progress else None
        encoder = EventEncoder("replay", origin=src.name)
        if fmt == "zeek" and opts.rate is None and opts.speed is None:
            _pump_zeek(lines, sink, encoder, opts, result, summary, stats, tick, stop)
        else:
            _pump(items, sink, encoder, opts, result, summary, stats, tick, stop)
        result.lines = stats.lines
        result.notes.extend(stats.notes)
        if src.error:
            result.skipped["truncated_file"] += 1
            result.examples.append(f"after line {stats.lines}: {src.error}")
    except (SourceError, UnknownFormat) as exc:
        result.error = str(exc)
    finally:
        src.close()
    return result


def _pump(items: Iterable[Query | ParseError | Ignored], sink: Sink, encoder: EventEncoder,
          opts: ReplayOptions, result: FileSummary, summary: ReplaySummary, stats: ParseStats,
          tick: Callable[[int], None] | None, stop: Callable[[], bool]) -> None:
    """The general loop (every format, with pacing); Zeek without pacing has its own, below."""
    handle = _Handler(sink, encoder, result, summary.names if opts.collect_names else None,
                      Pacer(opts.rate, opts.speed))
    seen = 0
    try:
        for item in items:
            seen += 1
            handle(item, stats.lines)
            if not seen & 0x1FFF:
                if tick is not None:
                    tick(handle.produced)
                if stop():
                    break
    except SourceError as exc:
        result.skipped["unreadable"] += 1
        result.examples.append(f"line {stats.lines + 1}: unreadable ({exc})")
    finally:
        result.produced = handle.produced
        result.lines = stats.lines
        result.unscorable = encoder.unscorable
        if tick is not None:
            tick(handle.produced)


class _Handler:
    """What happens to one parsed item: encode and produce a Query, count everything else."""

    def __init__(self, sink: Sink, encoder: EventEncoder, result: FileSummary, names: set[str] | None,
                 pacer: Pacer | None = None) -> None:
        self.produce = sink.produce
        self.encode = encoder.encode
        self.result = result
        self.names = names
        self.pacer = pacer if pacer is not None and pacer.active else None
        self.produced = 0

    def __call__(self, item: Query | ParseError | Ignored, line_no: int) -> None:
        result = self.result
        if type(item) is Query:
            enc = self.encode(item)
            if type(enc) is str:
                result.skipped[enc] += 1
                if len(result.examples) < MAX_EXAMPLES:
                    result.examples.append(f"line {line_no}: {enc}")
                return
            if self.pacer is not None:
                self.pacer.wait(item.ts)
            self.produce(enc.key, enc.value)
            self.produced += 1
            if self.names is not None and enc.scorable is not None:
                self.names.add(enc.scorable)
        elif type(item) is Ignored:
            result.ignored[item.reason] += 1
        else:
            result.skipped[item.reason] += 1
            if len(result.examples) < MAX_EXAMPLES:
                result.examples.append(f"line {item.line_no}: {item.reason}" + (f" ({item.detail})" if item.detail else ""))


def _pump_zeek(lines: Iterable[str], sink: Sink, encoder: EventEncoder, opts: ReplayOptions,
               result: FileSummary, summary: ReplaySummary, stats: ParseStats,
               tick: Callable[[int], None] | None, stop: Callable[[], bool]) -> None:
    """Zeek TSV without pacing: the fused fast path behind the replay benchmark.

    A line whose name, client, qtype and rcode/proto were seen before (most lines of a real
    log) is split, looked up in the encoder's caches and rendered in one go: no Query object,
    no generator hop, and librdkafka's ``produce`` called directly. Any other line (headers,
    first sightings, unset or odd fields, errors) takes the general path through
    ``ZeekTsv.parse_line`` and ``EventEncoder.encode``, which also fills the caches, so both
    paths produce byte-identical events.
    """
    z = ZeekTsv()
    raw = getattr(sink, "raw_produce", None)
    if raw is not None:
        raw_produce, topic = raw()
    else:
        raw_produce, topic = None, ""
    slow_produce = sink.produce
    poll = getattr(sink, "poll", None)
    names_cache, clients, qtypes, tails = encoder.names, encoder.clients, encoder.qtypes, encoder.tails
    head, max_ts = encoder.head, encoder.max_ts
    max_s = str(max_ts)  # 13 digits: ASCII digit strings of one length compare like numbers
    names = summary.names if opts.collect_names else None
    handle = _Handler(sink, encoder, result, names)
    produced = fast = unscorable = 0
    line_no = 0

    def layout() -> tuple:
        i_ts, i_client, i_proto, i_rtt, i_query, i_qtype, i_rcode = z.layout
        ok = min(z.layout) >= 0
        return z.sep, z.unset, z.width, ok, i_ts, i_client, i_proto, i_rtt, i_query, i_qtype, i_rcode

    sep, unset, width, fast_ok, i_ts, i_client, i_proto, i_rtt, i_query, i_qtype, i_rcode = layout()
    try:
        for line in lines:
            line_no += 1
            if fast_ok and line[:1] != "#":
                cols = line.split(sep, width)
                if len(cols) > width:
                    info = names_cache.get(cols[i_query])
                    client = clients.get(cols[i_client])
                    qtype = qtypes.get(cols[i_qtype])
                    rcode = cols[i_rcode]
                    proto = cols[i_proto]
                    tail = tails.get((None if rcode == unset else rcode, None if proto == unset else proto))
                    # Zeek prints ts and rtt with six decimals: ms and µs are cut from the text.
                    x = cols[i_ts]
                    r = cols[i_rtt]
                    if r == unset:
                        lat = ""
                    elif len(r) >= 8 and r[-7] == ".":
                        us = (r[:-7] + r[-6:]).lstrip("0") or "0"
                        lat = ',"latency_us":' + us if us.isdecimal() and us.isascii() and len(us) <= 12 else "?"
                    else:
                        lat = "?"
                    if (type(info) is NameInfo and client and qtype and tail is not None and lat != "?"
                            and len(x) == 17 and x[10] == "." and x[0] != "0"):
                        tss = x[:10] + x[11:14]
                        if tss.isdecimal() and tss.isascii() and tss <= max_s:
                            value = f'{head}{tss},"name":{info.json_name},"qtype":{qtype},"client":{client}{tail}{lat}}}'
                            if raw_produce is not None:
                                try:
                                    raw_produce(topic, value, info.key)
                                    fast += 1
                                except BufferError:
                                    slow_produce(info.key, value)
                            else:
                                slow_produce(info.key, value)
                            produced += 1
                            scorable = info.scorable
                            if scorable is None:
                                unscorable += 1
                            elif names is not None:
                                names.add(scorable)
                            if not line_no & 0x1FFF:
                                stats.lines = line_no
                                if poll is not None:
                                    poll(0)
                                if tick is not None:
                                    tick(produced + handle.produced)
                                if stop():
                                    break
                            continue
            # General path: anything the fast path did not fully recognise.
            stats.lines = line_no
            item = z.parse_line(line, line_no)
            if item is None:
                if line[:1] == "#":
                    sep, unset, width, fast_ok, i_ts, i_client, i_proto, i_rtt, i_query, i_qtype, i_rcode = layout()
                continue
            handle(item, line_no)
            if encoder.max_ts != max_ts:
                max_ts = encoder.max_ts
                max_s = str(max_ts)
    except SourceError as exc:
        result.skipped["unreadable"] += 1
        result.examples.append(f"line {line_no + 1}: unreadable ({exc})")
    finally:
        produced += handle.produced
        stats.lines = line_no
        z.finish(stats, line_no)
        if fast and hasattr(sink, "count_sent"):
            sink.count_sent(fast)  # type: ignore[attr-defined]
        encoder.unscorable += unscorable
        result.produced = produced
        result.lines = line_no
        result.unscorable = encoder.unscorable
        if tick is not None:
            tick(produced)


def replay(paths: list[str], sink: Sink, opts: ReplayOptions, progress: Progress | None = None,
           on_open: Callable[[Source, str], None] | None = None,
           stop: Callable[[], bool] = lambda: False) -> ReplaySummary:
    """Replay files in order; Ctrl-C stops reading but keeps what was produced (caller flushes)."""
    summary = ReplaySummary()
    start = time.monotonic()
    try:
        for path in paths:
            replay_file(path, sink, opts, summary, progress, on_open, stop)
            if stop():
                summary.interrupted = True
                break
    except KeyboardInterrupt:
        summary.interrupted = True
    summary.duration_s = time.monotonic() - start
    return summary
