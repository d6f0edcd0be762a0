"""The live dashboard in a real headless Chromium while a core runs a paced replay.

The core runs real strategies on real stocknet bars published into Redis at a pace that makes
the replay last about ten seconds; the strategic tier's real regime and macro contexts are
written beside it. Debian's chromium, driven through chromedriver's W3C WebDriver API, opens
the page, served by a real API server (uvicorn) as ``/dashboard#token=<reader token>``, and
reads what it shows while the numbers move; every reading is compared with the status the
core published to Redis under the same heartbeat.

Set ``UPDATE_SCREENSHOTS=1`` to refresh ``docs/dashboard.png`` (the README's picture).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.adapters.market_streams import FeedPublisher
from core.adapters.redis_server import RedisConnection
from core.adapters.redis_store import RedisStore
from core.data.feeds import replay_events
from core.runtime.service import CoreService, CoreSettings
from strategy_engine.api import create_app
from strategy_engine.api.auth import Role, TokenFile
from strategy_engine.api.server import config as uvicorn_config
from strategy_engine.core_process import LocalStrategies, run_core
from strategy_engine.dashboard.page import POLL_MS
from strategy_engine.metrics import CoreMetrics, serve_metrics

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "dashboard.png"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# The flags this machine's Chromium needs headless as root, with no network to call home to.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1440,2000", "--hide-scrollbars",
]  # fmt: skip
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C key of an element reference

FEED = "equities_daily_stocknet88"
SYMBOLS = ["AAPL", "KO", "XOM", "JPM"]
TYPES = ("ma_crossover", "breakout")
CORE = "core-e2e"
RUN_S = 8.0  # wall seconds the paced replay lasts
TACTICAL_S = 0.5  # the core publishes its status this often
# A page reading may lag Redis by a poll, a status period, and the time to read it back.
MAX_LAG_NS = int((POLL_MS / 1000 + TACTICAL_S + 1.5) * 1e9)


# --- a minimal W3C WebDriver client ------------------------------------------------------------


class WebDriver:
    """One Chromium session through chromedriver's HTTP API (no client library needed)."""

    def __init__(self, workdir: Path) -> None:
        self.port = _free_port()
        self.process = subprocess.Popen(
            [str(CHROMEDRIVER), f"--port={self.port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        _wait_for(self._ready, timeout_s=20, what="chromedriver to answer")
        options = {
            "binary": str(CHROMIUM),
            "args": [*CHROMIUM_FLAGS, f"--user-data-dir={workdir / 'profile'}"],
        }
        capabilities = {"browserName": "chrome", "goog:chromeOptions": options}
        created = self._call("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}})
        self.session = f"/session/{created['sessionId']}"

    def get(self, url: str) -> None:
        self._call("POST", f"{self.session}/url", {"url": url})

    def run(self, script: str) -> Any:
        """Run ``script`` in the page and return its result (one consistent reading)."""
        return self._call("POST", f"{self.session}/execute/sync", {"script": script, "args": []})

    def texts(self, css: str) -> list[str]:
        """The rendered texts of the elements matching ``css``."""
        found = self._call(
            "POST", f"{self.session}/elements", {"using": "css selector", "value": css}
        )
        return [self._call("GET", f"{self.session}/element/{e[ELEMENT]}/text") for e in found]

    def screenshot(self) -> bytes:
        return base64.b64decode(self._call("GET", f"{self.session}/screenshot"))

    def quit(self) -> None:
        try:
            self._call("DELETE", self.session)
        finally:
            self.process.terminate()
            self.process.wait(timeout=10)

    def _ready(self) -> bool:
        try:
            return bool(self._call("GET", "/status")["ready"])
        except OSError:
            return False

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())["value"]
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"WebDriver {method} {path}: {exc.read()[:500]!r}") from None


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        reason = (
            f"browser test skipped: {' and '.join(missing)} missing; install Debian's Chromium"
            " with `sudo apt-get install chromium chromium-driver` (`make test` does it as root)"
        )
        # CI runs as root, where `make test` installs them: a skip there would hide the test.
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason.replace("skipped", "cannot run in CI"))
        pytest.skip(reason)
    driver = WebDriver(tmp_path_factory.mktemp("chromium"))
    yield driver
    driver.quit()


# --- the API server ----------------------------------------------------------------------------


class ApiServer:
    """The API (which serves the dashboard) under a real uvicorn on a free loopback port, with
    a token file holding one reader token."""

    def __init__(self, client: Any, namespace: str, core: str, folder: Path) -> None:
        import uvicorn

        tokens = TokenFile(folder / "tokens.json")
        self.token = tokens.create("e2e-reader", Role.READER)
        app = create_app(client, tokens, namespace=namespace, core=core, control_key=lambda: b"")
        port = _free_port()
        self.server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", port))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        _wait_for(lambda: self.server.started, timeout_s=20, what="uvicorn to start")
        self.url = f"http://127.0.0.1:{port}"

    @property
    def page(self) -> str:
        """The dashboard's address with the reader token in its fragment (never sent)."""
        return f"{self.url}/dashboard#token={self.token}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


