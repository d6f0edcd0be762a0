"""Schedules of prefect.yaml on a real Prefect server: active when deployed, paused and resumed
through Prefect's client, and a pause kept across the redeploy of every ``up``.

Slow by nature (a Prefect server and a few ``prefect deploy`` subprocesses); the server
requires an auth string, as the one of ``strategy-engine up`` does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from core.errors import ConfigError
from strategy_engine import credentials, schedules, services
from strategy_engine.cli import main
from tests.fixtures_processes import free_port

pytestmark = pytest.mark.integration
INGEST = "ingest-drop-folder/inbox-every-5-minutes"
NIGHTLY = "retrain/nightly-ma-crossover"
MANUAL = "register-and-promote/ma-crossover"


@dataclass(frozen=True)
class Server:
    url: str
    auth: str
    layout: services.Layout


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A Prefect server with auth, the pool, and three deployments of prefect.yaml."""
    layout = services.Layout(tmp_path_factory.mktemp("schedules") / "var")
    auth = credentials.generate().prefect_auth_string
    try:
        launch = services.start_prefect_server(services.HOST, free_port(), layout, auth_string=auth)
        url = f"{services.wait_for_prefect(launch, layout, auth_string=auth).url}/api"
        services.ensure_work_pool(url, services.POOL, layout, auth_string=auth)
        services.deploy_all(url, layout, names=(INGEST, NIGHTLY, MANUAL), auth_string=auth)
        yield Server(url, auth, layout)
    finally:
        services.down(layout, echo=lambda _line: None)


def _rows(server: Server) -> dict[str, dict]:
    return {r["deployment"]: r for r in schedules.list_schedules(server.url, server.auth)}


def test_deployed_schedules_are_active_and_say_when_they_run(server: Server):
    rows = _rows(server)

    assert rows[INGEST]["schedules"] == [{"schedule": "every 300 s", "active": True}]
    assert rows[NIGHTLY]["schedules"] == [{"schedule": "cron 30 22 * * 1-5 (UTC)", "active": True}]
    assert rows[INGEST]["runs_on_schedule"] and rows[NIGHTLY]["runs_on_schedule"]
    assert rows[MANUAL] == {
        "deployment": MANUAL,
        "paused": False,
        "schedules": [],
        "runs_on_schedule": False,
    }


def test_a_pause_holds_across_the_redeploy_of_up_which_alone_would_resume_it(server: Server):
    try:
        (paused,) = schedules.set_paused(server.url, server.auth, True, ["inbox-every-5-minutes"])
        assert paused == {"deployment": INGEST, "paused": True, "changed": True}
        assert _rows(server)[INGEST]["paused"]
        # Prefect's own deploy sends the deployment un-paused: that is why up re-pauses.
        services.deploy_all(server.url, server.layout, names=(INGEST,), auth_string=server.auth)
        assert not _rows(server)[INGEST]["paused"]
        schedules.set_paused(server.url, server.auth, True, [INGEST])

        kept = services.deploy_keeping_pauses(
            server.url, server.layout, names=(INGEST,), auth_string=server.auth
        )

        assert kept == [INGEST]
        rows = _rows(server)
        assert rows[INGEST]["paused"] and not rows[INGEST]["runs_on_schedule"]
        assert not rows[NIGHTLY]["paused"]
    finally:
        schedules.set_paused(server.url, server.auth, False, [INGEST])


def test_the_schedules_command_pauses_and_resumes_every_scheduled_deployment(
    server: Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    monkeypatch.setenv("PREFECT_API_URL", server.url)
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", server.auth)

    assert main(["schedules", "pause", "--all", "--json"]) == 0
    paused = json.loads(capsys.readouterr().out)
    assert main(["schedules", "list", "--json"]) == 0
    listed = {r["deployment"]: r for r in json.loads(capsys.readouterr().out)["deployments"]}
    assert main(["schedules", "resume", "--all", "--json"]) == 0
    resumed = json.loads(capsys.readouterr().out)

    assert {d["deployment"] for d in paused["deployments"]} == {INGEST, NIGHTLY}
    assert all(d["paused"] and d["changed"] for d in paused["deployments"])
    assert listed[INGEST]["paused"] and listed[NIGHTLY]["paused"]
    assert not listed[MANUAL]["paused"]  # no schedule: --all leaves it alone
    assert {d["deployment"] for d in resumed["deployments"]} == {INGEST, NIGHTLY}
    assert not any(r["paused"] for r in _rows(server).values())


def test_a_name_that_is_no_deployment_is_refused_with_the_known_ones(
    server: Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    monkeypatch.setenv("PREFECT_API_URL", server.url)
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", server.auth)

    with pytest.raises(ConfigError, match=f"no deployment 'nope' \\(known: .*{INGEST}"):
        schedules.set_paused(server.url, server.auth, True, ["nope"])
    assert main(["schedules", "pause"]) == 2
    assert "--deployment NAME" in capsys.readouterr().err
