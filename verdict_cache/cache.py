"""The Redis verdict cache (SPEC.md §3): batch reads, pipelined writes, vetted lists.

Workers read and write in batches (one round trip per batch, whatever its
size); analysts' vetted changes go through ``MULTI`` so the hash, the audit
stream and the change announcement never disagree, and, on a primary with a
replica, wait (``WAIT``, bounded) until the replica has them: replication is
asynchronous, and a decision only the dead primary held would be lost in a failover.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from dnsentinel.verdict_cache import keys as K
from dnsentinel.verdict_cache.keys import BadValue, Verdict, format_verdict, parse_verdict
from dnsentinel.verdict_cache.names import InvalidName, normalize
from dnsentinel.verdict_cache.policy import VETTED_ACTIONS, candidates, effective_decision

if TYPE_CHECKING:
    import redis

    from dnsentinel.settings import Settings

__all__ = ["MAX_NOTE", "VerdictCache", "Verdict", "VettedRecord"]

log = logging.getLogger(__name__)

MAX_NOTE = 512
LOG_MAXLEN = 100_000
BULK_ALL = "*"
"""``vetted *`` on the changes channel: many entries changed at once (bulk import)."""
BULK_NAME = "(bulk)"
"""The ``name`` of an audit-stream entry that summarizes one bulk import batch."""


@dataclass(frozen=True, slots=True)
class VettedRecord:
    """An analyst's decision on one entry (``example.com`` or ``*.example.com``)."""

    action: str
    by: str
    at: int
    """Unix seconds."""
    note: str | None = None

    def to_json(self) -> str:
        obj = asdict(self)
        if self.note is None:
            del obj["note"]
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> VettedRecord:
        """Raises ValueError on anything that is not a vetted record."""
        obj = json.loads(text)
        if not isinstance(obj, dict) or obj.get("action") not in VETTED_ACTIONS:
            raise ValueError("not a vetted record")
        note = obj.get("note")
        return cls(obj["action"], str(obj.get("by", "")), int(obj.get("at", 0)), None if note is None else str(note))


def check_vetted(action: str, by: str, note: str | None) -> str | None:
    """Validate a vetted change's fields; returns the cleaned note. Raises ValueError."""
    if action not in VETTED_ACTIONS:
        raise ValueError(f"action {action!r} is not one of {', '.join(VETTED_ACTIONS)}")
    if not by or not by.strip():
        raise ValueError("a vetted change needs the name of who made it")
    note = (note or "").strip() or None
    if note is not None and len(note) > MAX_NOTE:
        raise ValueError(f"note is {len(note)} characters (max {MAX_NOTE})")
    return note


def vetted_entry(raw: str | bytes) -> str:
    """The hash field for a vetted entry: a normalized name, ``*.`` allowed (raises InvalidName).

    A lone ``*`` would cover every name there is: refused.
    """
    name = normalize(raw).name
    if name == "*":
        raise InvalidName("bad_char", "a lone '*' would cover every name; write *.example.com")
    return name