# --- the run -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """What the page showed at one moment, and the newest status in Redis just after."""

    events: int
    signals: int
    heartbeat_ns: int
    redis_heartbeat_ns: int


# One consistent reading of the numbers on the page, all from the same render.
READ_PAGE = """
const text = (id) => document.getElementById(id).textContent;
return {events: text("events-in"), signals: text("signals-out"),
        heartbeat: document.getElementById("heartbeat").dataset.heartbeatNs};
"""


def _read_page(browser: WebDriver) -> tuple[int, int, int] | None:
    shown = browser.run(READ_PAGE)
    if "-" in (shown["events"], shown["signals"]) or not shown["heartbeat"]:
        return None  # no status shown yet
    return _integer(shown["events"]), _integer(shown["signals"]), int(shown["heartbeat"])


def _integer(text: str) -> int:
    return int(text.replace(",", ""))


def test_the_dashboard_shows_a_running_core_whose_numbers_move_and_equal_redis(
    redis_connection: RedisConnection, redis_namespace: str, browser: WebDriver, tmp_path: Path
):
    client = redis_connection.client
    store = RedisStore(client, redis_namespace, core=CORE)  # the core's own ledger
    regime, macro = _write_strategic_contexts(store)
    bars = replay_events(FEED, symbols=SYMBOLS)
    publisher = FeedPublisher(client, redis_namespace)
    # Two rejects the feed reader must dead-letter with their reasons, then the paced replay.
    publisher.publish_raw(FEED, b"{not json")
    publisher.publish_raw(
        FEED,
        b'{"v":1,"kind":"quote","data":{"symbol":"BTCUSDT","ts_event":1,"bid_price":101.0,'
        b'"bid_size":1.0,"ask_price":100.0,"ask_size":1.0}}',
    )
    speed = (bars[-1].ts_event - bars[0].ts_event) / 1e9 / RUN_S
    dashboard = ApiServer(client, redis_namespace, CORE, tmp_path)
    statuses: dict[int, tuple[int, int]] = {}  # every status the core published, by heartbeat
    readings: list[Reading] = []
    scrapes: list[int] = []
    done = threading.Event()
    served: dict[str, Any] = {}

    def sample_redis() -> None:
        while not done.is_set():
            status = store.load_report(f"status:{CORE}")
            if status is not None:
                statuses[status["heartbeat_ns"]] = (status["events_in"], status["signals_out"])
            time.sleep(0.01)

    def watch_page() -> None:
        browser.get(dashboard.page)
        while not done.is_set():
            shown = _read_page(browser)
            latest = store.load_report(f"status:{CORE}")
            if shown is not None and latest is not None:
                readings.append(Reading(*shown, latest["heartbeat_ns"]))
            scrapes.append(_scrape(served["metrics"].url)["strategy_engine_events_in_total"])
            time.sleep(0.6)

    def before_run(service: CoreService) -> None:
        served["metrics"] = serve_metrics(CoreMetrics(service), "127.0.0.1", 0)
        served["core_metrics"] = CoreMetrics(service)
        feeder = threading.Thread(
            target=publisher.publish, args=(FEED, bars), kwargs={"speed": speed}, daemon=True
        )
        for target in (sample_redis, watch_page):
            served.setdefault("threads", []).append(_guarded(target, served, service))
        for thread in [feeder, *served["threads"]]:
            thread.start()
        served["threads"].append(feeder)
        served["watchdog"] = threading.Timer(RUN_S * 6, service.request_stop)
        served["watchdog"].start()

    settings = CoreSettings(name=CORE, feeds=(FEED,), until_end=True, tactical_cycle_s=TACTICAL_S)
    try:
        summary = run_core(
            settings,
            redis_connection,
            namespace=redis_namespace,
            source=LocalStrategies(TYPES),
            before_run=before_run,
        )
        final = store.load_report(f"status:{CORE}")
        assert final is not None
        statuses[final["heartbeat_ns"]] = (final["events_in"], final["signals_out"])
        _wait_for(
            lambda: (_read_page(browser) or (0, 0, 0))[2] == final["heartbeat_ns"],
            timeout_s=5,
            what="the page to show the core's last status",
        )
        final_page = _read_page(browser)
        final_scrape = _scrape(served["metrics"].url)
        dashboard_metrics = _scrape(f"{dashboard.url}/metrics", dashboard.token)
        address = browser.run("return location.href")
        core_metrics = served["core_metrics"]()
        if os.environ.get("UPDATE_SCREENSHOTS") == "1":
            SCREENSHOT.write_bytes(browser.screenshot())
    finally:
        done.set()
        served.get("watchdog", threading.Timer(0, lambda: None)).cancel()
        for thread in served.get("threads", []):
            thread.join(timeout=10)
        if "metrics" in served:
            served["metrics"].stop()
        dashboard.stop()
    assert not served.get("failures"), served.get("failures")
    # The page dropped the token from its address once it had kept it for the tab.
    assert address == f"{dashboard.url}/dashboard" and dashboard.token not in address

    # The run went through the whole replay, and took long enough to watch it move.
    assert summary["events_in"] == len(bars) and summary["events_rejected"] == 2
    # Every reading equals what Redis held for the status the page showed...
    assert len(readings) >= 5, readings
    for reading in readings:
        assert statuses[reading.heartbeat_ns] == (reading.events, reading.signals), reading
        # ... and lags Redis' newest by no more than the page's poll and the status period.
        assert reading.heartbeat_ns >= reading.redis_heartbeat_ns - MAX_LAG_NS, reading
    # The numbers moved while the page stayed loaded, never backwards.
    shown_events = [r.events for r in readings]
    assert shown_events == sorted(shown_events)
    assert len(set(shown_events)) >= 3, shown_events
    assert readings[0].signals < readings[-1].signals
    # At the end the page shows the core's final numbers.
    assert final_page == (summary["events_in"], summary["signals_out"], final["heartbeat_ns"])
    lengths = store.stream_lengths()
    assert browser.texts("#fills-count") == [f"{lengths['fills']:,}"]
    assert browser.texts("#rejected-count") == [f"{lengths['deadletter']}"]
    assert lengths["fills"] == summary["fills"] > 0

    _assert_tables_show_redis(browser, store, regime["label"], macro["stance"])
    # Metrics: the dashboard's (from Redis) and the core's own, scraped while it ran and after.
    assert dashboard_metrics["strategy_engine_events_in_total"] == summary["events_in"]
    assert dashboard_metrics["strategy_engine_fills_total"] == lengths["fills"]
    assert dashboard_metrics["strategy_engine_fills_stored"] == lengths["fills"]  # a gauge
    assert dashboard_metrics['strategy_engine_input_rejected_total{reason="crossed_book"}'] == 1
    rejected = 'strategy_engine_input_rejected_total{reason="malformed_envelope"}'
    assert dashboard_metrics[rejected] == 1
    assert scrapes == sorted(scrapes) and len(set(scrapes)) >= 2, scrapes
    assert final_scrape["strategy_engine_events_in_total"] == summary["events_in"]
    assert final_scrape["strategy_engine_signals_out_total"] == summary["signals_out"]
    assert final_scrape["strategy_engine_fills_total"] == summary["fills"]
    assert (
        final_scrape["strategy_engine_fast_cycle_seconds_count"] == summary["fast_cycle"]["count"]
    )
    ticks = final_scrape["strategy_engine_tick_to_signal_seconds_count"]
    assert ticks == summary["tick_to_signal"]["count"] > 0
    assert core_metrics["tick_to_signal"]["histogram"]["count"] == ticks


