"""The MLflow strategy registry against a real SQLite MLflow store in a temporary folder."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow.pyfunc
import pandas as pd
import pytest

from core.errors import RegistryError, ValidationGateFailed
from core.strategies.catalogue import build
from core.strategies.trend.ma_crossover import MACrossover, MACrossoverConfig
from registry import MlflowStore, MlflowStrategySource, StrategyRegistry
from registry.packaging import RuleStrategyModel
from registry.store import MLFLOW_DIR_ENV, TRACKING_URI_ENV
from tests.evidence import sample_evidence, validated
from tests.fixtures_mlflow import FAILED, PASSED

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
AAPL = DATA / "equities_daily_stocknet88" / "prices" / "AAPL.csv"
NAME = "strategy.ma_crossover"


@pytest.fixture
def registry(
    tmp_path: Path, empty_mlflow_db: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[StrategyRegistry]:
    root = tmp_path / "mlflow"
    root.mkdir()
    shutil.copy(empty_mlflow_db, root / "mlflow.db")
    # Run from an empty folder so a stray ./mlruns would be seen.
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    yield StrategyRegistry(MlflowStore(root))
    assert not (work / "mlruns").exists()


def _register(
    registry: StrategyRegistry,
    fast: int,
    validation: dict | None = None,
    champion: tuple[str, int] | None = None,
) -> str:
    """Register an ma_crossover version with its evidence, evaluated against ``champion``
    (version and fast period) when given."""
    config = {"fast_period": fast, "slow_period": 20, "ma_type": "sma"}
    met = None if champion is None else (champion[0], {**config, "fast_period": champion[1]})
    registered = registry.register(
        "ma_crossover",
        config,
        data_hash="sha256:aapl-2012",
        validation=validation if validation is not None else validated(config, champion=met),
        metrics={"sharpe": 0.8, "max_drawdown": -0.12},
        symbols=("AAPL",),
    )
    return registered.version


def _aapl_bars(rows: int = 250) -> pd.DataFrame:
    """The lower-case float frame callers of the Python API build from a CSV."""
    frame = pd.read_csv(AAPL, nrows=rows).rename(columns=str.lower)
    return frame[["open", "high", "low", "close", "volume"]].astype("float64")


def _as_json_values(series: pd.Series) -> list[float | None]:
    return [None if math.isnan(value) else float(value) for value in series]


def test_registering_records_config_lineage_and_artifacts_in_run_and_version(
    registry: StrategyRegistry, tmp_path: Path
) -> None:
    started = time.perf_counter()
    validation = validated({"fast_period": 5, "slow_period": 20})
    registered = registry.register(
        "ma_crossover",
        {"fast_period": 5, "slow_period": 20},
        data_hash="sha256:aapl-2012",
        validation=validation,
        metrics={"sharpe": 0.8},
        symbols=("AAPL", "MSFT"),
        code_version="v-test",
    )
    registry.promote(registered.name, registered.version)
    elapsed = time.perf_counter() - started

    client = registry.client
    run = client.get_run(registered.run_id)
    version = client.get_model_version(NAME, registered.version)
    artifacts = {item.path for item in client.list_artifacts(registered.run_id)}
    model_files = {item.path for item in client.list_artifacts(registered.run_id, "model")}
    assert registered.name == NAME
    report = client.download_artifacts(registered.run_id, "validation.json", str(tmp_path))
    report_digest = hashlib.sha256(Path(report).read_bytes()).hexdigest()
    assert run.data.params == {
        "fast_period": "5",
        "slow_period": "20",
        "ma_type": "sma",
        "allow_short": "False",
        # The promotion evidence, pinned in params (which MLflow never lets change).
        "evidence.data_hash": "sha256:aapl-2012",
        "evidence.validation_sha256": f"sha256:{report_digest}",
    }
    assert json.loads(Path(report).read_text()) == {**validation, "data_hash": "sha256:aapl-2012"}
    assert run.data.metrics == {"sharpe": 0.8}
    assert version.tags["validation_run_id"] == registered.run_id
    for tags in (run.data.tags, version.tags):
        assert tags["strategy_type"] == "ma_crossover"
        assert tags["data_hash"] == "sha256:aapl-2012"
        assert tags["validation_success"] == "true"
        assert tags["validation_suite"] == "bars_daily"
        assert tags["code_version"] == "v-test"
        assert tags["symbols"] == "AAPL,MSFT"
    assert {"strategy.json", "validation.json", "model"} <= artifacts
    # Nothing pickled: the model is a loader module plus a JSON document.
    assert "model/python_model.pkl" not in model_files
    assert "model/MLmodel" in model_files
    assert elapsed < 5.0, f"register + promote took {elapsed:.1f} s"


def test_the_champion_loads_as_a_deployment_whose_config_builds_the_strategy(
    registry: StrategyRegistry,
) -> None:
    version = _register(registry, fast=7)
    registry.promote(NAME, version)

    deployments = MlflowStrategySource(registry).load_active_set()

    assert len(deployments) == 1
    deployment = deployments[0]
    assert (deployment.name, deployment.version, deployment.alias) == (NAME, version, "champion")
    assert deployment.symbols == ("AAPL",)
    strategy = build(deployment.type_name, deployment.config, "AAPL")
    assert isinstance(strategy, MACrossover)
    assert strategy.config == MACrossoverConfig(fast_period=7, slow_period=20)


def test_an_alias_nobody_set_gives_an_empty_active_set(registry: StrategyRegistry) -> None:
    _register(registry, fast=7)

    assert MlflowStrategySource(registry).load_active_set("challenger") == []


def test_the_champion_pyfunc_predicts_the_vectorized_targets_on_real_bars(
    registry: StrategyRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.promote(NAME, _register(registry, fast=5))
    bars = _aapl_bars()
    monkeypatch.setenv(TRACKING_URI_ENV, registry.store.tracking_uri)

    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    predicted = model.predict(bars)
    # The shipped CSV as pandas reads it: capitalised names, Date and Adj Close, int64 Volume.
    from_csv = model.predict(pd.read_csv(AAPL, nrows=250))

    expected = MACrossover.vectorized(MACrossoverConfig(fast_period=5, slow_period=20), bars)
    pd.testing.assert_series_equal(predicted.astype("float64"), expected, check_names=False)
    pd.testing.assert_series_equal(from_csv, predicted)
    # Warm-up is None (JSON null), the rest plain floats: long and flat periods on AAPL 2012-13.
    assert predicted.name == "target"
    assert predicted.iloc[:19].tolist() == [None] * 19
    assert set(predicted.iloc[19:]) == {0.0, 1.0}


def test_the_pyfunc_names_what_is_wrong_with_its_input() -> None:
    model = RuleStrategyModel("ma_crossover", {"fast_period": 5, "slow_period": 20})
    bars = pd.read_csv(AAPL, nrows=30)

    with pytest.raises(RegistryError, match=r"ma_crossover: input lacks bar columns \['close'\]"):
        model.predict(bars.drop(columns=["Close"]))
    with pytest.raises(RegistryError, match=r"more than once: \{'close': \['Close', 'close'\]\}"):
        model.predict(bars.assign(close=bars["Close"]))
    with pytest.raises(RegistryError, match="column 'Volume' is not numeric"):
        model.predict(bars.assign(Volume="many"))


def _readme_predict_command() -> list[str]:
    """The README's ``mlflow models predict`` example, split as a shell would split it."""
    readme = (ROOT / "README.md").read_text()
    found = re.search(
        r"^ *(MLFLOW_TRACKING_URI=\S+ \S+ models predict(?:.*\\\n)*.*)$", readme, re.MULTILINE
    )
    assert found, "README.md has no `mlflow models predict` example"
    return shlex.split(found.group(1).replace("\\\n", " "))


