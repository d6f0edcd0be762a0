"""Alerting for the local stack: Prometheus, Alertmanager, and Prefect's failed-run notice.

``strategy-engine up`` starts, when Debian's ``prometheus`` and ``prometheus-alertmanager``
packages are installed, a Prometheus that scrapes every core's ``/metrics`` (job ``core``) and
the API's, which serves the dashboard (job ``dashboard``, with a reader token), and evaluates
the shipped rules in ``monitoring/alerts.yml``, and an Alertmanager that routes every alert
to the project's alert receiver (:mod:`strategy_engine.alert_receiver`). Both listen on
loopback only, keep their data under ``var/``, and run under the stack's supervisor. Their
configurations are generated here from the stack's ports (YAML is a superset of JSON, so they
are written as JSON).

Failed and crashed Prefect flow runs reach the same receiver through Prefect's own
automations: :func:`install_flow_failure_notice` creates a Custom Webhook notification block
and an automation that sends through it.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.adapters.private_files import write_private
from core.config import FrozenConfig, require
from strategy_engine.settings import REPO_ROOT

RULES_FILE = REPO_ROOT / "monitoring" / "alerts.yml"
RULES_TEST_FILE = REPO_ROOT / "monitoring" / "alerts_test.yml"
NOTICE_BLOCK = "strategy-engine-alerts"
NOTICE_AUTOMATION = "strategy-engine: notify failed flow runs"
FAILED_RUN_EVENTS = ("prefect.flow-run.Failed", "prefect.flow-run.Crashed")


def prometheus_binary() -> str | None:
    """The Prometheus server on PATH, or None (install Debian's ``prometheus``)."""
    return shutil.which("prometheus")


def alertmanager_binary() -> str | None:
    """Alertmanager on PATH (Debian names it ``prometheus-alertmanager``), or None."""
    return shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


class AlertTiming(FrozenConfig, frozen=True, kw_only=True):
    """How fast alerts move: Prometheus's scrape and rule intervals, Alertmanager's grouping.

    The defaults suit operation (an alert reaches the receiver within about half a minute of
    its condition holding for its ``for`` time); tests shorten them.
    """

    scrape_interval_s: float = 15.0
    evaluation_interval_s: float = 15.0
    group_wait_s: float = 10.0
    group_interval_s: float = 30.0
    repeat_interval_h: float = 4.0

    def __post_init__(self) -> None:
        for name in ("scrape_interval_s", "evaluation_interval_s", "group_interval_s",
                     "repeat_interval_h"):  # fmt: skip
            value = getattr(self, name)
            require(math.isfinite(value) and value > 0, f"{name} must be > 0, was {value}")
        # Alertmanager sends a group's first notification at once when its wait is 0.
        require(
            math.isfinite(self.group_wait_s) and self.group_wait_s >= 0,
            f"group_wait_s must be >= 0, was {self.group_wait_s}",
        )


def prometheus_config(
    *,
    core_targets: Mapping[str, int],
    dashboard_port: int | None,
    alertmanager_port: int | None,
    timing: AlertTiming,
    host: str = "127.0.0.1",
    rules_file: Path = RULES_FILE,
    dashboard_token_file: Path | None = None,
) -> dict[str, Any]:
    """Prometheus's configuration: the cores (name -> metrics port), the dashboard, the rules.

    The ``dashboard`` job scrapes ``/metrics`` at ``dashboard_port``: the API's, which needs a
    reader token, sent from ``dashboard_token_file`` (owner-only; Prometheus reads it on each
    scrape, so a new token is picked up). The job keeps its name, so the series the rules read
    (``job="dashboard"``) are the same."""
    interval = _duration(timing.scrape_interval_s)
    scrape: list[dict[str, Any]] = [
        {
            "job_name": "core",
            "scrape_interval": interval,
            # The core labels its own series with its name, the same as the target's label.
            "honor_labels": True,
            "static_configs": [
                {"targets": [f"{host}:{port}"], "labels": {"core": name}}
                for name, port in sorted(core_targets.items())
            ],
        }
    ]
    if dashboard_port is not None:
        job: dict[str, Any] = {
            "job_name": "dashboard",
            "scrape_interval": interval,
            "static_configs": [{"targets": [f"{host}:{dashboard_port}"]}],
        }
        if dashboard_token_file is not None:
            job["authorization"] = {
                "type": "Bearer",
                "credentials_file": str(dashboard_token_file),
            }
        scrape.append(job)
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": interval,
            "evaluation_interval": _duration(timing.evaluation_interval_s),
        },
        "rule_files": [str(rules_file)],
        "scrape_configs": scrape,
    }
    if alertmanager_port is not None:
        config["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": [f"{host}:{alertmanager_port}"]}]}]
        }
    return config


