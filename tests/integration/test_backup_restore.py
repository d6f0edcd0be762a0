"""``backup`` and ``restore`` run as a user runs them: a real embedded Redis, a real MLflow SQLite
store and Prefect's SQLite database, each in its own temporary folders.

One original place gets a Prefect flow that registers and promotes a strategy (MLflow and
Prefect) and a core replay (Redis); its backup is then restored into fresh places.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from core.adapters.redis_server import connect
from core.adapters.redis_store import RedisStore
from strategy_engine import services
from strategy_engine.supervision import Program
from tests.fixtures_processes import REPO, redis_process

pytestmark = pytest.mark.integration

DATASET = "equities_daily_stocknet88"
NAMESPACE = "bk"
CORE_ARGS = ("--until-end", "--strategies", "ma_crossover", "--namespace", NAMESPACE,
             "--no-mlflow", "--json")  # fmt: skip
REPLAY = ("core", "--replay", DATASET, "--fast", *CORE_ARGS)
RESUME = ("core", "--feed", DATASET, *CORE_ARGS)  # no --replay: that would start afresh
# A Prefect flow that validates, registers and promotes a strategy version in MLflow.
FLOW = (
    "import json\n"
    "from strategy_engine.environment import apply_environment_defaults\n"
    "apply_environment_defaults()\n"
    "from pipelines.flows import register_and_promote\n"
    "print(json.dumps(register_and_promote(symbols=['AAPL'])))\n"
)
COMPARED = ("events_in", "signals_out", "orders", "fills", "positions", "signals_by_strategy")


@dataclass(frozen=True)
class Place:
    """One installation's state folders, and the environment that points the CLI at them."""

    root: Path

    @property
    def var(self) -> Path:
        return self.root / "var"

    @property
    def mlflow(self) -> Path:
        return self.root / "mlflow"

    @property
    def prefect(self) -> Path:
        return self.root / "prefect"

    def env(self, redis_url: str | None = None) -> dict[str, str]:
        # Nothing of the caller's services: no server URLs, no Prefect profile settings.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
        env.pop("REDIS_URL", None)
        env.update(
            STRATEGY_ENGINE_VAR_DIR=str(self.var),
            STRATEGY_ENGINE_MLFLOW_DIR=str(self.mlflow),
            PREFECT_HOME=str(self.prefect),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120",
            PREFECT_LOGGING_LEVEL="WARNING",
            MLFLOW_DISABLE_TELEMETRY="true",
            PYTHONPATH=str(REPO),
        )
        if redis_url is not None:
            env["REDIS_URL"] = redis_url
        return env


@dataclass(frozen=True)
class Original:
    place: Place
    backup: Path
    manifest: dict[str, Any]
    replay: dict[str, Any]
    registry: list[dict[str, Any]]
    redis: dict[bytes, Any]
    flow_runs: list[tuple[Any, ...]]


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "strategy_engine.cli", *args], env)


def _json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextmanager
def _embedded(place: Place) -> Iterator[redis.Redis]:
    with connect(data_dir=place.var / "redis") as connection:
        yield connection.client


def _content(client: redis.Redis, namespace: str = NAMESPACE) -> dict[bytes, Any]:
    """Every key of ``namespace`` with its type, value and, for streams, consumer groups."""
    content: dict[bytes, Any] = {}
    for key in sorted(client.scan_iter(match=f"{namespace}:*", count=1000)):
        kind = client.type(key)
        if kind == b"stream":
            groups = [
                (g["name"], g["last-delivered-id"], g["pending"]) for g in client.xinfo_groups(key)
            ]
            value: Any = (client.xrange(key), groups)
        elif kind == b"hash":
            value = client.hgetall(key)
        elif kind == b"set":
            value = sorted(client.smembers(key))
        elif kind == b"zset":
            value = client.zrange(key, 0, -1, withscores=True)
        elif kind == b"list":
            value = client.lrange(key, 0, -1)
        else:
            value = client.get(key)
        content[key] = (kind, value)
    return content


def _flow_runs(place: Place) -> list[tuple[Any, ...]]:
    with sqlite3.connect(place.prefect / "prefect.db") as db:
        return sorted(db.execute("SELECT id, name, state_type FROM flow_run").fetchall())


