"""The shared model registry: versions and the current pointer in Elasticsearch, for workers on many hosts.

Why Elasticsearch (models/README.md, "Shared registry", has the numbers): a version folder is
under 1 MB (weights ~200 KB, prior ~480 KB, metrics ~140 KB), every worker and the dashboard
already reach the cluster, and its indices are replicated with the rest of the analytics.

Indices (``<prefix>-models*``, prefix = ``model.shared_index_prefix`` or ``elasticsearch.index_prefix``):

``<prefix>-models-chunks``
    ``<version>/<file>/<n>``: ``data`` (base64 of ``chunk_bytes`` of the file), written once.
``<prefix>-models-versions``
    ``<version>``: the file list (name, size, sha256, chunks) and the manifest. Written once,
    after every chunk: a version document means a complete version.
``<prefix>-models-state``
    ``current``: ``{version, seq, ts}``. Readers GET it by id (real time, no refresh), so a
    worker's poll sees a promotion at once. Writers change it with ``if_seq_no``: two
    promotions at the same moment cannot both win.
``<prefix>-models-promotions``
    one document per promote/rollback, id = the pointer's ``seq``: the history rollback walks.

A host downloads a version once into its cache folder (a temporary folder, sha256 of every
file checked, then renamed into place), which is then an ordinary registry folder that
:func:`dnsentinel.models.serving.load` reads as before.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from dnsentinel.errors import ServiceUnavailable
from dnsentinel.models import registry_layout as local

log = logging.getLogger(__name__)

POINTER_ID = "current"
SKIP_FILES = frozenset({local.HISTORY, "gate.json"})
"""Not published: the live training log and the gate cache (recomputed where needed)."""
DEFAULT_CHUNK = 256 * 1024


F = TypeVar("F", bound=Callable[..., Any])


def _service(method: F) -> F:
    """Elasticsearch transport and API failures become one-line :class:`ServiceUnavailable` errors."""

    @functools.wraps(method)
    def wrapper(self: SharedRegistry, *args: Any, **kwargs: Any) -> Any:
        from elasticsearch import ApiError, TransportError

        try:
            return method(self, *args, **kwargs)
        except (ApiError, TransportError) as exc:
            raise ServiceUnavailable(
                f"elasticsearch (shared model registry, {self.where}): {type(exc).__name__}: {str(exc)[:200]}; "
                "start it (dnsentinel stack up) or check elasticsearch.url and its credentials") from exc

    return wrapper  # type: ignore[return-value]


class SharedRegistryError(local.RegistryError):
    """The shared registry refuses an operation, or a downloaded file does not match its checksum."""


class NotPublished(SharedRegistryError):
    """The version is not in the shared registry (a local-only version, or a typo)."""


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a published version: enough to reassemble and verify it."""

    name: str
    size: int
    sha256: str
    chunks: int


def split(data: bytes, size: int) -> list[bytes]:
    """``data`` in pieces of ``size`` bytes (one empty piece for an empty file, so it still exists)."""
    if size < 1:
        raise ValueError("chunk size must be positive")
    return [data[i:i + size] for i in range(0, len(data), size)] or [b""]


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify(entry: FileEntry, data: bytes) -> bytes:
    """``data`` if it is the file ``entry`` describes; else a :class:`SharedRegistryError` naming it."""
    if len(data) != entry.size or digest(data) != entry.sha256:
        raise SharedRegistryError(
            f"model file {entry.name!r} from the shared registry is corrupt (size {len(data)}, "
            f"sha256 {digest(data)[:12]}…, expected {entry.size} / {entry.sha256[:12]}…); publish the version again "
            "under a new name")
    return data


def chunk_id(version: str, name: str, n: int) -> str:
    return f"{version}/{name}/{n}"


def version_files(path: Path) -> list[Path]:
    """The files of a version folder that are published (sorted, so the file list is stable)."""
    return sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".") and p.name not in SKIP_FILES)