def alertmanager_config(
    *, receiver_url: str, token_file: Path, timing: AlertTiming
) -> dict[str, Any]:
    """Alertmanager's configuration: every alert to the receiver, resolved ones too."""
    return {
        "route": {
            "receiver": "strategy-engine",
            "group_by": ["alertname", "core", "strategy"],
            "group_wait": _duration(timing.group_wait_s),
            "group_interval": _duration(timing.group_interval_s),
            "repeat_interval": _duration(timing.repeat_interval_h * 3600),
        },
        "receivers": [
            {
                "name": "strategy-engine",
                "webhook_configs": [
                    {
                        "url": f"{receiver_url}/alertmanager",
                        "send_resolved": True,
                        "max_alerts": 100,
                        "http_config": {
                            "authorization": {"type": "Bearer", "credentials_file": str(token_file)}
                        },
                    }
                ],
            }
        ],
    }


def write_config(path: Path, config: Mapping[str, Any]) -> Path:
    """Write a configuration owner-only (it names token files and the stack's layout)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, json.dumps(config, indent=2) + "\n")
    return path


def prometheus_argv(binary: str, config: Path, data_dir: Path, host: str, port: int) -> list[str]:
    return [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={data_dir}",
        "--storage.tsdb.retention.time=15d",
        f"--web.listen-address={host}:{port}",
    ]


def alertmanager_argv(binary: str, config: Path, data_dir: Path, host: str, port: int) -> list[str]:
    return [
        binary,
        f"--config.file={config}",
        f"--storage.path={data_dir}",
        f"--web.listen-address={host}:{port}",
        # No high-availability gossip: it would listen on every address, on port 9094.
        "--cluster.listen-address=",
    ]


def install_flow_failure_notice(
    api_url: str, receiver_url: str, token: str, auth_string: str | None
) -> str:
    """Create (or replace) the Prefect notification block and automation for failed runs.

    The automation fires on ``prefect.flow-run.Failed`` and ``Crashed`` events and sends a
    notification through a Custom Webhook block that posts ``subject`` and ``body`` to the
    receiver's ``/prefect`` with the stack's alert token. Returns the automation's id.
    """
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    updates: dict[Any, Any] = {PREFECT_API_URL: api_url}
    if auth_string:
        updates[PREFECT_API_AUTH_STRING] = auth_string
    with temporary_settings(updates=updates):
        return asyncio.run(_install_notice(receiver_url, token))


async def _install_notice(receiver_url: str, token: str) -> str:
    from prefect.automations import Automation
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import EventTrigger, Posture

    block = CustomWebhookNotificationBlock(
        name="strategy-engine alert receiver",
        url=f"{receiver_url}/prefect",
        method="POST",
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
        headers={"Authorization": "Bearer {{token}}"},
        cookies=None,
        secrets={"token": token},  # type: ignore[arg-type]
        timeout=10,
    )
    block_id = await block.asave(NOTICE_BLOCK, overwrite=True)
    # One automation of that name: an earlier `up` made one, with an older block or receiver.
    for _ in range(20):
        try:
            existing = await Automation.aread(name=NOTICE_AUTOMATION)
        except ValueError:  # none (left) of that name
            break
        await existing.adelete()
    automation = await Automation(
        name=NOTICE_AUTOMATION,
        description="Tell the stack's alert receiver about every failed or crashed run.",
        trigger=EventTrigger(
            match={"prefect.resource.id": "prefect.flow-run.*"},
            expect=set(FAILED_RUN_EVENTS),
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[
            SendNotification(
                block_document_id=block_id,
                subject="Flow run {{ flow_run.name }} of {{ flow.name }}: "
                "{{ flow_run.state.name }}",
                body="Flow {{ flow.name }}, run {{ flow_run.name }} ({{ flow_run.id }}) "
                "entered {{ flow_run.state.name }}: {{ flow_run.state.message }}",
            )
        ],
    ).acreate()
    return str(automation.id)


def _duration(seconds: float) -> str:
    """A Prometheus duration: whole milliseconds (``1500ms``) or seconds (``15s``)."""
    milliseconds = round(seconds * 1000)
    if milliseconds <= 0:
        raise ValueError(f"a duration must be positive, was {seconds}")
    return f"{milliseconds // 1000}s" if milliseconds % 1000 == 0 else f"{milliseconds}ms"
