"""Imports flow one way (README, "The pieces"): a component imports only the floors below it.

Read from the source with ``ast`` (imports inside functions count too), so a shortcut
such as the dashboard importing a stream-processor module fails here, not in review.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"common": "dnsentinel", "verdict_cache": "verdict_cache", "models": "models",
           "producers": "producers", "stream_processor": "stream_processor",
           "dashboard": "dashboard", "cli": "cli"}
"""Source folder -> the component name used below (common is installed as ``dnsentinel``)."""

ALLOWED: dict[str, set[str]] = {
    "dnsentinel": {"verdict_cache"},  # settings take the RPZ action words from the vocabulary
    "verdict_cache": {"dnsentinel"},
    "models": {"dnsentinel", "verdict_cache"},
    "producers": {"dnsentinel", "verdict_cache"},
    "stream_processor": {"dnsentinel", "verdict_cache", "models"},
    "dashboard": {"dnsentinel", "verdict_cache", "models"},
    "cli": {"dnsentinel", "verdict_cache", "models", "producers", "stream_processor", "dashboard"},
}
COMPONENTS = set(ALLOWED) - {"dnsentinel"}


def _target(module: str) -> str | None:
    """``dnsentinel.models.serving`` -> ``models``; ``dnsentinel.settings`` -> ``dnsentinel``."""
    parts = module.split(".")
    if parts[0] != "dnsentinel":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in COMPONENTS else "dnsentinel"


def _module_imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def _names(module: str, imported: set[str]) -> set[str]:
    """The names imported from ``module`` (``a`` for each ``module.a`` in ``imported``)."""
    return {i[len(module) + 1:] for i in imported if i.startswith(module + ".")}


def _graph() -> dict[str, set[tuple[str, str]]]:
    """Component -> {(imported component, importing file)}."""
    edges: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for folder, component in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            for module in _module_imports(path):
                target = _target(module)
                if target and target != component:
                    edges[component].add((target, str(path.relative_to(ROOT))))
    return edges


def test_components_import_only_the_floors_below() -> None:
    wrong = sorted(f"{where} imports {target}" for component, targets in _graph().items()
                   for target, where in targets if target not in ALLOWED[component])
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_one_that_imports_it_back() -> None:
    """No import cycle between two modules of the product (lazy imports included)."""
    modules: dict[str, set[str]] = {}
    for folder, component in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            stem = path.relative_to(ROOT / folder).with_suffix("").as_posix().replace("/", ".")
            name = "dnsentinel" + ("" if component == "dnsentinel" else f".{component}") + f".{stem}"
            modules[name.removesuffix(".__init__")] = _module_imports(path)
    # ``from dnsentinel.models import serving`` imports the module serving, not the package.
    deps = {a: {b for b in imported if b in modules and not any(f"{b}.{x}" in modules and f"{b}.{x}" in imported
                                                                  for x in _names(b, imported))}
            for a, imported in modules.items()}
    cycles = sorted(f"{a} <-> {b}" for a, ds in deps.items() for b in ds if a < b and a in deps.get(b, ()))
    assert not cycles, "\n".join(cycles)