def _without_timing(summary: dict[str, Any]) -> dict[str, Any]:
    return {key: summary[key] for key in COMPARED}


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Original:
    """A place with a promoted strategy, a flow run and a replayed core, and its backup."""
    place = Place(tmp_path_factory.mktemp("original"))
    env = place.env()
    flow = _json(_run([sys.executable, "-c", FLOW], env))
    assert flow["aliases"]["champion"] == flow["version"]
    replay = _json(_cli(env, *REPLAY))
    assert replay["fills"] > 0 and not replay["restored_from_checkpoint"]
    registry_listing = _json(_cli(env, "registry", "--json"))
    with _embedded(place) as client:
        content = _content(client)
    backup_dir = tmp_path_factory.mktemp("backups") / "first"
    manifest = _json(_cli(env, "backup", str(backup_dir), "--json"))
    return Original(
        place, backup_dir, manifest, replay, registry_listing, content, _flow_runs(place)
    )


def test_the_manifest_lists_every_part_with_checksums_versions_and_key_counts(
    original: Original,
):
    manifest = original.manifest

    paths = {entry["path"] for entry in manifest["files"]}
    assert {"redis/dump.rdb", "prefect/prefect.db", "mlflow/mlflow.db"} <= paths
    assert any(path.startswith("mlflow/artifacts/") for path in paths)
    assert all(len(entry["sha256"]) == 64 and entry["bytes"] > 0 for entry in manifest["files"])
    assert manifest["redis"]["source"] == "embedded" and manifest["redis"]["method"] == "rdb"
    assert manifest["redis"]["keys"] == {NAMESPACE: len(original.redis)}
    assert manifest["versions"]["redis_server"].startswith("6.2")
    assert manifest["versions"]["mlflow"] and manifest["versions"]["prefect"]
    # Referrers first: Redis, then Prefect, then the MLflow database, then its artifacts.
    taken = [manifest["redis"]["taken_at"], manifest["prefect"]["taken_at"],
             manifest["mlflow"]["taken_at"], manifest["mlflow"]["artifacts_taken_at"]]  # fmt: skip
    assert taken == sorted(taken)


def test_a_restore_in_a_fresh_place_resumes_the_core_and_keeps_the_registry(
    original: Original, tmp_path: Path
):
    fresh = Place(tmp_path / "fresh")
    # The original place goes away meanwhile: the restored one must need nothing of it.
    moved = original.place.root.rename(tmp_path / "original-gone")
    try:
        started = time.perf_counter()
        restored = _json(_cli(fresh.env(), "restore", str(original.backup), "--json"))
        restore_s = time.perf_counter() - started

        assert restored["redis"]["keys"] == original.manifest["redis"]["keys"]
        assert restored["set_aside"] == [] and restored["warnings"] == []
        assert restored["mlflow"]["relocated"] > 0
        assert restored["mlflow"]["old_location_mentions"] == 0
        with _embedded(fresh) as client:
            assert _content(client) == original.redis  # streams, groups, hashes, ledger
        resumed = _json(_cli(fresh.env(), *RESUME))
        assert resumed["restored_from_checkpoint"] is True
        assert _without_timing(resumed) == _without_timing(original.replay)
        assert resumed["last_error"] == "" and resumed["restore_problems"] == []
        assert _json(_cli(fresh.env(), "registry", "--json")) == original.registry
        assert _flow_runs(fresh) == original.flow_runs
        _champion_loads_from(fresh)
    finally:
        moved.rename(original.place.root)
    print(f"restore into a fresh place: {restore_s:.1f} s (CLI process included)")


