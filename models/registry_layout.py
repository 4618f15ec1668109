"""What a registry folder is made of: file names, version names, the pointer file, the history rule.

Shared by the folder registry (:mod:`dnsentinel.models.registry`, which re-exports all of it) and the
shared registry (:mod:`dnsentinel.models.shared_registry`), so neither imports the other back.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
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


def check_version(version: str) -> str:
    """A version name is a safe directory name without ``|`` (SPEC uses ``|`` as a separator)."""
    if not VERSION_RE.match(version or ""):
        raise RegistryError(f"bad model version {version!r}: use 1-80 of [A-Za-z0-9._-], starting alphanumeric")
    return version


def read_json(path: Path) -> Any:
    with open(path) as handle:
        return json.load(handle)


def maybe_json(path: Path) -> Any:
    """The JSON in ``path``, or None when it is missing or half written."""
    try:
        return read_json(path)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def is_complete(path: Path) -> bool:
    """A version can be loaded and promoted once its weights and manifest exist and training is done."""
    status = maybe_json(path / STATUS) or {"state": "done"}
    return (path / MANIFEST).is_file() and (path / WEIGHTS).is_file() and status.get("state") == "done"


def read_pointer(root: Path) -> str | None:
    """The version named in ``root``'s pointer file (None: no file, or empty)."""
    try:
        text = (root / POINTER).read_text().strip()
    except FileNotFoundError:
        return None
    return text or None


def write_pointer(root: Path, version: str) -> None:
    """Atomically point ``root``'s pointer file at ``version`` (a poller never reads half a name)."""
    root.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=root, prefix=f".{POINTER}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(version + "\n")
    os.chmod(tmp, 0o644)  # mkstemp creates 0600; registry files are meant to be readable
    os.replace(tmp, root / POINTER)


def predecessor(entries: list[dict[str, Any]], version: str) -> str | None:
    """The version that was current before ``version`` last became current (entries oldest first)."""
    for entry in reversed(entries):
        if entry.get("version") == version:
            return entry.get("previous")
    return None
