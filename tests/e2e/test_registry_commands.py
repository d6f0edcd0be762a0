"""The ``registry``, ``rollback`` and ``validate`` commands, run as a user runs them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from registry import MlflowStore, StrategyRegistry
from strategy_engine import monitoring, services
from tests.evidence import rule_evidence

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
PRICES = REPO / "data" / "equities_daily_stocknet88" / "prices"
PASSED = {"success": True, "suite": "bars:test", "failed_expectations": []}


def _cli(
    *args: str, mlflow_dir: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(env) if env is not None else dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    if mlflow_dir is not None:
        env["STRATEGY_ENGINE_MLFLOW_DIR"] = str(mlflow_dir)
    return subprocess.run(
        [sys.executable, "-m", "strategy_engine.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def _register_two_versions(root: Path) -> Path:
    """Promote ma_crossover v1, then v2: champion 2, previous 1."""
    registry = StrategyRegistry(MlflowStore(root))
    champion = None
    # Fast 10 scores above fast 15 on the held-out window: v2 (fast 10) may replace v1.
    for config, digest in (({"fast_period": 15}, "a" * 64), ({"fast_period": 10}, "b" * 64)):
        validation = {**PASSED, **rule_evidence(config, champion=champion)}
        version = registry.register("ma_crossover", config, data_hash=digest, validation=validation)
        registry.promote(version.name, version.version)
        champion = (version.version, config)
    return root


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two versions, for tests that only read (a store costs seconds to create)."""
    return _register_two_versions(tmp_path_factory.mktemp("shared") / "mlflow")


@pytest.fixture
def two_versions(tmp_path: Path) -> Path:
    """Two versions in a store of this test's own, for tests that move aliases."""
    return _register_two_versions(tmp_path / "mlflow")


def _rewrite_row(source: Path, target: Path, line: int, column: int, value: str) -> None:
    """Copy ``source`` to ``target`` with one cell (0-based row incl. header, column) replaced."""
    lines = source.read_text().splitlines()
    cells = lines[line].split(",")
    cells[column] = value
    lines[line] = ",".join(cells)
    target.write_text("\n".join(lines) + "\n")


def test_registry_lists_both_versions_with_champion_and_previous(shared_store):
    done = _cli("registry", "--json", mlflow_dir=shared_store)

    assert done.returncode == 0, done.stderr
    (model,) = json.loads(done.stdout)
    assert model["name"] == "strategy.ma_crossover"
    assert model["aliases"] == {"champion": "2", "previous": "1"}
    assert [v["version"] for v in model["versions"]] == ["1", "2"]
    assert [v["tags"]["data_hash"] for v in model["versions"]] == ["a" * 64, "b" * 64]


def test_rollback_restores_the_previous_champion_and_a_second_rollback_fails_in_one_line(
    two_versions,
):
    first = _cli("rollback", "--strategy", "ma_crossover", "--json", mlflow_dir=two_versions)
    second = _cli("rollback", "--strategy", "ma_crossover", mlflow_dir=two_versions)

    assert first.returncode == 0, first.stderr
    change = json.loads(first.stdout)
    assert (change["champion_before"], change["champion_after"]) == ("2", "1")
    registry = StrategyRegistry(MlflowStore(two_versions))
    assert registry.get_alias("strategy.ma_crossover", "champion") == "1"
    assert "rolled_back_at" in registry.model_version("strategy.ma_crossover", "2").tags
    assert second.returncode == 2
    assert second.stderr.count("\n") == 1
    assert "no 'previous' version" in second.stderr


def test_rollback_of_an_unregistered_strategy_names_it(shared_store):
    done = _cli("rollback", "--strategy", "breakout", mlflow_dir=shared_store)

    assert done.returncode == 2
    assert "no registered strategy 'strategy.breakout'" in done.stderr


def test_validate_passes_the_shipped_aapl_bars():
    csv = PRICES / "AAPL.csv"

    done = _cli("validate", "--kind", "bars", "--csv", str(csv), "--json")

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["success"] is True
    assert result["failed_expectations"] == []
    data_lines = len(csv.read_text().splitlines()) - 1  # one bar per line after the header
    assert result["gate"]["rows"] == data_lines


