"""The versioned model registry: one directory per model, one small pointer file for the current one.

Layout (``settings.model.registry_dir``)::

    CURRENT                 the current version's name, one line (cheap to poll)
    promotions.jsonl        append-only log of promote/rollback (who was current before)
    <version>/
        manifest.json       version, arch, params, thresholds, families, data hash, created
        model.weights.h5    Keras weights (the architecture is rebuilt from arch + params)
        metrics.json        evaluation report (see training.evaluate_splits)
        history.jsonl       one JSON line per epoch, written live during training
        status.json         running / done / failed, epoch and batch progress

Writes go through a temporary file and ``os.replace`` so a reader (a worker
polling :func:`current_version`) never sees half a file.

With ``model.registry_backend = "elasticsearch"`` the current pointer, the promotion history
and the published versions live in Elasticsearch (:mod:`dnsentinel.models.shared_registry`),
so every host follows a promotion. The functions below then take the shared registry when
called without an explicit ``registry`` folder (an explicit folder is always that folder:
training and tests keep using folders); the folder stays where versions are trained.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dnsentinel.models.registry_layout import (  # noqa: F401 (re-exported: the registry's public names)
    HISTORY, MANIFEST, METRICS, POINTER, PROMOTIONS, STATUS, VERSION_RE, WEIGHTS, RegistryError, check_version,
    is_complete, maybe_json, predecessor, read_json, read_pointer, write_pointer)

_maybe_json = maybe_json

if TYPE_CHECKING:
    from dnsentinel.models.shared_registry import SharedRegistry

log = logging.getLogger(__name__)

def registry_dir(path: Path | str | None = None) -> Path:
    """The registry directory: ``path`` if given, else ``settings.model.registry_dir``."""
    if path is not None:
        return Path(path)
    from dnsentinel.settings import get_settings

    return Path(get_settings().model.registry_dir)


def write_json(path: Path, data: Any) -> None:
    """Atomically replace ``path`` with ``data`` as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=1, sort_keys=False, default=_jsonable)
        handle.write("\n")
    os.chmod(tmp, 0o644)  # mkstemp creates 0600; registry files are meant to be readable
    os.replace(tmp, path)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


_SHARED: dict[tuple[Any, ...], SharedRegistry] = {}


def shared() -> SharedRegistry | None:
    """The shared registry when ``model.registry_backend`` is ``elasticsearch`` (one per settings), else None."""
    from dnsentinel.settings import get_settings

    s = get_settings()
    if s.model.registry_backend != "elasticsearch":
        return None
    key = (s.elasticsearch.url, s.model.shared_index_prefix or s.elasticsearch.index_prefix,
           str(s.model.cache_dir or s.stack.state_dir), s.model.chunk_bytes)
    if key not in _SHARED:
        from dnsentinel.models import shared_registry

        _SHARED[key] = shared_registry.from_settings(s)
    return _SHARED[key]


def _shared_for(registry: Path | str | None) -> SharedRegistry | None:
    return shared() if registry is None else None


def current_version(registry: Path | str | None = None) -> str | None:
    """The current version's name (one small file, or one GET in the shared registry: poll it to hot-reload).

    Shared registry unreachable: the error propagates (a polling worker keeps its model and counts it).
    """
    sh = _shared_for(registry)
    if sh is not None:
        version = sh.current_version()
        if version:
            sh.remember(version)
        return version
    return read_pointer(registry_dir(registry))


def version_dir(version: str, registry: Path | str | None = None) -> Path:
    return registry_dir(registry) / check_version(version)


def new_version_name(arch: str, name: str | None = None) -> str:
    """``name`` if given, else ``<arch>-<UTC timestamp>``."""
    if name:
        return check_version(name)
    return check_version(f"{arch}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}")


def list_models(registry: Path | str | None = None) -> list[dict[str, Any]]:
    """Every version directory with its manifest summary, status and whether it is current (oldest first)."""
    sh = _shared_for(registry)
    if sh is not None:
        from dnsentinel.models.shared_registry import rows as shared_rows

        return list(shared_rows(sh, list_models(registry_dir())))
    root = registry_dir(registry)
    current = current_version(root)
    rows: list[dict[str, Any]] = []
    if not root.is_dir():
        return rows
    for child in sorted(root.iterdir()):
        if not child.is_dir() or not VERSION_RE.match(child.name):
            continue
        manifest = _maybe_json(child / MANIFEST) or {}
        status = _maybe_json(child / STATUS) or {}
        rows.append(
            {
                "version": child.name,
                "arch": manifest.get("arch"),
                "created": manifest.get("created"),
                "state": status.get("state", "done" if manifest else "unknown"),
                "current": child.name == current,
                "thresholds": manifest.get("thresholds"),
                "summary": manifest.get("summary", {}),
                "path": str(child),
            }
        )
    rows.sort(key=lambda r: (r["created"] or "", r["version"]))
    return rows