def test_mlflow_models_predict_scores_a_shipped_csv_as_the_readme_shows(
    registry: StrategyRegistry, tmp_path: Path
) -> None:
    registry.promote(NAME, _register(registry, fast=5))
    assignment, program, *args = _readme_predict_command()
    variable, _, tracking_uri = assignment.partition("=")
    assert (variable, program) == ("MLFLOW_TRACKING_URI", ".venv/bin/mlflow")
    # The fixture's store is tmp_path/mlflow, where the project's is: run from tmp_path as from
    # the project's root, on a copy of the shipped file at its place in the checkout.
    csv = Path(args[args.index("-i") + 1])
    (tmp_path / csv).parent.mkdir(parents=True)
    shutil.copy(ROOT / csv, tmp_path / csv)
    # The loader module must be this checkout's registry.packaging, as installed for users.
    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, variable: tracking_uri, "PYTHONPATH": python_path}

    done = subprocess.run(
        [str(Path(sys.executable).with_name("mlflow")), *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr

    def refuse(token: str) -> None:
        raise AssertionError(f"output is not strict JSON: bare {token}")

    output = tmp_path / args[args.index("-o") + 1]
    predictions = json.loads(output.read_text(), parse_constant=refuse)["predictions"]
    bars = pd.read_csv(ROOT / csv).rename(columns=str.lower)
    expected = MACrossover.vectorized(MACrossoverConfig(fast_period=5, slow_period=20), bars)
    assert predictions == [{"target": value} for value in _as_json_values(expected)]
    assert len(predictions) == 1258
    assert predictions[0] == {"target": None}
    assert {p["target"] for p in predictions[19:]} == {0.0, 1.0}


def test_promoting_moves_the_champion_and_keeps_the_old_one_as_previous(
    registry: StrategyRegistry,
) -> None:
    first = _register(registry, fast=8)
    # Fast 5 scores better than 8 on the held-out window: it may replace it.
    second = _register(registry, fast=5, champion=(first, 8))

    registry.promote(NAME, first)
    registry.promote(NAME, second)

    assert registry.get_alias(NAME, "champion") == second
    assert registry.get_alias(NAME, "previous") == first


def test_rollback_restores_the_previous_champion_once(registry: StrategyRegistry) -> None:
    first = _register(registry, fast=8)
    second = _register(registry, fast=5, champion=(first, 8))
    registry.promote(NAME, first)
    registry.promote(NAME, second)

    restored = registry.rollback(NAME)

    assert restored == first
    assert registry.get_alias(NAME, "champion") == first
    assert "rolled_back_at" in registry.model_version(NAME, second).tags
    with pytest.raises(RegistryError, match="no 'previous' version"):
        registry.rollback(NAME)


def test_promoting_a_version_that_failed_validation_raises_and_keeps_the_champion(
    registry: StrategyRegistry,
) -> None:
    good = _register(registry, fast=5)
    registry.promote(NAME, good)
    bad = _register(registry, fast=8, validation=FAILED)

    with pytest.raises(ValidationGateFailed, match=f"version {bad} failed validation"):
        registry.promote(NAME, bad)

    assert registry.get_alias(NAME, "champion") == good
    assert registry.get_alias(NAME, "previous") is None


def _register_raw_document(registry: StrategyRegistry, name: str, document: dict) -> str:
    """Register a version as code other than this installed version might have written it."""
    client = registry.client
    run = client.create_run(registry.store.experiment_id())
    client.log_text(run.info.run_id, json.dumps(document), "model/data/strategy.json")
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name)
    source = f"{run.info.artifact_uri}/model"
    version = client.create_model_version(name, source=source, run_id=run.info.run_id).version
    client.set_registered_model_alias(name, "champion", version)
    return str(version)


def test_a_version_naming_an_unknown_type_is_refused_naming_model_and_version(
    registry: StrategyRegistry,
) -> None:
    registry.promote(NAME, _register(registry, fast=5))
    document = {"type": "lunar_phase", "config": {}, "schema_version": 1}
    version = _register_raw_document(registry, "strategy.lunar_phase", document)

    with pytest.raises(
        RegistryError, match=rf"strategy\.lunar_phase version {version}.*lunar_phase"
    ):
        MlflowStrategySource(registry).load_active_set()


def test_a_version_with_an_invalid_config_is_refused(registry: StrategyRegistry) -> None:
    document = {
        "type": "ma_crossover",
        "config": {"fast_period": 30, "slow_period": 20},
        "schema_version": 1,
    }
    version = _register_raw_document(registry, NAME, document)

    with pytest.raises(RegistryError, match=f"{NAME} version {version}: .*fast_period must be <"):
        MlflowStrategySource(registry).load_version(NAME, "champion")


def test_list_strategies_is_json_serialisable_with_versions_and_aliases(
    registry: StrategyRegistry,
) -> None:
    first, second = _register(registry, fast=5), _register(registry, fast=8, validation=FAILED)
    registry.promote(NAME, first)

    listing = json.loads(json.dumps(registry.list_strategies()))

    assert [entry["name"] for entry in listing] == [NAME]
    assert listing[0]["aliases"] == {"champion": first}
    versions = listing[0]["versions"]
    assert [v["version"] for v in versions] == [first, second]
    assert [v["tags"]["validation_success"] for v in versions] == ["true", "false"]


def test_the_store_follows_its_environment_and_serves_the_ui_on_loopback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TRACKING_URI_ENV, raising=False)
    monkeypatch.setenv(MLFLOW_DIR_ENV, str(tmp_path / "elsewhere"))

    store = MlflowStore()

    assert store.tracking_uri == f"sqlite:///{tmp_path / 'elsewhere' / 'mlflow.db'}"
    command = store.ui_command()
    assert "--host 127.0.0.1" in command
    assert "--workers 1" in command
    assert f"--backend-store-uri {store.tracking_uri}" in command
    monkeypatch.setenv(TRACKING_URI_ENV, "http://127.0.0.1:5000")
    assert MlflowStore().tracking_uri == "http://127.0.0.1:5000"