class SharedRegistry:
    """The Elasticsearch registry; ``es`` is a synchronous ``elasticsearch.Elasticsearch`` (or a fake)."""

    def __init__(self, es: Any, prefix: str, cache_dir: Path | str, chunk_bytes: int = DEFAULT_CHUNK,
                 where: str = "") -> None:
        self.es = es
        self.where = where or prefix
        self.prefix = prefix
        self.cache_dir = Path(cache_dir)
        self.chunk_bytes = chunk_bytes
        self.chunks_index = f"{prefix}-models-chunks"
        self.versions_index = f"{prefix}-models-versions"
        self.state_index = f"{prefix}-models-state"
        self.promotions_index = f"{prefix}-models-promotions"
        self._remembered: str | None = None

    # -- indices ------------------------------------------------------------------------------
    @_service
    def ensure_indices(self) -> None:
        """Create the four indices if missing (idempotent; documents are kept out of the inverted index)."""
        mappings = {
            self.chunks_index: {"dynamic": False, "properties": {
                "version": {"type": "keyword"}, "file": {"type": "keyword"}, "n": {"type": "integer"},
                "data": {"type": "binary"}}},
            self.versions_index: {"dynamic": False, "properties": {
                "version": {"type": "keyword"}, "created": {"type": "keyword"},
                "published": {"type": "date"}, "manifest": {"type": "object", "enabled": False},
                "files": {"type": "object", "enabled": False}}},
            self.state_index: {"dynamic": False, "properties": {"version": {"type": "keyword"}, "seq": {"type": "long"}}},
            self.promotions_index: {"dynamic": False, "properties": {
                "seq": {"type": "long"}, "version": {"type": "keyword"}, "previous": {"type": "keyword"},
                "action": {"type": "keyword"}, "ts": {"type": "date"}}},
        }
        # One shard, a copy on every node (0 on a one-node stack): any node can serve a worker's download.
        settings = {"number_of_shards": 1, "auto_expand_replicas": "0-all"}
        for index, mapping in mappings.items():
            if not self.es.indices.exists(index=index):
                self.es.options(ignore_status=400).indices.create(index=index, mappings=mapping, settings=settings)

    # -- publishing ----------------------------------------------------------------------------
    @_service
    def published(self, version: str) -> dict[str, Any] | None:
        """The version document, or None when ``version`` was never (completely) published."""
        doc = self.es.options(ignore_status=404).get(index=self.versions_index, id=local.check_version(version))
        return doc["_source"] if doc.get("found") else None

    @_service
    def publish(self, path: Path) -> bool:
        """Upload a complete local version folder; False when it was already published with the same files.

        Chunks first, the version document last (``op_type=create``): a reader never sees a
        half-published version, and a version is never overwritten with other content.
        """
        version = local.check_version(path.name)
        if not local.is_complete(path):
            raise SharedRegistryError(f"model {version!r} is not complete (still training, failed, or missing weights)")
        self.ensure_indices()
        files = [(p.name, p.read_bytes()) for p in version_files(path)]
        entries = [FileEntry(name, len(data), digest(data), len(split(data, self.chunk_bytes))) for name, data in files]
        existing = self.published(version)
        if existing is not None:
            if {f["name"]: f["sha256"] for f in existing["files"]} != {e.name: e.sha256 for e in entries}:
                raise SharedRegistryError(f"model {version!r} is already published with other files; "
                                          "train or copy it under a new version name")
            return False
        for (name, data), entry in zip(files, entries):
            for n, piece in enumerate(split(data, self.chunk_bytes)):
                self.es.index(index=self.chunks_index, id=chunk_id(version, name, n), document={
                    "version": version, "file": name, "n": n, "data": base64.b64encode(piece).decode("ascii")})
        manifest = local.read_json(path / local.MANIFEST)
        self.es.options(ignore_status=409).index(
            index=self.versions_index, id=version, op_type="create", refresh="wait_for", document={
                "version": version, "created": manifest.get("created"), "manifest": manifest,
                "published": int(time.time() * 1000), "files": [asdict(e) for e in entries]})
        log.info("published model %s (%d files, %d bytes)", version, len(entries), sum(e.size for e in entries))
        return True

    @_service
    def versions(self) -> list[dict[str, Any]]:
        """Every published version document (oldest first)."""
        if not self.es.indices.exists(index=self.versions_index):
            return []
        hits = self.es.search(index=self.versions_index, size=1000, sort=[{"published": "asc"}],
                              query={"match_all": {}})["hits"]["hits"]
        return [h["_source"] for h in hits]

    # -- downloading ---------------------------------------------------------------------------
    def _file(self, version: str, entry: FileEntry) -> bytes:
        ids = [chunk_id(version, entry.name, n) for n in range(entry.chunks)]
        docs = self.es.mget(index=self.chunks_index, ids=ids)["docs"]
        missing = [d["_id"] for d in docs if not d.get("found")]
        if missing:
            raise SharedRegistryError(f"model {version!r} in the shared registry lacks {len(missing)} chunk(s) of "
                                      f"{entry.name!r}; publish it again under a new name")
        return verify(entry, b"".join(base64.b64decode(d["_source"]["data"]) for d in docs))

    @_service
    def materialize(self, version: str) -> Path:
        """The local folder of ``version``, downloaded (and checked) into the cache on first use."""
        target = self.cache_dir / local.check_version(version)
        if (target / local.MANIFEST).is_file():
            return target
        doc = self.published(version)
        if doc is None:
            raise NotPublished(f"no model {version!r} in the shared registry ({self.versions_index}); "
                                      f"publish it: dnsentinel models publish {version}")
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.cache_dir, prefix=f".{version}."))
        try:
            for raw in doc["files"]:
                entry = FileEntry(**raw)
                (tmp / entry.name).write_bytes(self._file(version, entry))
            tmp.chmod(0o755)
            try:
                os.rename(tmp, target)  # atomic; a concurrent download of the same version may have won
            except OSError:
                if not (target / local.MANIFEST).is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log.info("downloaded model %s into %s", version, target)
        return target

    # -- the pointer -----------------------------------------------------------------------------
    def _pointer(self) -> tuple[dict[str, Any] | None, dict[str, int]]:
        """The pointer document and the concurrency token that must hold to replace it."""
        doc = self.es.options(ignore_status=404).get(index=self.state_index, id=POINTER_ID)
        if not doc.get("found"):
            return None, {"op_type": "create"}
        return doc["_source"], {"if_seq_no": doc["_seq_no"], "if_primary_term": doc["_primary_term"]}

    @_service
    def current_version(self) -> str | None:
        """The current version (one real-time GET by id: cheap enough to poll every few seconds)."""
        source, _ = self._pointer()  # a missing index answers 404 too: no current version yet
        return source.get("version") if source else None

    def remember(self, version: str) -> None:
        """Keep the last current version seen in the cache folder: a worker started while the
        cluster is unreachable scores with it (written only when it changes)."""
        if version == self._remembered:
            return
        local.write_pointer(self.cache_dir, version)
        self._remembered = version

    def last_seen(self) -> str | None:
        """The last current version this host saw (None: never)."""
        return local.read_pointer(self.cache_dir)

    @_service
    def history(self) -> list[dict[str, Any]]:
        """Promote/rollback entries, oldest first."""
        if not self.es.indices.exists(index=self.promotions_index):
            return []
        hits = self.es.search(index=self.promotions_index, size=10000, sort=[{"seq": "asc"}])["hits"]["hits"]
        return [h["_source"] for h in hits]

    def _set_current(self, version: str, action: str, previous: str | None) -> None:
        self.ensure_indices()
        source, token = self._pointer()
        seq = (source or {}).get("seq", 0) + 1
        ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        # The history entry first (its id is the sequence number: a second writer of the same seq fails),
        # then the pointer, guarded by its own version: workers follow the pointer only.
        try:
            self.es.index(index=self.promotions_index, id=str(seq), op_type="create", refresh="wait_for", document={
                "seq": seq, "ts": ts, "action": action, "version": version, "previous": previous})
            self.es.index(index=self.state_index, id=POINTER_ID, refresh="wait_for",
                          document={"version": version, "seq": seq, "ts": ts}, **token)
        except Exception as exc:
            if getattr(exc, "status_code", None) == 409 or getattr(exc, "status", None) == 409:
                raise SharedRegistryError("another promote or rollback changed the shared registry at the same "
                                          "moment; check `dnsentinel models list` and retry") from exc
            raise

    @_service
    def promote(self, version: str) -> str | None:
        """Make a published ``version`` current; returns the previously current one."""
        if self.published(version) is None:
            raise NotPublished(f"no model {version!r} in the shared registry; "
                                      f"publish it: dnsentinel models publish {version}")
        previous = self.current_version()
        if previous != version:
            self._set_current(version, "promote", previous)
        return previous

    @_service
    def rollback(self) -> str:
        """Return to the version current before the current one (repeated: further back)."""
        current = self.current_version()
        if current is None:
            raise SharedRegistryError(f"{self.state_index}: no current model to roll back from")
        entries = self.history()
        target = local.predecessor(entries, current)
        if not target:
            raise SharedRegistryError(f"nothing to roll back to (no earlier current model recorded for {current!r})")
        self._set_current(target, "rollback", local.predecessor(entries, target))
        return target

    def drop(self) -> None:
        """Delete the registry's indices (tests clean up with it)."""
        self.es.options(ignore_status=404).indices.delete(index=f"{self.prefix}-models-*", expand_wildcards="all")


