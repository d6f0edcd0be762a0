"""Running the core in the test process while a test thread acts on it, and waiting on it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from core.adapters.redis_server import RedisConnection
from core.ports import StrategySource
from core.runtime.service import CoreService, CoreSettings
from strategy_engine.core_process import run_core


def run_core_beside(
    connection: RedisConnection,
    settings: CoreSettings,
    namespace: str,
    source: StrategySource,
    drive: Callable[[CoreService], None],
    timeout_s: float = 90.0,
) -> dict[str, Any]:
    """Run the core here (it installs signal handlers: main thread only) while ``drive`` acts on
    it from a thread; a watchdog stops the core after ``timeout_s`` so a test cannot hang.

    Returns the core's summary; an exception ``drive`` raised stops the core and is raised here.
    """
    failures: list[BaseException] = []
    threads: list[threading.Thread] = []

    def before_run(service: CoreService) -> None:
        def target() -> None:
            try:
                drive(service)
            except BaseException as exc:  # reported by the test, after the core stopped
                failures.append(exc)
                service.request_stop()

        watchdog = threading.Timer(timeout_s, service.request_stop)
        threads.extend([threading.Thread(target=target, daemon=True), watchdog])
        for thread in threads:
            thread.daemon = True
            thread.start()

    try:
        summary = run_core(
            settings, connection, namespace=namespace, source=source, before_run=before_run
        )
    finally:
        for thread in threads:
            if isinstance(thread, threading.Timer):
                thread.cancel()
            thread.join(timeout=10)
    if failures:
        raise failures[0]
    return summary


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Poll ``condition`` until it holds; TimeoutError naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)