def _assert_tables_show_redis(
    browser: WebDriver, store: RedisStore, regime_label: str, stance: str
) -> None:
    active = sorted(row.split() for row in browser.texts("#active-set tbody tr"))
    assert active == [[f"strategy.{t}", "local", "local", "instances"] for t in sorted(TYPES)]
    newest = store.read_signals(count=1)[-1]
    first_signal = browser.texts("#signals tbody tr:first-child td")
    assert first_signal[1:3] == [newest.strategy, newest.symbol]
    fills = browser.texts("#fills tbody tr")
    assert 0 < len(fills) <= 10
    positions = {p.symbol for p in store.load_positions().values()}
    assert {row.split()[0] for row in browser.texts("#positions tbody tr")} == positions
    reasons = " ".join(browser.texts("#dead-letters tbody td"))
    assert "crossed book" in reasons and "malformed message envelope" in reasons
    context = " ".join(browser.texts("#context .context-item"))
    assert f"label: {regime_label}" in context and f"stance: {stance}" in context
    timing = [row.split()[0] for row in browser.texts("#timing tbody tr")]
    assert timing[:2] == ["fast", "tactical"]


def _write_strategic_contexts(store: RedisStore) -> tuple[dict[str, Any], dict[str, Any]]:
    """The strategic tier's real regime and macro contexts at the end of the replayed data."""
    from pipelines.strategic import (
        macro_document,
        regime_document,
        shipped_index_bars,
        shipped_macro_events,
        write_context,
    )

    as_of = date(2017, 8, 31)
    regime = write_context(store, "regime", regime_document(shipped_index_bars(), as_of))
    macro = write_context(store, "macro", macro_document(as_of, shipped_macro_events()))
    return regime, macro


