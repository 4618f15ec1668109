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

from dnsentinel.producers import parse_zeek
from dnsentinel.producers.encode import EventEncoder
from dnsentinel.producers.formats import SNIFF_BYTES, UnknownFormat, binary_parser, detect, is_binary, text_parser
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
        return sum((f.skipped for f in self.files), Counter())

    @property
    def ignored(self) -> Counter[str]:
        return sum((f.ignored for f in self.files), Counter())


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
        if is_binary(fmt):
            if opts.follow:
                raise SourceError(f"--follow is for text logs, not {fmt}")
            items = binary_parser(fmt, src.stream, stats)
        else:
            lines: Iterable[str] = follow_lines(src.stream, stop=stop) if opts.follow else src.text()
            items = text_parser(fmt, lines, stats, opts.mapping)
        tick = (lambda n: progress(src, stats, n)) if progress else None
        encoder = EventEncoder("replay", origin=src.name)
        if fmt == parse_zeek.FORMAT.name and opts.rate is None and opts.speed is None:
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
    """Zeek TSV without pacing: the fused fast path behind the replay benchmark (see :class:`_ZeekPump`)."""
    pump = _ZeekPump(sink, encoder, _Handler(sink, encoder, result, summary.names if opts.collect_names else None))
    try:
        pump.run(lines, stats, tick, stop)
    except SourceError as exc:
        result.skipped["unreadable"] += 1
        result.examples.append(f"line {pump.line_no + 1}: unreadable ({exc})")
    finally:
        produced = pump.produced + pump.handle.produced
        stats.lines = pump.line_no
        pump.z.finish(stats, pump.line_no)
        if pump.fast and hasattr(sink, "count_sent"):
            sink.count_sent(pump.fast)  # type: ignore[attr-defined]
        result.produced = produced
        result.lines = pump.line_no
        result.unscorable = encoder.unscorable
        if tick is not None:
            tick(produced)


class _ZeekPump:
    """The fused Zeek loop: split a line, let the encoder render it from its caches, produce.

    A line whose name, client, qtype and rcode/proto were seen before (most lines of a real
    log) is split once and handed as text to :meth:`EventEncoder.encode_seen`: no Query
    object, no generator hop, and librdkafka's ``produce`` called directly. Any other line
    (headers, first sightings, unset or odd fields, errors) takes the general path through
    ``ZeekTsv.parse_line`` and ``EventEncoder.encode``, which also fills the caches, so both
    paths produce byte-identical events.
    """

    def __init__(self, sink: Sink, encoder: EventEncoder, handle: _Handler) -> None:
        self.z = ZeekTsv()
        raw = getattr(sink, "raw_produce", None)
        self.raw_produce, self.topic = raw() if raw is not None else (None, "")
        self.produce = sink.produce
        self.poll = getattr(sink, "poll", None)
        self.encode_seen = encoder.encode_seen
        self.handle = handle
        self.names = handle.names
        self.line_no = self.produced = self.fast = 0
        """Lines read, events produced by the fast path, and those of them given to ``raw_produce``."""

    def layout(self) -> tuple[str, str, int, bool, int, int, int, int, int, int, int]:
        """The current header's separator, unset marker, split width, fast-path eligibility and columns."""
        z = self.z
        return (z.sep, z.unset, z.width, min(z.layout) >= 0, *z.layout)

    def run(self, lines: Iterable[str], stats: ParseStats, tick: Callable[[int], None] | None,
            stop: Callable[[], bool]) -> None:
        sep, unset, width, fast_ok, i_ts, i_client, i_proto, i_rtt, i_query, i_qtype, i_rcode = self.layout()
        encode_seen, raw_produce, topic, produce = self.encode_seen, self.raw_produce, self.topic, self.produce
        parse_line, handle, names = self.z.parse_line, self.handle, self.names
        line_no = produced = fast = 0
        try:
            for line in lines:
                line_no += 1
                if fast_ok and line[:1] != "#":
                    cols = line.split(sep, width)
                    if len(cols) > width:
                        # Zeek prints ts and rtt with six decimals: ms and µs are cut from the text.
                        x, r = cols[i_ts], cols[i_rtt]
                        if len(x) == 17 and x[10] == "." and (r == unset or (len(r) >= 8 and r[-7] == ".")):
                            rcode, proto = cols[i_rcode], cols[i_proto]
                            got = encode_seen(x[:10] + x[11:14], cols[i_query], cols[i_qtype], cols[i_client],
                                              None if rcode == unset else rcode, None if proto == unset else proto,
                                              None if r == unset else r[:-7] + r[-6:])
                            if got is not None:
                                key, value, scorable = got
                                if raw_produce is None:
                                    produce(key, value)
                                else:
                                    try:
                                        raw_produce(topic, value, key)
                                        fast += 1
                                    except BufferError:
                                        produce(key, value)
                                produced += 1
                                if names is not None and scorable is not None:
                                    names.add(scorable)
                                if not line_no & 0x1FFF and self.checkpoint(line_no, produced, stats, tick, stop):
                                    break
                                continue
                # General path: anything the fast path did not fully recognise.
                stats.lines = line_no
                item = parse_line(line, line_no)
                if item is None:
                    if line[:1] == "#":
                        sep, unset, width, fast_ok, i_ts, i_client, i_proto, i_rtt, i_query, i_qtype, i_rcode = self.layout()
                    continue
                handle(item, line_no)
        finally:
            self.line_no, self.produced, self.fast = line_no, produced, fast

    def checkpoint(self, line_no: int, produced: int, stats: ParseStats, tick: Callable[[int], None] | None,
                   stop: Callable[[], bool]) -> bool:
        """Every 8,192 lines: publish the line count, serve delivery reports, tick; True to stop."""
        stats.lines = line_no
        if self.poll is not None:
            self.poll(0)
        if tick is not None:
            tick(produced + self.handle.produced)
        return stop()


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
