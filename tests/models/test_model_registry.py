"""Registry: version names, exactly one current, promote and rollback along the history."""

from __future__ import annotations

import json

import pytest

from dnsentinel.models import registry


def _fake_version(root, version, state="done", weights=True):
    path = root / version
    path.mkdir(parents=True)
    (path / registry.MANIFEST).write_text(json.dumps({"version": version, "arch": "charcnn", "created": version}))
    (path / registry.STATUS).write_text(json.dumps({"state": state}))
    if weights:
        (path / registry.WEIGHTS).write_bytes(b"w")
    return path


def test_promote_and_rollback_walk_the_history(tmp_path):
    for v in ("v1", "v2", "v3"):
        _fake_version(tmp_path, v)
    assert registry.current_version(tmp_path) is None
    assert registry.promote("v1", tmp_path) is None
    assert registry.promote("v2", tmp_path) == "v1"
    assert registry.promote("v3", tmp_path) == "v2"
    assert registry.current_version(tmp_path) == "v3"
    assert registry.rollback(tmp_path) == "v2"
    assert registry.rollback(tmp_path) == "v1"
    with pytest.raises(registry.RegistryError, match="nothing to roll back"):
        registry.rollback(tmp_path)
    assert registry.current_version(tmp_path) == "v1"
    listed = registry.list_models(tmp_path)
    assert [r["version"] for r in listed if r["current"]] == ["v1"]


def test_incomplete_or_unknown_versions_cannot_be_promoted(tmp_path):
    _fake_version(tmp_path, "running", state="running")
    _fake_version(tmp_path, "noweights", weights=False)
    for version in ("running", "noweights", "absent"):
        with pytest.raises(registry.RegistryError):
            registry.promote(version, tmp_path)
    assert registry.current_version(tmp_path) is None


@pytest.mark.parametrize("bad", ["", "a|b", "../x", "-x", "a b", "x" * 81])
def test_bad_version_names(bad):
    with pytest.raises(registry.RegistryError):
        registry.check_version(bad)


def test_resolve_current_name_and_path(tmp_path):
    path = _fake_version(tmp_path, "v1")
    with pytest.raises(registry.RegistryError, match="no current model"):
        registry.resolve(None, tmp_path)
    registry.promote("v1", tmp_path)
    assert registry.resolve(None, tmp_path) == path
    assert registry.resolve("v1", tmp_path) == path
    assert registry.resolve(str(path), tmp_path) == path
    with pytest.raises(registry.RegistryError, match="no model"):
        registry.resolve("v9", tmp_path)
