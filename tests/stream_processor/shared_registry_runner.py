"""Runs the real worker app with the registry the settings describe (the shared one in the tests).

Only the network is replaced: the loader resolves the version through the real registry
(download from Elasticsearch into this worker's cache, sha256 checked) and scores with a
table model, so two workers fit on a small machine without two TensorFlow runtimes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from worker_runner import TableModel  # this folder is sys.path[0] when run as a script


def main() -> None:
    from faust.worker import Worker

    from dnsentinel.models import registry
    from dnsentinel.stream_processor.app import create_app

    table = json.loads(Path(os.environ["SP_TEST_SCORES"]).read_text())

    def load(version: str | None) -> TableModel:
        path = registry.resolve(version)
        manifest = registry.read_json(path / registry.MANIFEST)
        return TableModel(manifest["version"], table, path)

    app = create_app(model_loader=load)  # current_version: the real registry pointer
    Worker(app, loglevel="info", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
