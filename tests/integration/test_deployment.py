"""The register-and-promote deployment of prefect.yaml, run by a real server and process worker.

The server requires an auth string, as the one of ``strategy-engine up`` does, so the deploy,
the worker and the flow run it starts must all send it. Slow by nature (a Prefect server, a
deploy, a worker and a flow-run subprocess: tens of seconds); every process is started in its
own group and stopped in a ``finally``.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.lifecycle import admit_bars, data_hash
from registry import MlflowStore, MlflowStrategySource, StrategyRegistry
from strategy_engine import credentials, services
from tests.fixtures_processes import prefect_with_worker

REPO = Path(__file__).resolve().parents[2]
FLOW, DEPLOYMENT = "register-and-promote", "ma-crossover"
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
RUN_TIMEOUT = 240.0
pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class PrefectApi:
    url: str
    headers: Mapping[str, str]


def _api(method: str, url: str, body: Any = None, headers: Mapping[str, str] | None = None) -> Any:
    """Call the Prefect REST API, retrying what its own client retries (429, 502, 503).

    A busy server answers 503 while its SQLite store is locked; Prefect's client backs off
    and retries, and so does this test rather than fail on a loaded machine.
    """
    data = None if body is None else json.dumps(body).encode()
    for attempt in range(6):
        request = urllib.request.Request(
            url,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code not in (429, 502, 503) or attempt == 5:
                raise
            time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def prefect_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectApi]:
    """A Prefect server with an auth string, the work pool, the ma-crossover deployment and a
    worker; the API URL and the header that authenticates."""
    layout = services.Layout(tmp_path_factory.mktemp("stack") / "var")
    auth = credentials.generate().prefect_auth_string
    monkeypatch = pytest.MonkeyPatch()
    # The worker inherits this environment: no tracking URI may send the run elsewhere.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("PREFECT_API_AUTH_STRING", raising=False)
    # As if `make -C` were run from another folder: the deploy must still name the repository.
    monkeypatch.setenv("PWD", str(layout.var_dir.parent))
    try:
        with prefect_with_worker(layout, auth, (f"{FLOW}/{DEPLOYMENT}",)) as api_url:
            yield PrefectApi(api_url, {"Authorization": credentials.basic_authorization(auth)})
    finally:
        monkeypatch.undo()
        leftover = [n for n in services.SERVICES if services.read_pid(n, layout) is not None]
        assert not leftover, f"still running after down: {leftover}"


def _run_deployment(api: PrefectApi, parameters: dict[str, Any], env: dict[str, str]) -> str:
    deployment = _api("GET", f"{api.url}/deployments/name/{FLOW}/{DEPLOYMENT}", None, api.headers)
    run = _api(
        "POST",
        f"{api.url}/deployments/{deployment['id']}/create_flow_run",
        {"parameters": parameters, "job_variables": {"env": env}},
        api.headers,
    )
    return str(run["id"])


def _wait_for_terminal_state(api: PrefectApi, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        state = _api("GET", f"{api.url}/flow_runs/{run_id}", None, api.headers)["state"] or {}
        if state.get("type") in TERMINAL:
            return state
        time.sleep(0.5)
    pytest.fail(f"flow run {run_id} did not finish within {RUN_TIMEOUT:.0f} s")


def test_a_deployment_run_on_a_process_worker_registers_and_promotes_the_champion(
    prefect_stack: PrefectApi, tmp_path: Path
):
    mlflow_dir = tmp_path / "mlflow"
    parameters = {"symbols": ["AAPL"], "config": {"fast_period": 10, "slow_period": 30}}

    run_id = _run_deployment(
        prefect_stack, parameters, {"STRATEGY_ENGINE_MLFLOW_DIR": str(mlflow_dir)}
    )
    state = _wait_for_terminal_state(prefect_stack, run_id)

    assert (state["type"], state["name"]) == ("COMPLETED", "Completed"), state.get("message")
    path = f"{prefect_stack.url}/deployments/name/{FLOW}/{DEPLOYMENT}"
    deployment = _api("GET", path, None, prefect_stack.headers)
    with pytest.raises(urllib.error.HTTPError, match="401"):  # nothing without the auth string
        _api("GET", path)
    (step,) = deployment["pull_steps"]
    assert step["prefect.deployments.steps.set_working_directory"]["directory"] == str(REPO)
    (active,) = MlflowStrategySource(StrategyRegistry(MlflowStore(mlflow_dir))).load_active_set()
    assert (active.name, active.version) == ("strategy.ma_crossover", "1")
    assert (active.config["fast_period"], active.config["slow_period"]) == (10, 30)
    # The run saw exactly the one symbol it was given: the lineage hash is that of AAPL alone.
    assert active.tags["data_hash"] == data_hash(admit_bars("equities_daily_stocknet88", ["AAPL"]))


def test_prefect_yaml_deploys_every_flow_on_the_stack_pool_with_no_machine_paths():
    text = (REPO / "prefect.yaml").read_text()
    config = yaml.safe_load(text)

    deployments = config["deployments"]
    assert {d["work_pool"]["name"] for d in deployments} == {services.POOL}
    for deployment in deployments:
        module, _, function = deployment["entrypoint"].partition(":")
        assert (REPO / module).is_file()
        assert f"def {function}(" in (REPO / module).read_text()
    # The code is local: the pull step names no path of this machine, only the worker's PWD.
    (step,) = config["pull"]
    assert step["prefect.deployments.steps.set_working_directory"]["directory"] == "{{ $PWD }}"
    assert str(REPO) not in text and "/home/" not in text
