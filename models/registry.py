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
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from dnsentinel.errors import DnsentinelError

POINTER = "CURRENT"
PROMOTIONS = "promotions.jsonl"
MANIFEST = "manifest.json"
WEIGHTS = "model.weights.h5"
METRICS = "metrics.json"
HISTORY = "history.jsonl"
STATUS = "status.json"
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


class RegistryError(DnsentinelError):
    """A registry operation that cannot be done (unknown version, nothing to roll back to, ...)."""


def registry_dir(path: Path | str | None = None) -> Path:
    """The registry directory: ``path`` if given, else ``settings.model.registry_dir``."""
    if path is not None:
        return Path(path)
    from dnsentinel.settings import get_settings

    return Path(get_settings().model.registry_dir)


def check_version(version: str) -> str:
    """A version name is a safe directory name without ``|`` (SPEC uses ``|`` as a separator)."""
    if not VERSION_RE.match(version or ""):
        raise RegistryError(f"bad model version {version!r}: use 1-80 of [A-Za-z0-9._-], starting alphanumeric")
    return version


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


def read_json(path: Path) -> Any:
    with open(path) as handle:
        return json.load(handle)


def current_version(registry: Path | str | None = None) -> str | None:
    """The current version's name (reads one small file; meant for hot-reload polling)."""
    try:
        text = (registry_dir(registry) / POINTER).read_text().strip()
    except FileNotFoundError:
        return None
    return text or None


def version_dir(version: str, registry: Path | str | None = None) -> Path:
    return registry_dir(registry) / check_version(version)


def new_version_name(arch: str, name: str | None = None) -> str:
    """``name`` if given, else ``<arch>-<UTC timestamp>``."""
    if name:
        return check_version(name)
    return check_version(f"{arch}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}")


def list_models(registry: Path | str | None = None) -> list[dict[str, Any]]:
    """Every version directory with its manifest summary, status and whether it is current (oldest first)."""
    root = registry_dir(registry)
    current = current_version(root)
    rows = []
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


def _maybe_json(path: Path) -> Any:
    try:
        return read_json(path)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def is_complete(path: Path) -> bool:
    """A version can be loaded and promoted once its weights and manifest exist and training is done."""
    status = _maybe_json(path / STATUS) or {"state": "done"}
    return (path / MANIFEST).is_file() and (path / WEIGHTS).is_file() and status.get("state") == "done"


def resolve(name_or_path: str | Path | None = None, registry: Path | str | None = None) -> Path:
    """The directory of a model: a path to a model directory, a version name, or the current one."""
    root = registry_dir(registry)
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


def _set_current(root: Path, version: str, action: str, previous: str | None) -> None:
    root.mkdir(parents=True, exist_ok=True)
    entry = {"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "action": action, "version": version}
    entry["previous"] = previous
    with open(root / PROMOTIONS, "a") as log:
        log.write(json.dumps(entry) + "\n")
    fd, tmp = tempfile.mkstemp(dir=root, prefix=f".{POINTER}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(version + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, root / POINTER)


def promote(version: str, registry: Path | str | None = None) -> str | None:
    """Make ``version`` current; returns the previously current version."""
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
    """The version that was current before ``version`` last became current."""
    for entry in reversed(_promotions(root)):
        if entry.get("version") == version:
            return entry.get("previous")
    return None


def rollback(registry: Path | str | None = None) -> str:
    """Return to the version that was current before the current one was promoted; returns it.

    Repeated rollbacks walk further back along the promotion history.
    """
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

