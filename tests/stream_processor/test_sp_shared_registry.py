"""The shared model registry end to end: two real worker processes, each with its own state folder,
follow a promotion and a rollback made through the CLI on the real Elasticsearch of the stack.

The versions are small folders (manifest, random weights bytes split over several chunks, the
popularity prior); the workers download them through the real registry code into their own
caches, check every sha256, and score with a table model (shared_registry_runner.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

import pytest

from dnsentinel.errors import ServiceUnavailable

from .conftest import HERE, PRIOR_DOMAINS
from .sandbox import Sandbox

DNSENTINEL = [sys.executable, "-m", "dnsentinel.cli.main"]


def make_version(root: Path, name: str) -> Path:
    from dnsentinel.models import prior, registry

    path = root / name
    path.mkdir(parents=True)
    registry.write_json(path / registry.MANIFEST, {"version": name, "arch": "table", "created": name})
    (path / registry.WEIGHTS).write_bytes(os.urandom(20_000))  # five chunks of 4 KiB
    registry.write_json(path / registry.STATUS, {"state": "done"})
    prior.Prior(frozenset(PRIOR_DOMAINS), frozenset(), {"sources": ["test"]}).save(path)
    return path


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([*DNSENTINEL, "models", *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"dnsentinel models {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


class Worker:
    """One worker process and where it answers /health."""

    def __init__(self, env: dict[str, str], state: Path) -> None:
        self.state = state
        self.port = int(env["DNSENTINEL_WORKER__WEB_PORT"])
        self.log = state.parent / f"{state.name}.log"
        self.proc = subprocess.Popen([sys.executable, str(HERE / "shared_registry_runner.py")], env=env,
                                     stdout=self.log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)

    def model(self) -> str | None:
        if self.proc.poll() is not None:
            pytest.fail(f"worker exited with {self.proc.returncode}:\n{self.log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as answer:
                return json.loads(answer.read()).get("model")
        except OSError:
            return None  # not listening yet

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def wait_for(check: Callable[[], Any], what: str, workers: list[Worker], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    logs = "\n".join(w.log.read_text()[-2000:] for w in workers)
    pytest.fail(f"timed out waiting for {what}; worker logs:\n{logs}")


def test_two_workers_with_their_own_state_follow_promote_and_rollback(services: Any, tmp_path: Path) -> None:
    box = Sandbox("srtest")
    workers: list[Worker] = []
    try:
        for v in ("reg-v1", "reg-v2"):
            make_version(tmp_path / "registry", v)
        (tmp_path / "scores.json").write_text(json.dumps({}))
        base = dict(os.environ)
        base.update({
            "DNSENTINEL_MODEL__REGISTRY_BACKEND": "elasticsearch",
            "DNSENTINEL_MODEL__CHUNK_BYTES": "4096",
            "DNSENTINEL_ELASTICSEARCH__INDEX_PREFIX": box.es_prefix,
        })
        admin = {**base, "DNSENTINEL_MODEL__REGISTRY_DIR": str(tmp_path / "registry"),
                 "DNSENTINEL_STACK__STATE_DIR": str(tmp_path / "admin-state")}
        assert "published" in cli(admin, "publish", "reg-v1")
        cli(admin, "promote", "reg-v1")

        for i in (1, 2):
            state = tmp_path / f"worker{i}"
            env = {**base, **box.worker_env(state), "DNSENTINEL_WORKER__MODEL_POLL_S": "0.5",
                   "DNSENTINEL_MODEL__REGISTRY_DIR": str(tmp_path / f"no-registry{i}"),  # nothing local to read
                   "SP_TEST_SCORES": str(tmp_path / "scores.json")}
            workers.append(Worker(env, state))

        def all_on(version: str) -> Callable[[], bool]:
            return lambda: all(w.model() == version for w in workers)

        wait_for(all_on("reg-v1"), "both workers to start on reg-v1", workers, timeout=180)
        cli(admin, "promote", "reg-v2", "--force")  # not published yet: promote publishes it first
        wait_for(all_on("reg-v2"), "both workers to reload reg-v2", workers)
        weights = (tmp_path / "registry" / "reg-v2" / "model.weights.h5").read_bytes()
        for w in workers:  # each downloaded its own checked copy, into its own state folder
            assert (w.state / "models" / "reg-v2" / "model.weights.h5").read_bytes() == weights
            assert (w.state / "models" / "CURRENT").read_text().strip() == "reg-v2"

        assert "reg-v1" in cli(admin, "rollback")
        wait_for(all_on("reg-v1"), "both workers to roll back to reg-v1", workers)
        listed = {r["version"]: r for r in json.loads(cli(admin, "list", "--json"))}
        assert listed["reg-v1"]["current"] and listed["reg-v2"]["published"]
    finally:
        for w in workers:
            w.stop()
        box.drop()


def test_a_holder_keeps_its_model_while_the_registry_is_down_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    from types import SimpleNamespace

    from dnsentinel.stream_processor.metrics import Metrics
    from dnsentinel.stream_processor.scorer import ModelHolder

    state = {"down": True, "version": "v1"}

    def current() -> str:
        if state["down"]:
            raise ServiceUnavailable("elasticsearch (shared model registry): down")
        return state["version"]

    def model(v: str | None) -> Any:
        return SimpleNamespace(version=v or "v1", thresholds=SimpleNamespace(allow=0.2, block=0.8), path=None,
                               predict=lambda names: [0.5] * len(names))

    metrics = Metrics(registry=__import__("prometheus_client").CollectorRegistry())
    holder = ModelHolder(model, current, metrics)

    async def run() -> None:
        holder.use(model("v1"))
        for _ in range(3):
            assert not await holder.maybe_reload()
        state.update(down=False, version="v2")
        assert await holder.maybe_reload()

    with caplog.at_level("INFO", logger="dnsentinel.stream_processor.scorer"):
        asyncio.run(run())
    holder.close()
    assert metrics.model_registry_errors._value.get() == 3
    assert sum("cannot read the model registry" in r.message for r in caplog.records) == 1
    assert holder.version == "v2"