# --- helpers -----------------------------------------------------------------------------------


def _scrape(url: str, token: str | None = None) -> dict[str, float]:
    """Scrape ``url`` (with a bearer ``token`` if given) and return each sample's value by name
    and labels (``core`` left out)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(
        urllib.request.Request(url, headers=headers), timeout=10
    ) as response:
        text = response.read().decode()
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = {k: v for k, v in sample.labels.items() if k != "core"}
            inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            values[f"{sample.name}{{{inner}}}" if inner else sample.name] = sample.value
    return values


def _guarded(
    target: Callable[[], None], served: dict[str, Any], service: CoreService
) -> threading.Thread:
    """A thread whose failure stops the core and is reported by the test afterwards."""

    def run() -> None:
        try:
            target()
        except BaseException as exc:
            served.setdefault("failures", []).append(repr(exc))
            service.request_stop()

    return threading.Thread(target=run, daemon=True)


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_text_read_from_redis_is_shown_as_text_never_as_markup(
    redis_connection: RedisConnection, redis_namespace: str, browser: WebDriver, tmp_path: Path
):
    store = RedisStore(redis_connection.client, redis_namespace)
    hostile = '<img id="injected" src="x" onerror="document.title=1">'
    store.save_report(
        f"status:{CORE}",
        {"heartbeat_ns": time.time_ns(), "events_in": 1, "signals_out": 0,
         "active_set": [{"name": hostile, "version": "1", "alias": "champion"}]},
    )  # fmt: skip
    store.set_context("regime", {"label": hostile})
    dashboard = ApiServer(redis_connection.client, redis_namespace, CORE, tmp_path)
    try:
        browser.get(dashboard.page)
        _wait_for(lambda: _read_page(browser) is not None, timeout_s=10, what="the status")
        shown = browser.texts("#active-set tbody td")
        context = browser.texts("#context .context-item")
        injected = browser.run('return document.getElementById("injected") === null')
        # The page's Content-Security-Policy still lets its own stylesheet apply.
        background = browser.run("return getComputedStyle(document.body).backgroundColor")
    finally:
        dashboard.stop()

    assert shown[0] == hostile
    assert f"label: {hostile}" in context[0]
    assert injected is True
    assert background == "rgb(15, 20, 25)"  # --bg of page.CSS


# One reading of the token prompt: whether it shows, its message, the badge, the equity card.
READ_PROMPT = """
const el = (id) => document.getElementById(id);
return {shown: !el("auth").hidden, message: el("auth-message").textContent,
        badge: el("connection").textContent, equity: el("equity").textContent};
"""


def test_a_wrong_or_missing_token_asks_for_one_and_a_good_one_shows_the_core(
    redis_connection: RedisConnection, redis_namespace: str, browser: WebDriver, tmp_path: Path
):
    store = RedisStore(redis_connection.client, redis_namespace)
    store.save_report(f"status:{CORE}", {"heartbeat_ns": time.time_ns(), "events_in": 3,
                                         "signals_out": 0, "equity": 4321.0})  # fmt: skip
    dashboard = ApiServer(redis_connection.client, redis_namespace, CORE, tmp_path)
    try:
        browser.get(f"{dashboard.url}/dashboard#token=not-the-token")
        _wait_for(lambda: browser.run(READ_PROMPT)["shown"], timeout_s=10, what="the prompt")
        wrong = browser.run(READ_PROMPT)
        browser.get(f"{dashboard.url}/dashboard")  # sessionStorage still holds the wrong one
        browser.run('sessionStorage.removeItem("strategy-engine-api-token"); location.reload()')
        _wait_for(lambda: browser.run(READ_PROMPT)["shown"], timeout_s=10, what="the prompt")
        missing = browser.run(READ_PROMPT)
        # The token field: typed in, used at once, and the data shows.
        browser.run(
            f'document.getElementById("token-input").value = "{dashboard.token}";'
            'document.getElementById("token-save").click();'
        )
        _wait_for(lambda: _read_page(browser) is not None, timeout_s=10, what="the status")
        good = browser.run(READ_PROMPT)
    finally:
        dashboard.stop()

    assert "refused this token (401 unauthorized)" in wrong["message"]
    assert wrong["badge"] == "token needed" and wrong["equity"] == "-"
    assert "needs a token" in missing["message"] and missing["equity"] == "-"
    assert not good["shown"] and good["badge"] == "live" and good["equity"] == "4,321"