def _champion_loads_from(place: Place) -> None:
    from registry import MlflowStore, MlflowStrategySource, StrategyRegistry

    registry = StrategyRegistry(MlflowStore(place.mlflow))
    deployments = MlflowStrategySource(registry).load_active_set("champion")
    assert [(d.name, d.alias) for d in deployments] == [("strategy.ma_crossover", "champion")]
    version = registry.model_version("strategy.ma_crossover", deployments[0].version)
    assert version.source.startswith((place.mlflow / "artifacts").as_uri())


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("flip", "does not match its sha256 in the manifest"),
        ("remove", "is missing (a partial backup)"),
        ("truncate", "the manifest says"),
        ("no-manifest", "no manifest.json"),
    ],
)
def test_a_damaged_or_partial_backup_is_refused_before_anything_is_written(
    original: Original, tmp_path: Path, damage: str, message: str
):
    copy = tmp_path / "backup"
    shutil.copytree(original.backup, copy)
    if damage == "flip":
        target = copy / "mlflow" / "mlflow.db"
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
    elif damage == "remove":
        (copy / "redis" / "dump.rdb").unlink()
    elif damage == "truncate":
        with (copy / "prefect" / "prefect.db").open("r+b") as handle:
            handle.truncate(4096)
    else:
        (copy / "manifest.json").unlink()
    fresh = Place(tmp_path / "fresh")

    done = _cli(fresh.env(), "restore", str(copy), "--json")

    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert not fresh.root.exists()


def test_backup_refuses_a_folder_that_is_not_empty(original: Original, tmp_path: Path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")

    done = _cli(original.place.env(), "backup", str(tmp_path / "taken"))

    assert done.returncode == 2 and "is not empty" in done.stderr
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]


def test_restore_refuses_while_services_of_up_run(original: Original, tmp_path: Path):
    fresh = Place(tmp_path / "fresh")
    # A program running under the stack's supervisor, as `up` leaves Prefect.
    supervisor = services.Layout(fresh.var).supervisor
    supervisor.ensure_running(dict(os.environ))
    try:
        sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
        supervisor.launch(Program(name="prefect", argv=sleeper))
        done = _cli(fresh.env(), "restore", str(original.backup))
    finally:
        supervisor.shutdown()

    assert done.returncode == 2
    assert "services of `strategy-engine up` run" in done.stderr and "prefect" in done.stderr
    assert not (fresh.mlflow / "mlflow.db").exists()


def test_a_running_server_gets_the_keys_and_a_key_by_key_backup_restores_into_a_folder(
    original: Original, tmp_path: Path
):
    # A separate server at REDIS_URL (as a user's own) holding a core that is alive now.
    (tmp_path / "server").mkdir()
    with redis_process(tmp_path / "server") as server:
        client = redis.Redis(unix_socket_path=str(server.socket))
        client.set(f"{NAMESPACE}:written-after-the-backup", b"1")
        client.set("elsewhere:kept", b"1")
        # A 60 s tactical cycle: its heartbeat stays fresh for three cycles, not just 10 s.
        status = {"heartbeat_ns": time.time_ns(), "tactical_cycle": {"budget_ms": 60_000.0}}
        RedisStore(client, NAMESPACE).save_report("status:core-7", status)
        served = Place(tmp_path / "served")

        refused = _cli(served.env(server.url), "restore", str(original.backup))
        assert refused.returncode == 2, refused.stdout
        assert "fresh heartbeat" in refused.stderr and f"{NAMESPACE}/core-7" in refused.stderr

        forced = _json(
            _cli(served.env(server.url), "restore", str(original.backup), "--force", "--json")
        )
        assert forced["forced"] is True and forced["redis"]["method"] == "keys"
        assert forced["redis"]["removed"] == 1  # the key written after the backup point
        assert _content(client) == original.redis
        assert client.get("elsewhere:kept") == b"1"  # other namespaces are not the backup's

        by_keys = tmp_path / "by-keys"
        manifest = _json(
            _cli(served.env(server.url), "backup", str(by_keys), "--redis-dump-keys", "--json")
        )
        client.close()
    assert manifest["redis"]["method"] == "keys" and manifest["redis"]["source"] == "url"
    assert (by_keys / "redis" / "keys.jsonl").is_file()

    fresh = Place(tmp_path / "fresh")
    restored = _json(_cli(fresh.env(), "restore", str(by_keys), "--json"))

    assert restored["redis"]["method"] == "files"
    with _embedded(fresh) as embedded:
        assert _content(embedded) == original.redis
    resumed = _json(_cli(fresh.env(), *RESUME))
    assert resumed["restored_from_checkpoint"] is True
    assert _without_timing(resumed) == _without_timing(original.replay)