def test_every_strategy_type_registers_as_a_champion_the_core_can_run(
    registry: StrategyRegistry,
) -> None:
    from core.strategies.catalogue import strategy_types
    from tests.strategy_samples import all_samples

    samples = all_samples()
    for cls in strategy_types():
        sample = samples[cls.spec.name]()
        evidence = sample_evidence(cls.spec.name, sample.config, sample.events, sample.symbol)
        version = registry.register(
            cls.spec.name, sample.config, data_hash="sample", validation={**PASSED, **evidence}
        ).version
        registry.promote(f"strategy.{cls.spec.name}", version)

    deployments = MlflowStrategySource(registry).load_active_set()

    assert sorted(d.type_name for d in deployments) == sorted(c.spec.name for c in strategy_types())
    for deployment in deployments:
        sample = samples[deployment.type_name]()
        strategy = build(deployment.type_name, deployment.config, sample.symbol)
        signals = [s for e in sample.events if (s := strategy.update(e)) is not None]
        assert signals, f"{deployment.name} v{deployment.version} emitted nothing on its sample"


def test_listed_versions_show_their_aliases(registry: StrategyRegistry) -> None:
    first = _register(registry, 10)
    second = _register(registry, 12, champion=(first, 10))
    registry.promote("strategy.ma_crossover", first)
    registry.promote("strategy.ma_crossover", second)

    (listed,) = registry.list_strategies()

    by_version = {v["version"]: v["aliases"] for v in listed["versions"]}
    assert by_version == {first: ["previous"], second: ["champion"]}
