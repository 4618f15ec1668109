"""The shared registry's rules without a cluster: chunking, checksums, write-once versions, the pointer.

``FakeEs`` keeps documents in dicts and answers the few calls the registry makes, with the
semantics that matter here: ``op_type=create`` and ``if_seq_no`` refuse with 409, a missing
document or index answers 404 when ignored. The real cluster is exercised by
tests/stream_processor/test_sp_shared_registry.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dnsentinel.errors import ServiceUnavailable
from dnsentinel.models import registry, shared_registry
from dnsentinel.models.shared_registry import FileEntry, SharedRegistry, SharedRegistryError, split, verify


class Conflict(Exception):
    status_code = 409


class FakeIndices:
    def __init__(self, es: FakeEs) -> None:
        self.es = es

    def exists(self, index: str) -> bool:
        return index in self.es.data

    def create(self, index: str, mappings: dict[str, Any], settings: dict[str, Any]) -> None:
        self.es.data.setdefault(index, {})

    def delete(self, index: str, expand_wildcards: str = "") -> None:
        for name in [n for n in self.es.data if n.startswith(index.rstrip("*"))]:
            del self.es.data[name]


class FakeEs:
    """index -> id -> (source, seq_no)."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, tuple[dict[str, Any], int]]] = {}
        self.indices = FakeIndices(self)
        self.seq = 0
        self.down = False
        self.gets = 0

    def options(self, **_: Any) -> FakeEs:
        return self

    def _check(self) -> None:
        if self.down:
            from elasticsearch import ConnectionError as EsConnectionError

            raise EsConnectionError("connection refused")

    def get(self, index: str, id: str) -> dict[str, Any]:
        self._check()
        self.gets += 1
        doc = self.data.get(index, {}).get(id)
        if doc is None:
            return {"found": False}
        return {"found": True, "_source": json.loads(json.dumps(doc[0])), "_seq_no": doc[1], "_primary_term": 1}

    def index(self, index: str, id: str, document: dict[str, Any], op_type: str | None = None,
              if_seq_no: int | None = None, if_primary_term: int | None = None, refresh: Any = None) -> None:
        self._check()
        docs = self.data.setdefault(index, {})
        if op_type == "create" and id in docs:
            raise Conflict("version conflict, document already exists")
        if if_seq_no is not None and (id not in docs or docs[id][1] != if_seq_no):
            raise Conflict("version conflict")
        self.seq += 1
        docs[id] = (json.loads(json.dumps(document)), self.seq)

    def mget(self, index: str, ids: list[str]) -> dict[str, Any]:
        self._check()
        return {"docs": [{"_id": i, **self.get(index, i)} for i in ids]}

    def search(self, index: str, size: int, sort: list[dict[str, str]], **_: Any) -> dict[str, Any]:
        self._check()
        (field, _order), = sort[0].items()
        docs = sorted((d[0] for d in self.data.get(index, {}).values()), key=lambda d: d[field])
        return {"hits": {"hits": [{"_source": d} for d in docs[:size]]}}


def make_version(root: Path, name: str, weights: bytes = b"w" * 5000) -> Path:
    path = root / name
    path.mkdir(parents=True)
    registry.write_json(path / registry.MANIFEST, {"version": name, "arch": "charcnn", "created": name})
    (path / registry.WEIGHTS).write_bytes(weights)
    (path / registry.HISTORY).write_text("{}\n")  # not published
    registry.write_json(path / registry.STATUS, {"state": "done"})
    return path


@pytest.fixture
def es() -> FakeEs:
    return FakeEs()


@pytest.fixture
def shared(es: FakeEs, tmp_path: Path) -> SharedRegistry:
    return SharedRegistry(es, "t", tmp_path / "cache", chunk_bytes=1024)


def test_split_keeps_every_byte_and_an_empty_file_has_one_chunk() -> None:
    data = bytes(range(256)) * 10
    pieces = split(data, 1000)
    assert [len(p) for p in pieces] == [1000, 1000, 560]
    assert b"".join(pieces) == data
    assert split(b"", 1000) == [b""]


def test_verify_refuses_a_changed_or_truncated_file() -> None:
    entry = FileEntry("model.weights.h5", 3, shared_registry.digest(b"abc"), 1)
    assert verify(entry, b"abc") == b"abc"
    for bad in (b"abd", b"ab"):
        with pytest.raises(SharedRegistryError, match="model.weights.h5.*corrupt"):
            verify(entry, bad)


def test_publish_then_download_gives_the_same_files(shared: SharedRegistry, tmp_path: Path) -> None:
    src = make_version(tmp_path / "reg", "v1", weights=bytes(range(256)) * 20)
    assert shared.publish(src)
    doc = shared.published("v1")
    assert {f["name"] for f in doc["files"]} == {registry.MANIFEST, registry.WEIGHTS, registry.STATUS}
    assert next(f for f in doc["files"] if f["name"] == registry.WEIGHTS)["chunks"] == 5
    got = shared.materialize("v1")
    assert got == tmp_path / "cache" / "v1"
    for f in doc["files"]:
        assert (got / f["name"]).read_bytes() == (src / f["name"]).read_bytes()
    assert not (got / registry.HISTORY).exists()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["v1"]  # no temporary folder left


def test_a_version_is_written_once(shared: SharedRegistry, tmp_path: Path) -> None:
    src = make_version(tmp_path / "reg", "v1")
    assert shared.publish(src)
    assert not shared.publish(src)  # same files: nothing to do
    (src / registry.WEIGHTS).write_bytes(b"retrained")
    with pytest.raises(SharedRegistryError, match="already published with other files"):
        shared.publish(src)


