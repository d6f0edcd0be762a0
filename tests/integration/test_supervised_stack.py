"""The stack of ``strategy-engine up`` under its supervisor, with alerts that reach a person.

One stack for the module, on free ports in a temporary ``var`` folder, with alerting sped up
(1 s scrapes and rule evaluations, 1 s Alertmanager grouping) so that real alerts travel
Prometheus -> Alertmanager -> the project's receiver within the test. Prometheus and
Alertmanager are Debian's packages (`make test` installs them where it can, as root); without
them the alerting tests are skipped with that reason, the supervision tests still run.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from strategy_engine import credentials, monitoring, services
from strategy_engine.credentials import Credentials
from strategy_engine.monitoring import AlertTiming
from strategy_engine.stack_cores import CoreSpec
from tests.fixtures_processes import running_stack

pytestmark = pytest.mark.integration

ALERTING = monitoring.prometheus_binary() is not None and monitoring.alertmanager_binary()
NO_ALERTING = (
    "Prometheus/Alertmanager not installed (apt-get install prometheus prometheus-alertmanager)"
)


@dataclass(frozen=True)
class Stack:
    layout: services.Layout
    result: dict[str, Any]
    creds: Credentials

    def url(self, name: str) -> str:
        return str(self.result["urls"][name])

    def program(self, name: str) -> dict[str, Any]:
        return next(item for item in services.status(self.layout) if item["name"] == name)

    def alerts(self) -> list[dict[str, Any]]:
        request = urllib.request.Request(
            f"{self.url('alert_receiver')}/alerts?limit=1000",
            headers={"Authorization": f"Bearer {self.creds.alerts_token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return list(json.loads(response.read())["alerts"])


def _wait(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    fast = AlertTiming(
        scrape_interval_s=1, evaluation_interval_s=1, group_wait_s=1, group_interval_s=1
    )
    root = tmp_path_factory.mktemp("supervised")
    cores = (CoreSpec(name="core-1", args=("--feed", "equities_daily_stocknet88")),)
    with running_stack(root, cores=cores, alert_timing=fast) as (layout, result, _lines):
        yield Stack(layout, result, credentials.load(layout.credentials_file))
        supervisor = layout.supervisor
    assert not supervisor.running(), "the supervisor outlived down"


def test_up_runs_every_process_under_the_supervisor(stack: Stack):
    report = {item["name"]: item for item in services.status(stack.layout)}
    expected = [services.REDIS, services.MLFLOW, services.PREFECT, services.WORKER,
                services.RECEIVER, services.API, "core-1"]  # fmt: skip
    if ALERTING:
        expected += [services.ALERTMANAGER, services.PROMETHEUS]
    for name in expected:
        assert report[name]["state"] == "RUNNING", report[name]
        assert report[name]["answering"], name
    # The supervisor's own record agrees: one process each, in their own process groups.
    programs = {i["name"]: i for i in stack.layout.supervisor.programs()}
    assert set(expected) <= set(programs)
    for name in expected:
        assert os.getpgid(programs[name]["pid"]) == programs[name]["pid"], name
    # Its configuration holds the programs' secrets: owner-only, as the credentials file.
    for path in (stack.layout.supervisor.conf_file,
                 *stack.layout.supervisor.programs_dir.glob("*.conf")):  # fmt: skip
        assert path.stat().st_mode & 0o077 == 0, path
    # The core publishes its status (with its restart count) on its first tactical cycle,
    # about a second after its metrics answer.
    _wait(lambda: stack.program("core-1")["restarts"] is not None, 30, "core-1's first status")
    assert stack.program("core-1")["restarts"] == 0
    # One server: the API serves the dashboard; no stand-alone dashboard program runs.
    assert services.DASHBOARD not in programs and services.DASHBOARD not in report


def test_a_killed_core_is_restarted_and_status_counts_the_restart(stack: Stack):
    before = stack.program("core-1")
    os.kill(before["pid"], signal.SIGKILL)
    after = _wait(
        lambda: (
            (p := stack.program("core-1"))["state"] == "RUNNING"
            and p["answering"]
            and p["pid"] != before["pid"]
            and p
        ),
        90,
        "core-1 restarted by the supervisor",
    )
    assert after["state"] == "RUNNING"
    restarts = _wait(
        lambda: stack.program("core-1")["restarts"], 30, "the restart counted in the status"
    )
    assert restarts == before["restarts"] + 1
    log = Path(stack.layout.log_file("supervisord")).read_text()
    assert "exited: core-1 (terminated by SIGKILL; not expected)" in log


@pytest.mark.skipif(not ALERTING, reason=NO_ALERTING)
def test_the_restart_fires_an_alert_at_the_receiver_and_it_resolves(stack: Stack):
    if stack.program("core-1")["restarts"] == 0:  # run alone: make the crash happen here
        os.kill(stack.program("core-1")["pid"], signal.SIGKILL)

    def restarted(status: str) -> list[dict[str, Any]]:
        return [a for a in stack.alerts()
                if a["name"] == "CoreRestarted" and a["status"] == status]  # fmt: skip

    fired = _wait(lambda: restarted("firing"), 90, "CoreRestarted firing at the receiver")
    assert fired[0]["source"] == "alertmanager"
    assert fired[0]["labels"]["core"] == "core-1"
    assert fired[0]["severity"] == "warning"
    assert fired[0]["summary"] == "core core-1 restarted after a crash"
    # The rule looks one minute back: the alert resolves once the restart is that old.
    resolved = _wait(lambda: restarted("resolved"), 150, "CoreRestarted resolved")
    assert resolved[0]["labels"]["core"] == "core-1"
    assert resolved[0]["ends_at"] >= fired[0]["starts_at"]


@pytest.mark.skipif(not ALERTING, reason=NO_ALERTING)
def test_a_stopped_core_is_reported_down_until_it_runs_again(stack: Stack):
    assert services.stop_service("core-1", stack.layout).startswith("stopped")
    try:
        down = _wait(
            lambda: [a for a in stack.alerts() if a["name"] == "CoreDown"], 120, "CoreDown fired"
        )
        assert down[0]["status"] == "firing"
        assert down[0]["severity"] == "critical"
        assert down[0]["labels"]["core"] == "core-1"
    finally:
        stack.layout.supervisor.start("core-1")
    _wait(
        lambda: any(a["name"] == "CoreDown" and a["status"] == "resolved" for a in stack.alerts()),
        120,
        "CoreDown resolved once the core runs again",
    )


def test_a_failed_flow_run_reaches_the_receiver_through_prefects_automation(stack: Stack):
    from prefect import flow
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    @flow(name="always-fails")
    def always_fails() -> None:
        raise RuntimeError("this flow fails on purpose")

    settings = {
        PREFECT_API_URL: stack.result["urls"]["prefect_api"],
        PREFECT_API_AUTH_STRING: stack.creds.prefect_auth_string,
    }
    with temporary_settings(updates=settings):
        state = always_fails(return_state=True)
    assert state.is_failed()
    notes = _wait(
        lambda: [
            a for a in stack.alerts() if a["source"] == "prefect" and "always-fails" in a["summary"]
        ],
        120,
        "Prefect's notification of the failed run",
    )
    assert "Failed" in notes[0]["summary"]
    assert "this flow fails on purpose" in notes[0]["description"]


def test_the_api_up_started_answers_the_reader_token_it_stored_and_refuses_it_a_write(
    stack: Stack,
):
    token_file = Path(stack.result["api"]["reader_token_file"])
    assert token_file.stat().st_mode & 0o077 == 0
    token = token_file.read_text().strip()
    base = stack.url("api")
    with urllib.request.urlopen(f"{base}/v1/health", timeout=10) as response:
        assert response.status == 200
    read = urllib.request.Request(
        f"{base}/v1/strategies", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(read, timeout=10) as response:
        assert response.status == 200 and json.loads(response.read())
    halt = urllib.request.Request(
        f"{base}/v1/control/halt",
        data=b'{"reason": "test"}',
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(halt, timeout=10)
    assert refused.value.code == 403


def test_the_dashboard_is_the_apis_page_and_prometheus_scrapes_the_apis_metrics(stack: Stack):
    token = Path(stack.result["api"]["reader_token_file"]).read_text().strip()
    assert stack.url("dashboard") == f"{stack.url('api')}/dashboard"
    with urllib.request.urlopen(stack.url("dashboard"), timeout=10) as response:
        assert response.status == 200 and b"/v1/dashboard" in response.read()
    read = urllib.request.Request(
        f"{stack.url('api')}/v1/dashboard", headers={"Authorization": f"Bearer {token}"}
    )
    state = _wait(
        lambda: (s := json.loads(urllib.request.urlopen(read, timeout=10).read()))["status"] and s,
        60,
        "core-1's status on the dashboard",
    )
    assert state["core"] == "core-1" and state["status"]["core"] == "core-1"
    if not ALERTING:
        return
    # The rules read job="dashboard": its series come from the API's /metrics, scraped with
    # the reader token from an owner-only file.
    query = urllib.parse.urlencode(
        {"query": 'strategy_engine_status_timestamp_seconds{job="dashboard", core="core-1"}'}
    )

    def scraped() -> list[Any]:
        url = f"{stack.url('prometheus')}/api/v1/query?{query}"
        with urllib.request.urlopen(url, timeout=10) as response:
            return list(json.loads(response.read())["data"]["result"])

    assert _wait(scraped, 60, "the dashboard job's series in Prometheus")
    config = json.loads((stack.layout.monitoring_dir / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "dashboard")
    assert job["static_configs"] == [{"targets": [stack.url("api").removeprefix("http://")]}]
    credentials_file = Path(job["authorization"]["credentials_file"])
    assert credentials_file.stat().st_mode & 0o077 == 0
    assert credentials_file.read_text().strip() == token