class VerdictCache:
    """Verdicts and vetted decisions in Redis, under ``<prefix>:v1:``."""

    def __init__(self, client: redis.Redis, prefix: str = "dnsentinel", ttls: Mapping[str, int] | None = None,
                 *, vetted_replicas: int = 0, vetted_wait_ms: int = 500) -> None:
        self.client = client
        self.vetted_replicas = vetted_replicas
        """Replicas each vetted change waits for (``redis.vetted_replicas``; 0: none)."""
        self.vetted_wait_ms = vetted_wait_ms
        self.prefix = prefix
        self.ttls = {"malicious": 7 * 86400, "benign": 86400, "uncertain": 3600, **(ttls or {})}
        self.vetted_key = K.vetted_key(prefix)
        self.log_key = K.vetted_log_key(prefix)
        self.channel = K.changes_channel(prefix)
        self.counts: Counter[str] = Counter()
        """``bad_value``, ``bad_record`` and ``unreplicated`` (a vetted change no replica
        acknowledged within ``vetted_wait_ms``) counts, for metrics."""

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> VerdictCache:
        """A cache on the configured Redis (``redis.*`` settings: one server or a Sentinel-managed master)."""
        from dnsentinel.redis_client import sync_client
        from dnsentinel.settings import get_settings

        r = (settings or get_settings()).redis
        client = sync_client(r)
        ttls = {"malicious": r.ttl_malicious_s, "benign": r.ttl_benign_s, "uncertain": r.ttl_uncertain_s}
        return cls(client, r.key_prefix, ttls, vetted_replicas=r.vetted_replicas, vetted_wait_ms=r.vetted_wait_ms)

    def close(self) -> None:
        self.client.close()

    # -- verdicts -------------------------------------------------------------------------------

    def verdict_key(self, name: str) -> str:
        return K.verdict_key(self.prefix, name)

    def get_verdicts(self, names: Iterable[str]) -> dict[str, Verdict]:
        """Verdicts of normalized names in one round trip; missing and unparsable ones are absent."""
        names = list(dict.fromkeys(names))
        if not names:
            return {}
        values = self.client.mget([self.verdict_key(n) for n in names])
        return self._parse_values(names, values)

    def _parse_values(self, names: Sequence[str], values: Sequence[Any]) -> dict[str, Verdict]:
        out: dict[str, Verdict] = {}
        for name, value in zip(names, values):
            if value is None:
                continue
            try:
                out[name] = parse_verdict(name, value)
            except BadValue:
                self.counts["bad_value"] += 1
        return out

    def put_verdicts(self, verdicts: Iterable[Verdict], publish: bool = False) -> int:
        """``SET key value EX ttl`` per verdict, pipelined; returns how many were written.

        ``publish`` announces each as ``verdict <name>`` on the changes channel
        (plugins do not need it: client-side caching invalidates them).
        """
        pipe = self.client.pipeline(transaction=False)
        n = 0
        for v in verdicts:
            pipe.set(self.verdict_key(v.name), format_verdict(v), ex=self.ttls[v.label])
            if publish:
                pipe.publish(self.channel, f"verdict {v.name}")
            n += 1
        if n:
            pipe.execute()
        return n

    def iter_verdicts(self, label: str | None = None, batch: int = 1000) -> Iterator[Verdict]:
        """Every stored verdict (SCAN, so Redis stays responsive), optionally of one label."""
        prefix = self.verdict_key("")
        pending: list[str] = []

        def flush() -> Iterator[Verdict]:
            values = self.client.mget(pending)
            for v in self._parse_values([k[len(prefix):] for k in pending], values).values():
                if label is None or v.label == label:
                    yield v
            pending.clear()

        for key in self.client.scan_iter(match=prefix.replace("*", "\\*") + "*", count=batch):
            pending.append(key.decode() if isinstance(key, bytes) else key)
            if len(pending) >= batch:
                yield from flush()
        if pending:
            yield from flush()

    # -- decisions ------------------------------------------------------------------------------

    def decide_many(self, names: Iterable[str]) -> dict[str, str]:
        """SPEC §1.4 decisions for normalized names: one MGET and one HMGET, pipelined."""
        names = list(dict.fromkeys(names))
        if not names:
            return {}
        per_name = [candidates(n) for n in names]
        fields = list(dict.fromkeys(c for cands in per_name for c in cands))
        pipe = self.client.pipeline(transaction=False)
        pipe.mget([self.verdict_key(n) for n in names])
        pipe.hmget(self.vetted_key, fields)
        values, records = pipe.execute()
        actions: dict[str, str] = {}
        for entry, raw in zip(fields, records):
            if raw is not None:
                try:
                    actions[entry] = VettedRecord.from_json(raw).action
                except (ValueError, KeyError, TypeError):
                    self.counts["bad_record"] += 1
        verdicts = self._parse_values(names, values)
        out: dict[str, str] = {}
        for name, cands in zip(names, per_name):
            vetted = {c: actions[c] for c in cands if c in actions}
            v = verdicts.get(name)
            out[name] = effective_decision(name, vetted, v.label if v else None)
        return out

    def effective_decision(self, name: str) -> str:
        return self.decide_many([name])[name]

    # -- vetted lists ---------------------------------------------------------------------------

    def first_sightings(self, values: dict[str, str], ttl_s: int) -> set[str]:
        """Record each registrable domain's first sighting (``SET NX EX``, pipelined); the ones that were new.

        ``values`` maps a domain to ``<event ms>|<client>|<name>``; an existing key is left as it is,
        so the deployment's first sighting stands whichever worker asks later.
        """
        domains = list(values)
        if not domains:
            return set()
        pipe = self.client.pipeline(transaction=False)
        for d in domains:
            pipe.set(K.seen_domain_key(self.prefix, d), values[d], nx=True, ex=ttl_s)
        return {d for d, ok in zip(domains, pipe.execute()) if ok}

    def first_sighting(self, domain: str) -> tuple[int, str, str] | None:
        """(event ms, client, name) of a domain's first sighting, or None (never seen, or forgotten)."""
        raw = self.client.get(K.seen_domain_key(self.prefix, domain))
        if raw is None:
            return None
        ts, client, name = (raw.decode() if isinstance(raw, bytes) else raw).split("|", 2)
        return int(ts), client, name

    def set_vetted(self, name: str, action: str, by: str, note: str | None = None) -> VettedRecord | None:
        """Record an analyst's decision; returns the record it replaced (None if new).

        ``name`` may be raw (it is normalized; raises InvalidName) and may be a
        wildcard ``*.example.com``. The hash, the audit stream and the change
        announcement are written in one MULTI.
        """
        note = check_vetted(action, by, note)
        entry = vetted_entry(name)
        record = VettedRecord(action, by.strip(), int(time.time()), note)
        return self._change(entry, record, by.strip())

    def remove_vetted(self, name: str, by: str) -> VettedRecord | None:
        """Forget an entry; returns the removed record (None: there was none, nothing logged)."""
        if not by or not by.strip():
            raise ValueError("a vetted change needs the name of who made it")
        return self._change(vetted_entry(name), None, by.strip())

    def _change(self, entry: str, record: VettedRecord | None, by: str) -> VettedRecord | None:
        import redis

        with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(self.vetted_key)
                    raw = pipe.hget(self.vetted_key, entry)
                    before = self._record_or_none(raw)
                    if record is None and raw is None:
                        pipe.unwatch()
                        return None

                    def writes(tx: Any) -> None:
                        if record is None:
                            tx.hdel(self.vetted_key, entry)
                        else:
                            tx.hset(self.vetted_key, entry, record.to_json())
                        self._log(tx, entry, before, record, by)
                        tx.publish(self.channel, f"vetted {entry}")

                    self._commit(pipe, writes, entry)
                    return before
                except redis.WatchError:
                    continue

    def _commit(self, pipe: Any, writes: Callable[[Any], None], what: str) -> None:
        """``writes`` in one MULTI/EXEC on the connection ``pipe`` WATCHes with, then ``WAIT``.

        WAIT counts the replicas that have the writes *of its own connection*, so it must follow
        EXEC on that connection: the transaction is sent command by command in the pipeline's
        immediate (WATCH) mode instead of through ``execute``, which releases the connection.
        Raises ``WatchError`` when a watched key changed (the caller reads again and retries).
        """
        import redis

        try:
            pipe.execute_command("MULTI")
            writes(pipe)  # each one answered QUEUED
            replies = pipe.execute_command("EXEC")
            if replies is None:
                raise redis.WatchError("a watched key changed")
            failed = next((r for r in replies if isinstance(r, Exception)), None)
            if failed is not None:
                raise failed
            if self.vetted_replicas:
                self._await_replicas(pipe, what)
        except redis.ResponseError:
            pipe.connection.disconnect()  # maybe still inside MULTI: never back to the pool so
            raise
        finally:
            pipe.watching = False  # EXEC (or the disconnect) ended the WATCH: no UNWATCH on reset

    def _await_replicas(self, pipe: Any, what: str) -> None:
        """``WAIT vetted_replicas vetted_wait_ms``; short of them, the change stands on the primary alone."""
        # immediate_: EXEC ended the pipeline's WATCH mode, which would otherwise queue the command.
        acked = int(pipe.immediate_execute_command("WAIT", self.vetted_replicas, self.vetted_wait_ms))
        if acked < self.vetted_replicas:
            self.counts["unreplicated"] += 1
            log.warning("redis: vetted change of %s acknowledged by %d of %d replica(s) within %d ms; it is on "
                        "the primary only until the replica catches up (a failover now would lose it)",
                        what, acked, self.vetted_replicas, self.vetted_wait_ms)

    def _log(self, pipe: Any, entry: str, before: VettedRecord | None, after: VettedRecord | None, by: str) -> None:
        fields = {
            "name": entry,
            "before": before.action if before else "",
            "after": after.action if after else "",
            "by": by,
            "at": str(after.at if after else int(time.time())),
        }
        if after is not None and after.note:
            fields["note"] = after.note
        pipe.xadd(self.log_key, fields, maxlen=LOG_MAXLEN, approximate=True)

    def _record_or_none(self, raw: Any) -> VettedRecord | None:
        if raw is None:
            return None
        try:
            return VettedRecord.from_json(raw)
        except (ValueError, KeyError, TypeError):
            self.counts["bad_record"] += 1
            return None

    def set_vetted_many(
        self,
        entries: Sequence[str],
        action: str,
        by: str,
        note: str | None = None,
        *,
        replace: bool = False,
        source: str | None = None,
    ) -> dict[str, int]:
        """Bulk version of :meth:`set_vetted` for list imports: one HMGET, then one MULTI.

        ``entries`` must already be normalized (list import does it while
        parsing). An entry that already has another action is a ``conflict``
        and is kept as it is unless ``replace``: a block list must not silently
        undo an analyst's allow. The audit stream gets one summary entry per
        call (name ``(bulk)``, ``count``, ``source``) rather than one per name,
        so a million-line list cannot push analysts' own decisions out of the
        capped log. Returns counts: ``added``, ``changed``, ``unchanged``, ``conflicts``.
        """
        note = check_vetted(action, by, note)
        by = by.strip()
        entries = list(dict.fromkeys(entries))
        counts = {"added": 0, "changed": 0, "unchanged": 0, "conflicts": 0}
        if not entries:
            return counts
        now = int(time.time())
        text = VettedRecord(action, by, now, note).to_json()
        import redis

        with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(self.vetted_key)
                    previous = pipe.hmget(self.vetted_key, entries)
                    return self._bulk_change(pipe, entries, previous, action, by, note, text, now, replace, source)
                except redis.WatchError:
                    continue

    def _bulk_change(self, pipe: Any, entries: list[str], previous: list[Any], action: str, by: str,
                     note: str | None, text: str, now: int, replace: bool, source: str | None) -> dict[str, int]:
        """The writes of :meth:`set_vetted_many`, given the entries' current records (under WATCH)."""
        counts = {"added": 0, "changed": 0, "unchanged": 0, "conflicts": 0}
        mapping: dict[str, str] = {}
        for entry, raw in zip(entries, previous):
            if raw is None:
                counts["added"] += 1
                mapping[entry] = text
                continue
            before = self._record_or_none(raw)
            if before is not None and before.action == action:
                counts["unchanged"] += 1
            elif before is not None and not replace:
                counts["conflicts"] += 1
            else:
                counts["changed"] += 1
                mapping[entry] = text
        if mapping:
            fields = {"name": BULK_NAME, "before": "", "after": action, "by": by, "at": str(now),
                      "count": str(len(mapping))}
            if note:
                fields["note"] = note
            if source:
                fields["source"] = source[:512]

            def writes(tx: Any) -> None:
                tx.hset(self.vetted_key, mapping=mapping)
                tx.xadd(self.log_key, fields, maxlen=LOG_MAXLEN, approximate=True)
                tx.publish(self.channel, f"vetted {BULK_ALL}")

            self._commit(pipe, writes, f"{len(mapping)} entries")
        else:
            pipe.unwatch()
        return counts

    def get_vetted(self, names: Iterable[str]) -> dict[str, VettedRecord]:
        """Records of the given entries (exact fields, no inheritance)."""
        entries = list(dict.fromkeys(names))
        if not entries:
            return {}
        out = {}
        for entry, raw in zip(entries, self.client.hmget(self.vetted_key, entries)):
            rec = self._record_or_none(raw)
            if rec is not None:
                out[entry] = rec
        return out

    def list_vetted(self, action: str | None = None) -> dict[str, VettedRecord]:
        """Every vetted entry (HSCAN, so a large list does not block Redis), optionally one action."""
        out: dict[str, VettedRecord] = {}
        for field, raw in self.client.hscan_iter(self.vetted_key, count=1000):
            rec = self._record_or_none(raw)
            if rec is not None and (action is None or rec.action == action):
                out[field.decode() if isinstance(field, bytes) else field] = rec
        return out

    def vetted_log(self, count: int = 100) -> list[dict]:
        """The newest ``count`` vetted changes, newest first: id, name, before, after, by, at, note."""
        out = []
        for entry_id, fields in self.client.xrevrange(self.log_key, count=count):
            row = {_text(k): _text(v) for k, v in fields.items()}
            row["id"] = _text(entry_id)
            try:
                row["at"] = int(row.get("at", 0))
            except ValueError:
                row["at"] = 0
            out.append(row)
        return out

    # -- change announcements -------------------------------------------------------------------

    def subscribe_changes(self, callback: Callable[[str, str], None], *, poll_s: float = 1.0) -> Callable[[], None]:
        """Call ``callback(kind, name)`` for every change announcement, from a daemon thread.

        ``kind`` is ``vetted`` or ``verdict``; ``name`` may be ``*`` (bulk: drop
        everything). After a reconnect ``callback("vetted", "*")`` is called,
        because announcements made while disconnected are lost. Returns a
        function that stops the thread.
        """
        stop = threading.Event()

        def run() -> None:
            first = True
            while not stop.is_set():
                pubsub = self.client.pubsub(ignore_subscribe_messages=True)
                try:
                    pubsub.subscribe(self.channel)
                    if not first:
                        callback("vetted", BULK_ALL)
                    first = False
                    while not stop.is_set():
                        msg = pubsub.get_message(timeout=poll_s)
                        if msg and msg.get("type") == "message":
                            kind, _, name = _text(msg["data"]).partition(" ")
                            callback(kind, name)
                except Exception:  # connection lost: resubscribe after a pause
                    first = False
                    stop.wait(1.0)
                finally:
                    try:
                        pubsub.close()
                    except Exception:
                        pass

        thread = threading.Thread(target=run, name="verdict-cache-changes", daemon=True)
        thread.start()

        def cancel() -> None:
            stop.set()
            thread.join(timeout=poll_s + 2)

        return cancel


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