def test_an_incomplete_version_is_not_published(shared: SharedRegistry, tmp_path: Path) -> None:
    src = make_version(tmp_path / "reg", "v1")
    registry.write_json(src / registry.STATUS, {"state": "running"})
    with pytest.raises(SharedRegistryError, match="not complete"):
        shared.publish(src)
    assert shared.published("v1") is None


def test_a_corrupt_chunk_is_refused_and_nothing_is_cached(shared: SharedRegistry, es: FakeEs, tmp_path: Path) -> None:
    shared.publish(make_version(tmp_path / "reg", "v1"))
    chunk = shared_registry.chunk_id("v1", registry.WEIGHTS, 2)
    source, seq = es.data[shared.chunks_index][chunk]
    es.data[shared.chunks_index][chunk] = ({**source, "data": "AAAA"}, seq)
    with pytest.raises(SharedRegistryError, match="corrupt"):
        shared.materialize("v1")
    assert list((tmp_path / "cache").iterdir()) == []


def test_pointer_promote_and_rollback_walk_the_history(shared: SharedRegistry, tmp_path: Path) -> None:
    for v in ("a", "b", "c"):
        shared.publish(make_version(tmp_path / "reg", v))
    assert shared.current_version() is None
    assert shared.promote("a") is None
    assert shared.promote("b") == "a"
    assert shared.promote("c") == "b"
    assert shared.promote("c") == "c"  # already current: no new entry
    assert shared.rollback() == "b"
    assert shared.current_version() == "b"
    assert shared.rollback() == "a"
    with pytest.raises(SharedRegistryError, match="nothing to roll back to"):
        shared.rollback()
    assert [(e["action"], e["version"]) for e in shared.history()] == [
        ("promote", "a"), ("promote", "b"), ("promote", "c"), ("rollback", "b"), ("rollback", "a")]


def test_promote_refuses_an_unpublished_version(shared: SharedRegistry) -> None:
    with pytest.raises(SharedRegistryError, match="publish it"):
        shared.promote("never-published")


def test_a_concurrent_pointer_change_is_refused(shared: SharedRegistry, es: FakeEs, tmp_path: Path) -> None:
    for v in ("a", "b"):
        shared.publish(make_version(tmp_path / "reg", v))
    shared.promote("a")
    stale = shared._pointer
    token = stale()

    def pointer_read_before_the_other_writer() -> Any:
        return token

    shared._pointer = pointer_read_before_the_other_writer  # type: ignore[method-assign]
    es.index(index=shared.state_index, id="current", document={"version": "a", "seq": 1})  # someone else wrote
    with pytest.raises(SharedRegistryError, match="same moment"):
        shared.promote("b")


def test_an_unreachable_cluster_is_a_one_line_service_error(shared: SharedRegistry, es: FakeEs) -> None:
    es.down = True
    with pytest.raises(ServiceUnavailable, match="shared model registry.*dnsentinel stack up"):
        shared.current_version()


@pytest.fixture
def shared_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, es: FakeEs) -> SharedRegistry:
    """The settings say ``elasticsearch``; the registry module's shared registry is one on ``es``."""
    from dnsentinel.settings import get_settings

    monkeypatch.setenv("DNSENTINEL_MODEL__REGISTRY_BACKEND", "elasticsearch")
    monkeypatch.setenv("DNSENTINEL_MODEL__REGISTRY_DIR", str(tmp_path / "reg"))
    get_settings.cache_clear()
    sh = SharedRegistry(es, "t", tmp_path / "cache", chunk_bytes=1024)
    monkeypatch.setattr(registry, "shared", lambda: sh)
    yield sh
    monkeypatch.undo()
    get_settings.cache_clear()


def test_registry_functions_follow_the_shared_backend(shared_settings: SharedRegistry, tmp_path: Path) -> None:
    make_version(tmp_path / "reg", "a")
    make_version(tmp_path / "reg", "b")
    assert registry.promote("a") is None  # published on the way
    assert shared_settings.published("a") is not None and shared_settings.published("b") is None
    assert registry.current_version() == "a"
    assert registry.resolve() == tmp_path / "cache" / "a"  # the checked download, not the folder
    assert registry.resolve("b") == tmp_path / "reg" / "b"  # not published: the local folder
    registry.promote("b")
    rows = {r["version"]: r for r in registry.list_models()}
    assert rows["b"]["current"] and rows["b"]["published"] and not rows["a"]["current"]
    assert registry.rollback() == "a"
    assert registry.current_version(tmp_path / "reg") is None  # an explicit folder is that folder


def test_a_worker_starts_with_the_last_version_it_saw_when_the_cluster_is_down(
        shared_settings: SharedRegistry, es: FakeEs, tmp_path: Path) -> None:
    make_version(tmp_path / "reg", "a")
    registry.promote("a")
    assert registry.resolve() == tmp_path / "cache" / "a"  # downloaded; "a" remembered as current
    __import__("shutil").rmtree(tmp_path / "reg")  # a worker host has no training folder
    es.down = True
    assert registry.resolve() == tmp_path / "cache" / "a"
    with pytest.raises(ServiceUnavailable):
        registry.current_version()


def test_publish_needs_the_shared_backend(tmp_path: Path) -> None:
    with pytest.raises(registry.RegistryError, match="registry_backend is 'local'"):
        registry.publish("a", tmp_path)