def from_settings(settings: Any = None) -> SharedRegistry:
    """The shared registry the settings describe (its own synchronous Elasticsearch client)."""
    from elasticsearch import Elasticsearch

    from dnsentinel.settings import get_settings

    s = settings or get_settings()
    m = s.model
    cache = Path(m.cache_dir) if m.cache_dir else Path(s.stack.state_dir) / "models"
    return SharedRegistry(Elasticsearch(**s.elasticsearch.client_kwargs()),
                          m.shared_index_prefix or s.elasticsearch.index_prefix, cache, m.chunk_bytes,
                          where=s.elasticsearch.url)


def rows(shared: SharedRegistry, local_rows: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """``list_models`` rows for the shared backend: local versions and published ones, current from the pointer."""
    current = shared.current_version()
    remote = {d["version"]: d for d in shared.versions()}
    seen = set()
    for row in local_rows:
        seen.add(row["version"])
        yield {**row, "current": row["version"] == current, "published": row["version"] in remote}
    for version, doc in remote.items():
        if version in seen:
            continue
        manifest = doc.get("manifest") or {}
        cached = shared.cache_dir / version
        yield {"version": version, "arch": manifest.get("arch"), "created": manifest.get("created"), "state": "done",
               "current": version == current, "thresholds": manifest.get("thresholds"),
               "summary": manifest.get("summary", {}), "path": str(cached) if cached.is_dir() else None,
               "published": True}