def test_validate_exits_1_naming_a_high_below_the_close(tmp_path):
    source = PRICES / "KO.csv"
    close = float(source.read_text().splitlines()[101].split(",")[4])
    csv = tmp_path / "KO.csv"
    _rewrite_row(source, csv, line=101, column=2, value=str(close - 1.0))  # High < Close

    as_json = _cli("validate", "--kind", "bars", "--csv", str(csv), "--json")
    as_text = _cli("validate", "--kind", "bars", "--csv", str(csv))

    assert as_json.returncode == 1, as_json.stderr
    result = json.loads(as_json.stdout)
    assert result["success"] is False
    assert [(f["expectation"], f["unexpected_count"]) for f in result["failed_expectations"]] == [
        ("high >= max(open, close)", 1)
    ]
    assert as_text.returncode == 1
    assert "FAILED high >= max(open, close): 1 row" in as_text.stdout


def test_validate_counts_a_row_the_loader_rejected_as_a_failure(tmp_path):
    csv = tmp_path / "KO.csv"
    _rewrite_row(PRICES / "KO.csv", csv, line=20, column=4, value="abc")  # Close not a number

    done = _cli("validate", "--kind", "bars", "--csv", str(csv), "--json")

    assert done.returncode == 1, done.stderr
    result = json.loads(done.stdout)
    assert result["gate"]["success"] is True  # the other rows are fine
    assert result["success"] is False
    (rejected,) = result["loader_rejections"]["examples"]
    assert rejected["line"] == 21  # 0-based row 20 is the file's 21st line
    assert "close" in rejected["reason"]


def test_validate_of_a_csv_in_another_layout_gives_a_one_line_error(tmp_path):
    csv = tmp_path / "funding.csv"
    csv.write_text("Symbol,Date,Funding Rate\nBTC-USDT,2020-01-01 00:00:00,0.0001\n")

    done = _cli("validate", "--kind", "funding", "--csv", str(csv))

    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "missing columns 'Exchange'" in done.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _make(target: str, env: dict[str, str], *variables: str) -> subprocess.CompletedProcess[str]:
    # -o: never rebuild the virtualenv from a test, even if pyproject.toml is newer than it.
    return subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", target, *variables],
        cwd=REPO, capture_output=True, text=True, timeout=240, env=env, check=False,
    )  # fmt: skip


def test_make_up_starts_every_service_and_make_down_stops_them_twice_safely(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(STRATEGY_ENGINE_VAR_DIR=str(tmp_path / "var"),
               STRATEGY_ENGINE_MLFLOW_DIR=str(tmp_path / "mlflow"))  # fmt: skip
    names = ("REDIS_PORT", "MLFLOW_PORT", "PREFECT_PORT", "API_PORT")
    ports = {name: _free_port() for name in names}
    try:
        up = _make("up", env, *(f"{name}={port}" for name, port in ports.items()))
        listed = _cli("services", "--json", env=env)
    finally:
        first_down = _make("down", env)
        second_down = _make("down", env)

    assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
    assert f"MLflow UI:    http://127.0.0.1:{ports['MLFLOW_PORT']}" in up.stdout
    assert f"Prefect UI:   http://127.0.0.1:{ports['PREFECT_PORT']}" in up.stdout
    assert "deployment run 'register-and-promote/ma-crossover'" in up.stdout
    # The dashboard is the API's page: one server.
    assert f"Dashboard:    http://127.0.0.1:{ports['API_PORT']}/dashboard" in up.stdout
    assert f"API:          http://127.0.0.1:{ports['API_PORT']}" in up.stdout
    running = json.loads(listed.stdout)
    # Every program of the stack, under the supervisor; Prometheus and Alertmanager where
    # Debian's packages are installed (make test installs them as root).
    alerting = bool(monitoring.prometheus_binary() and monitoring.alertmanager_binary())
    assert [(s["name"], s["running"], s["answering"]) for s in running] == [
        ("redis", True, True), ("mlflow", True, True), ("prefect", True, True),
        ("worker", True, True), ("alert-receiver", True, True), ("api", True, True),
        ("alertmanager", alerting, alerting), ("prometheus", alerting, alerting),
        ("core-1", True, True),
    ]  # fmt: skip
    assert running[-1]["restarts"] == 0
    assert first_down.returncode == 0, first_down.stderr
    pids = [s["pid"] for s in running if s["pid"]]
    assert not any(psutil.pid_exists(pid) and _not_zombie(pid) for pid in pids)
    assert list((tmp_path / "var" / "run").glob("*.pid")) == []  # the supervisor's too
    assert second_down.returncode == 0, second_down.stderr
    assert second_down.stdout.count("not running") == len(services.SERVICES)


def _not_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