def resolve(name_or_path: str | Path | None = None, registry: Path | str | None = None) -> Path:
    """The directory of a model: a path to a model directory, a version name, or the current one."""
    root = registry_dir(registry)
    sh = _shared_for(registry)
    if sh is not None:
        return _resolve_shared(sh, name_or_path, root)
    if name_or_path is None or str(name_or_path) == "current":
        version = current_version(root)
        if version is None:
            raise RegistryError(f"{root}: no current model (train one, or `dnsentinel models promote VERSION`)")
        name_or_path = version
    candidate = Path(name_or_path)
    if (candidate / MANIFEST).is_file():
        return candidate
    if VERSION_RE.match(str(name_or_path)) and (root / str(name_or_path) / MANIFEST).is_file():
        return root / str(name_or_path)
    raise RegistryError(f"no model {str(name_or_path)!r} in {root} (see `dnsentinel models list`)")


def _resolve_shared(sh: SharedRegistry, name_or_path: str | Path | None, root: Path) -> Path:
    """A model directory with the shared backend: a path as is; a published version from this host's
    cache (downloaded and checked once); else the local folder (versions trained here, not published)."""
    from dnsentinel.models.shared_registry import NotPublished

    if name_or_path is None or str(name_or_path) == "current":
        try:
            name_or_path = current_version()
        except Exception as exc:  # the cluster is down: start with what this host last followed
            name_or_path = sh.last_seen()
            log.warning("shared model registry unreachable (%s); using the last current version seen here: %s",
                        exc, name_or_path)
        if name_or_path is None:
            raise RegistryError("the shared model registry has no current model "
                                "(`dnsentinel models publish VERSION`, then `dnsentinel models promote VERSION`)")
    if (Path(name_or_path) / MANIFEST).is_file():
        return Path(name_or_path)
    version = check_version(str(name_or_path))
    if (sh.cache_dir / version / MANIFEST).is_file():
        return sh.cache_dir / version
    try:
        return sh.materialize(version)
    except NotPublished:
        pass
    except RegistryError:
        raise
    except Exception as exc:
        log.warning("shared model registry unreachable (%s); looking for %s in %s", exc, version, root)
    if (root / version / MANIFEST).is_file():
        return root / version
    raise RegistryError(f"no model {version!r} in the shared registry or in {root} (see `dnsentinel models list`)")


def publish(version: str, registry: Path | str | None = None) -> bool:
    """Upload a local version to the shared registry (False: it was there already)."""
    sh = shared()
    if sh is None:
        raise RegistryError("model.registry_backend is 'local': there is no shared registry to publish to "
                            "(set DNSENTINEL_MODEL__REGISTRY_BACKEND=elasticsearch)")
    path = version_dir(version, registry)
    if not path.is_dir():
        raise RegistryError(f"no model {version!r} in {path.parent} to publish")
    return sh.publish(path)


def _set_current(root: Path, version: str, action: str, previous: str | None) -> None:
    root.mkdir(parents=True, exist_ok=True)
    entry = {"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "action": action, "version": version}
    entry["previous"] = previous
    with open(root / PROMOTIONS, "a") as history:
        history.write(json.dumps(entry) + "\n")
    write_pointer(root, version)


def promote(version: str, registry: Path | str | None = None) -> str | None:
    """Make ``version`` current; returns the previously current version.

    Shared backend: a version trained here and not yet published is published first.
    """
    sh = _shared_for(registry)
    if sh is not None:
        if sh.published(check_version(version)) is None:
            publish(version)
        return sh.promote(version)
    root = registry_dir(registry)
    path = version_dir(version, root)
    if not path.is_dir():
        raise RegistryError(f"no model {version!r} in {root}")
    if not is_complete(path):
        raise RegistryError(f"model {version!r} is not complete (still training, failed, or missing weights)")
    previous = current_version(root)
    if previous == version:
        return previous
    _set_current(root, version, "promote", previous)
    return previous


def _promotions(root: Path) -> list[dict[str, Any]]:
    try:
        lines = (root / PROMOTIONS).read_text().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _predecessor(root: Path, version: str) -> str | None:
    return predecessor(_promotions(root), version)


def rollback(registry: Path | str | None = None) -> str:
    """Return to the version that was current before the current one was promoted; returns it.

    Repeated rollbacks walk further back along the promotion history.
    """
    sh = _shared_for(registry)
    if sh is not None:
        return sh.rollback()
    root = registry_dir(registry)
    current = current_version(root)
    if current is None:
        raise RegistryError(f"{root}: no current model to roll back from")
    target = _predecessor(root, current)
    if not target:
        raise RegistryError(f"{root}: nothing to roll back to (no earlier current model recorded for {current!r})")
    if not is_complete(version_dir(target, root)):
        raise RegistryError(f"cannot roll back to {target!r}: its directory is missing or incomplete")
    # The rollback entry records the predecessor of the *target*, so the next rollback goes further back.
    before = _predecessor(root, target)
    _set_current(root, target, "rollback", before)
    return target

