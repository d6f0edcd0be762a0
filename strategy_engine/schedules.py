"""List, pause and resume the schedules of the stack's Prefect deployments.

Pausing is Prefect's own deployment pause (``pause_deployment``): the scheduler makes no runs
for a paused deployment and the server drops the runs it had already scheduled; the Prefect UI
shows the same switch. A run started by hand still runs. ``strategy-engine up`` redeploys
``prefect.yaml``, which would un-pause every deployment, so it reads which ones are paused
first and pauses them again after the deploy (:func:`paused_deployments`, :func:`set_paused`):
a pause holds until ``resume``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

from core.errors import AdapterError, ConfigError


@contextlib.contextmanager
def _client(api_url: str, auth_string: str | None) -> Iterator[Any]:
    """A synchronous Prefect client of ``api_url``, whatever the caller's profile says."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    updates: dict[Any, Any] = {PREFECT_API_URL: api_url}
    if auth_string:
        updates[PREFECT_API_AUTH_STRING] = auth_string
    with temporary_settings(updates=updates), get_client(sync_client=True) as client:
        yield client


def stack_api(layout: Any = None) -> tuple[str, str | None]:
    """Return the Prefect API URL and auth string to use: ``$PREFECT_API_URL`` (with
    ``$PREFECT_API_AUTH_STRING``) if set, else the running stack's.

    Raises
    ------
    ConfigError
        If neither is there: no server to ask.
    """
    url = os.environ.get("PREFECT_API_URL")
    if url:
        return url, os.environ.get("PREFECT_API_AUTH_STRING") or None
    from strategy_engine.services import shell_environment

    env = shell_environment(layout)
    if "PREFECT_API_URL" not in env:
        raise ConfigError("no Prefect server: start the stack (`make up`) or set PREFECT_API_URL")
    return env["PREFECT_API_URL"], env.get("PREFECT_API_AUTH_STRING")


def describe(schedule: Any) -> str:
    """``cron 0 6 * * 0 (UTC)``, ``every 60 s``, or the schedule's own text."""
    if getattr(schedule, "cron", None):
        return f"cron {schedule.cron} ({schedule.timezone or 'UTC'})"
    interval = getattr(schedule, "interval", None)
    if interval is not None:
        return f"every {interval.total_seconds():g} s"
    return str(getattr(schedule, "rrule", schedule))


def list_schedules(api_url: str, auth_string: str | None = None) -> list[dict[str, Any]]:
    """Every deployment of the server: ``deployment`` (flow/name), ``paused``, ``schedules``
    (``schedule``, ``active``) and ``runs_on_schedule`` (not paused and a schedule active)."""
    with _client(api_url, auth_string) as client:
        flows = {flow.id: flow.name for flow in client.read_flows()}
        deployments = client.read_deployments()
    rows = []
    for item in deployments:
        schedules = [
            {"schedule": describe(s.schedule), "active": bool(s.active)} for s in item.schedules
        ]
        paused = bool(item.paused)
        rows.append(
            {
                "deployment": f"{flows.get(item.flow_id, '?')}/{item.name}",
                "paused": paused,
                "schedules": schedules,
                "runs_on_schedule": not paused and any(s["active"] for s in schedules),
            }
        )
    return sorted(rows, key=lambda r: r["deployment"])


def paused_deployments(api_url: str, auth_string: str | None = None) -> list[str]:
    """The deployments (flow/name) that are paused now."""
    return [r["deployment"] for r in list_schedules(api_url, auth_string) if r["paused"]]


def set_paused(
    api_url: str,
    auth_string: str | None,
    paused: bool,
    names: Sequence[str] = (),
    *,
    every: bool = False,
) -> list[dict[str, Any]]:
    """Pause (or resume) the named deployments, or with ``every`` each one that has a schedule.

    ``names`` are ``flow/deployment`` or a deployment name alone when only one flow has it.

    Returns
    -------
    list of dict
        ``deployment``, ``paused`` (now) and ``changed`` per deployment acted on.

    Raises
    ------
    ConfigError
        If neither ``names`` nor ``every`` is given, or a name matches no deployment or several.
    """
    if not names and not every:
        raise ConfigError("name a deployment (--deployment NAME) or choose --all")
    with _client(api_url, auth_string) as client:
        flows = {flow.id: flow.name for flow in client.read_flows()}
        deployments = {
            f"{flows.get(d.flow_id, '?')}/{d.name}": d for d in client.read_deployments()
        }
        if every:
            chosen = [full for full, d in deployments.items() if d.schedules]
        else:
            chosen = [_resolve(name, deployments) for name in names]
        results = []
        for full in sorted(set(chosen)):
            deployment = deployments[full]
            changed = bool(deployment.paused) != paused
            if changed:
                try:
                    if paused:
                        client.pause_deployment(deployment.id)
                    else:
                        client.resume_deployment(deployment.id)
                except Exception as exc:
                    raise AdapterError(f"could not change {full}: {exc}") from exc
            results.append({"deployment": full, "paused": paused, "changed": changed})
    return results


def _resolve(name: str, deployments: dict[str, Any]) -> str:
    if name in deployments:
        return name
    matches = [full for full in deployments if full.split("/", 1)[1] == name]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(sorted(deployments)) or "none"
    if matches:
        raise ConfigError(f"deployment '{name}' is ambiguous: {', '.join(sorted(matches))}")
    raise ConfigError(f"no deployment '{name}' (known: {known})")
