"""prefect.yaml's schedules: active when `up` deploys them, and each one told to the operator."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((REPO / "prefect.yaml").read_text())
OPERATIONS = (REPO / "docs" / "operations.md").read_text()


def _flow_name(entrypoint: str) -> str:
    path, _, function = entrypoint.partition(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return str(getattr(module, function).name)


def test_every_schedule_is_active_when_deployed():
    schedules = [s for d in CONFIG["deployments"] for s in d.get("schedules") or []]

    assert schedules
    assert all(s["active"] is True for s in schedules)


def test_the_operations_doc_says_what_each_scheduled_deployment_does():
    scheduled = [
        f"{_flow_name(d['entrypoint'])}/{d['name']}"
        for d in CONFIG["deployments"]
        if d.get("schedules")
    ]

    missing = [name for name in scheduled if f"`{name}`" not in OPERATIONS]
    assert scheduled and not missing, f"docs/operations.md does not describe {missing}"


def test_the_ingest_deployment_runs_the_drop_folder_flow_with_its_own_parameters():
    from pipelines.ingest import ingest_drop_folder

    (deployment,) = [d for d in CONFIG["deployments"] if d["name"] == "inbox-every-5-minutes"]
    accepted = set(inspect.signature(ingest_drop_folder.fn).parameters)

    assert deployment["entrypoint"] == "pipelines/ingest.py:ingest_drop_folder"
    assert set(deployment["parameters"]) <= accepted
    assert [s["interval"] for s in deployment["schedules"]] == [300]
