"""Runs the real worker app (real Kafka, Redis, Elasticsearch) with a table-driven model.

The model is the one collaborator replaced here: integration tests need names
whose labels they can predict, and a promotion they can trigger by rewriting
a version file. Settings (topics, prefixes, ports) come from the environment.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Sequence


class TableModel:
    arch = "table"

    def __init__(self, version: str, table: dict[str, dict[str, float]], path: Path | None = None) -> None:
        self.version = version
        self.scores = table.get(version, {})
        self.thresholds = SimpleNamespace(allow=0.2, block=0.8)
        self.path = path  # a version directory: the worker reads the popularity prior beside it

    def predict(self, domains: Sequence[str]) -> list[float]:
        return [self.scores.get(d, 0.5) for d in domains]


def main() -> None:
    from faust.worker import Worker

    from dnsentinel.stream_processor.app import create_app

    table = json.loads(Path(os.environ["SP_TEST_SCORES"]).read_text())
    vfile = Path(os.environ["SP_TEST_VERSION_FILE"])

    def current() -> str:
        return vfile.read_text().strip()

    model_dir = Path(os.environ["SP_TEST_MODEL_DIR"]) if os.environ.get("SP_TEST_MODEL_DIR") else None
    app = create_app(model_loader=lambda v: TableModel(v or current(), table, model_dir), current_version=current)
    Worker(app, loglevel="info", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
