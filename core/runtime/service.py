"""The core process: tiers, checkpoints, acknowledgements, hot reload and status.

One loop, two clocks of work:

- every **fast cycle** (100 ms by default) it reads what arrived on its feeds (blocking at most
  the cycle's budget), runs every event through the engine (applicator, composer, risk,
  execution, tracker) and writes the signals, orders and fills it produced;
- every **tactical cycle** (1-60 s) it keeps or reverts the set a reload swapped in (kept:
  the composer settles, trading away models that left), applies control messages and a due
  reload, checkpoints (outputs, positions, strategy and engine state), then acknowledges the
  entries whose effects the checkpoint holds and publishes its status.

A crash between two checkpoints loses nothing: unacknowledged entries are delivered again to
the restarted core, which restores the last checkpoint and redoes the same work with the same
ids, which the store writes once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, get_args

import msgspec

from core.config import FrozenConfig, require
from core.engine.applicator import StrategyApplicator
from core.engine.engine import ENGINE_STATE_KEY, PositionSizing, TradingEngine
from core.engine.execution import BarFillModel, TakerFillModel
from core.engine.portfolio import Portfolio
from core.engine.quote_fills import QuoteFillConfig
from core.engine.tracker import PerformanceTracker
from core.engine.venue import CarryFillModel, CycleFillModel, Venue
from core.errors import ConfigError, StrategyError
from core.messages import (
    ActiveDeployment,
    CoreStatus,
    CycleSummary,
    LatencySummary,
    OnlineReport,
    PublishedRiskLimits,
    StrategyNumbers,
    WriterStats,
)
from core.online import OnlineGenerator, variant_configs
from core.ports import DEFAULT_CORE, StrategyDeployment, StrategySource
from core.risk import RiskLimits, RiskManager
from core.runtime.ingest import IngestionBoundary, IngestLimits
from core.runtime.outbox import BufferedWriter
from core.runtime.shard import SymbolShard
from core.runtime.timing import (
    LATENCY_BUCKETS_S,
    TACTICAL_BUCKETS_S,
    LatencyRecorder,
    TierTimer,
    cumulative_histogram,
)
from core.strategies.batch import BatchMode

log = logging.getLogger(__name__)
T = TypeVar("T")


class Feed(Protocol):
    """What the core reads market data from (:class:`core.adapters.market_streams.FeedReader`)."""

    def ensure_groups(
        self, start_at: dict[str, str] | None = None, default: str = "0"
    ) -> set[str]: ...

    def progress(self) -> dict[str, str]: ...

    def move_group(self, key: str, position: str) -> None: ...

    def trim(self, retention_ms: int, now_ms: int | None = None) -> int: ...

    def read(self, count: int, block_ms: int) -> Any: ...

    def ack(self, refs: Any) -> None: ...

    def resume_after(self, cursor: dict[str, str]) -> None: ...

    def ended_feeds(self) -> set[str]: ...

    @property
    def boundary(self) -> IngestionBoundary: ...


class Board(Protocol):
    """Where the core publishes status and reads back fills (the Redis store)."""

    def save_report(self, name: str, report: dict[str, Any]) -> None: ...

    def read_fills(self) -> list[Any]: ...


CURSOR_FIELD = "feed_cursor"
INGEST_FIELD = "ingest"


def state_key(core: str, key: str) -> str:
    """Where core ``core`` keeps state ``key``: cores that split a universe share a store."""
    return f"{core}/{key}"


class _CoreStateStore:
    """The writer as one core's state store, with the feed cursor inside its engine snapshot.

    The engine snapshot is the checkpoint's commit point, and acknowledgements follow it; a
    crash in between used to redeliver entries whose effects the snapshot already held, which
    the restarted core then applied twice. Written in the same value, the cursor tells the
    restarted core exactly which redelivered entries to skip. Keys carry the core's name. A
    snapshot written before they did sits under the bare key; only the default core reads it
    (one core ran then, almost always under the default name), so that a second core started
    later never takes the first one's state for its own.
    """

    def __init__(
        self,
        writer: BufferedWriter,
        cursor: dict[str, str],
        core: str,
        boundary: IngestionBoundary,
    ) -> None:
        self._writer = writer
        self._cursor = cursor
        self._core = core
        self._boundary = boundary

    def save_state(self, key: str, state: dict[str, Any]) -> None:
        if key == ENGINE_STATE_KEY:
            # The boundary's state goes with the cursor: redelivered entries after the
            # checkpoint meet the boundary as it was when they first came.
            state = {
                **state,
                CURSOR_FIELD: dict(self._cursor),
                INGEST_FIELD: self._boundary.to_state(),
            }
        self._writer.save_state(state_key(self._core, key), state)

    def load_state(self, key: str) -> dict[str, Any] | None:
        state = self._writer.load_state(state_key(self._core, key))
        if state is None and self._core == DEFAULT_CORE:
            state = self._writer.load_state(key)
        return state


class CoreSettings(FrozenConfig, frozen=True, kw_only=True):
    """How one core runs; every field has a default an operator may override."""

    name: str = DEFAULT_CORE
    feeds: tuple[str, ...] = ()
    fast_cycle_s: float = 0.1
    tactical_cycle_s: float = 1.0
    # Entries per read: small enough that a backlog is worked off in cycles within budget.
    read_count: int = 1000
    until_end: bool = False
    registry_check_s: float = 30.0
    fee_bps: float = 1.0
    notional: float = 10_000.0
    # > 0: every +1 target is that many units of the instrument, whatever its price (the
    # backtest's one-unit contract); 0: ``notional`` of money per +1.
    units: float = 0.0
    capital: float = 1_000_000.0
    # None: RiskLimits.conservative for this capital and notional. A core always has limits;
    # only an explicit RiskLimits() (every limit off) removes them, and then it says so.
    risk: RiskLimits | None = None
    # Taker orders on quote feeds fill at the first quote this long after the decision.
    taker_latency_ms: float = 5.0
    taker_fee_bps: dict[str, float] = msgspec.field(
        default_factory=lambda: {"spot": 10.0, "usdm": 2.0}
    )
    # Each fill of a funding carry leg (in units of notional), and each pair of a currency cycle.
    carry_fee_bps: float = 5.0
    cycle_fee_bps: float = 0.0
    # Shadow parameter variants of this model (its registered name), 0 for none.
    shadow_of: str = ""
    shadow_variants: int = 0
    # Types with a batch form update all the symbols of a read at once (numpy), not one by one:
    # "auto" from the form's measured break-even universe, "always", or "never".
    batch_forms: BatchMode = "auto"
    # The symbols this core takes from its feeds (every symbol by default).
    shard: SymbolShard = msgspec.field(default_factory=SymbolShard)
    # What the ingestion boundary lets through (ranges, time windows, price jumps).
    ingest: IngestLimits = msgspec.field(default_factory=IngestLimits)
    # Where a core without a checkpoint whose group has read its feeds goes on from:
    # "" (refuse), "start", "end" or a stream entry id. Ignored when a checkpoint exists.
    resume_from: str = ""
    # A local file written after every checkpoint: it outlives a Redis that lost its data, so
    # a restarted core can tell "never checkpointed" from "checkpoint gone". None: no marker.
    checkpoint_marker: Path | None = None
    # Feed entries every group has acknowledged are trimmed once older than this (0: never),
    # checked every ``trim_every_s``.
    feed_retention_s: float = 3600.0
    trim_every_s: float = 30.0
    # Equity samples the tracker keeps (its metrics are over them): memory stays flat.
    equity_window: int | None = 100_000
    # A Redis that persists nothing loses orders and fills when it stops: refused unless this.
    allow_volatile_redis: bool = False
    # Wall seconds between two ``core_progress`` log records (0: none), and at least between
    # two ``dead_letters`` records (counts by code; none while nothing is rejected).
    progress_every_s: float = 60.0
    dead_letters_every_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("fast_cycle_s", "tactical_cycle_s", "notional", "capital"):
            value = getattr(self, name)
            require(math.isfinite(value) and value > 0, f"{name} must be > 0, was {value}")
        for name in ("registry_check_s", "taker_latency_ms", "feed_retention_s", "trim_every_s",
                     "progress_every_s", "dead_letters_every_s", "units", "carry_fee_bps",
                     "cycle_fee_bps"):  # fmt: skip
            value = getattr(self, name)
            require(math.isfinite(value) and value >= 0, f"{name} must be >= 0, was {value}")
        require(self.read_count >= 1, f"read_count must be >= 1, was {self.read_count}")
        require(
            self.shadow_variants >= 0, f"shadow_variants must be >= 0, was {self.shadow_variants}"
        )
        require(
            self.equity_window is None or self.equity_window >= 1,
            f"equity_window must be >= 1 (or None), was {self.equity_window}",
        )
        modes = get_args(BatchMode)
        require(
            self.batch_forms in modes,
            f"batch_forms must be one of {', '.join(modes)}, was {self.batch_forms!r}",
        )

    def venue(self) -> Venue:
        """The paper venue this core's orders fill at, one fill model per execution style."""
        return Venue(
            bars=BarFillModel(fee_bps=self.fee_bps),
            taker=TakerFillModel(
                latency_ns=int(self.taker_latency_ms * 1e6), taker_fee_bps=self.taker_fee_bps
            ),
            maker=QuoteFillConfig(),
            carry=CarryFillModel(fee_bps=self.carry_fee_bps),
            cycle=CycleFillModel(fee_bps=self.cycle_fee_bps),
        )

    def sizing(self) -> PositionSizing:
        if self.units > 0:
            return PositionSizing(units=self.units)
        return PositionSizing(notional=self.notional)

    def risk_limits(self) -> RiskLimits:
        """The limits this core applies (see ``risk``)."""
        if self.risk is not None:
            return self.risk
        return RiskLimits.conservative(capital=self.capital, notional=self.notional)


@dataclass
class _Pending:
    """A reload applied at the last tactical cycle, on trial until the next one."""

    previous: StrategyApplicator
    errors_before: int


class CoreService:
    """Run the active strategy set on live feeds until stopped or, for replays, until the end."""

    def __init__(
        self,
        settings: CoreSettings,
        *,
        source: StrategySource,
        feed: Feed,
        writer: BufferedWriter,
        board: Board,
        transient: tuple[type[BaseException], ...],
        control: Callable[[], bool] | None = None,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.settings = settings
        self.source = source
        self.feed = feed
        self.writer = writer
        self.board = board
        self._transient = transient
        self._wall_ns = wall_ns
        self._control = control
        self.last_control = ""
        self.fast = TierTimer(int(settings.fast_cycle_s * 1e9))
        self.tactical = TierTimer(int(settings.tactical_cycle_s * 1e9))
        self.tick_to_signal = LatencyRecorder()
        self.in_process = LatencyRecorder()
        self.rejected_by_reason: dict[str, int] = {}
        self.skipped = 0  # entries of other cores' symbols
        self.reloads = 0
        # Registry checks that found a set the core would not load (a champion without its
        # validation evidence, a version the code does not know, MLflow away): the running
        # set stayed.
        self.reloads_refused = 0
        self.read_errors = 0
        self.backpressure_cycles = 0  # fast cycles that took no input: the writer was full
        self.last_error = ""
        self.restored = False
        # Starts of this core that followed one that did not stop cleanly (a crash, a kill):
        # set by whoever runs the service and keeps that count (the core process, in Redis).
        self.restarts: int | None = None
        self.stopped = False
        self._marked = False
        self.trimmed = 0  # feed entries trimmed after every group acknowledged them
        self._next_trim = 0.0
        self._housekeeping: list[tuple[Callable[[], object], float]] = []
        self._next_housekeeping: dict[int, float] = {}
        self._unacked: list[Any] = []
        self._cursor: dict[str, str] = {}  # last entry id processed, per stream key
        self._ended: set[str] = set()
        self._stop = False
        self._reload_requested = False
        self._pending: _Pending | None = None
        self._next_registry_check = 0.0
        self.engine: TradingEngine | None = None
        # Logging is paced from the tactical cycle on the wall clock, never per event: the
        # dead-letter counts already logged (by code) and when the next records are due.
        self._dead_letters_logged: dict[str, int] = {}
        self._next_dead_letters = 0.0
        self._next_progress = time.monotonic() + settings.progress_every_s
        self._progress_mark = (time.monotonic(), 0)  # (when, events_in) of the last record

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Load the active set, restore the last checkpoint, join the feeds' consumer groups."""
        deployments = self.source.load_active_set()
        states = _CoreStateStore(self.writer, self._cursor, self.settings.name, self.feed.boundary)
        self.engine = TradingEngine(
            deployments,
            venue=self.settings.venue(),
            initial_capital=self.settings.capital,
            sizing=self.settings.sizing(),
            risk=RiskManager(self.settings.risk_limits()),
            sink=self.writer,
            state_store=states,
            batch_forms=self.settings.batch_forms,
            shadow=self._shadow_for(deployments),
            equity_window=self.settings.equity_window,
        )
        # The ledger is in the checkpoint: the fills are read only for an older snapshot.
        self.restored = self.engine.restore(states, self.board.read_fills)
        snapshot = (states.load_state(ENGINE_STATE_KEY) or {}) if self.restored else {}
        self._join_feeds(snapshot.get(CURSOR_FIELD) or {})
        if self.restored:
            # Entries checkpointed but not acknowledged before a crash come back: skip them.
            self._cursor.update(snapshot.get(CURSOR_FIELD, {}))
            self.feed.resume_after(dict(self._cursor))
            problem = self.feed.boundary.restore(snapshot.get(INGEST_FIELD) or {})
            if problem is not None and INGEST_FIELD in snapshot:
                self.last_error = problem
                log.warning(
                    problem,
                    extra={"event": "state_not_restored", "core": self.settings.name,
                           "model": "", "symbol": "", "reason": problem, "what": "ingest"},
                )  # fmt: skip
        problems = self.engine.applicator.restore_problems
        if problems:  # those instances started fresh; the summary lists them all
            self.last_error = f"{len(problems)} saved state(s) not restored: {problems[0]}"
        # A feed whose end marker this core consumed before a restart has ended already.
        self._ended |= self.feed.ended_feeds()
        self._next_registry_check = time.monotonic() + self.settings.registry_check_s

    @property
    def rejected(self) -> int:
        """Entries the ingestion boundary dead-lettered since this process started."""
        return sum(self.rejected_by_reason.values())

    def _join_feeds(self, cursor: dict[str, str]) -> None:
        """Join the feeds' consumer groups, and never silently read a feed again from its start.

        With a checkpoint, a group Redis lost is made again after the checkpoint's last entry.
        Without one, while the local marker says this core checkpointed before, Redis lost the
        checkpoint (or someone deleted it): refuse, unless the operator says where to go on
        from (``resume_from``).
        """
        progress = self.feed.progress()
        if self.restored:
            lost = self.feed.ensure_groups(cursor) & set(cursor)
            if lost:
                self.last_error = (
                    f"consumer group was gone on {', '.join(sorted(lost))}; "
                    "made again after the checkpoint's last entry"
                )
                log.warning(
                    self.last_error,
                    extra={"event": "consumer_group_recreated", "core": self.settings.name,
                           "streams": sorted(lost), "after": {k: cursor[k] for k in sorted(lost)}},
                )  # fmt: skip
            return
        start = self.settings.resume_from
        if start:
            position = {"start": "0", "end": "$"}.get(start, start)
            self.feed.ensure_groups(default=position)
            for key in progress:
                self.feed.move_group(key, position)
            return
        marker = self.settings.checkpoint_marker
        if marker is not None and marker.exists():
            raise ConfigError(
                f"core '{self.settings.name}' checkpointed before ({marker} says so) but Redis "
                "holds no checkpoint and its consumer group would read the feeds again from "
                "the start: the checkpoint is gone. Restart with --resume-from start (read the "
                "feeds again), --resume-from end (only new entries) or --resume-from ID"
            )
        self.feed.ensure_groups()

    def request_stop(self) -> None:
        """Finish the current cycle, checkpoint, and return from :meth:`run` (signal-safe)."""
        self._stop = True

    def _shadow_for(self, deployments: list[StrategyDeployment]) -> OnlineGenerator | None:
        """The online generator over variants of ``shadow_of``, if asked for and running."""
        settings = self.settings
        live = next((d for d in deployments if d.name == settings.shadow_of), None)
        if live is None or settings.shadow_variants < 2:
            return None
        configs = variant_configs(
            live.type_name, live.config, max_variants=settings.shadow_variants
        )
        return OnlineGenerator(
            live,
            configs,
            fill_model=BarFillModel(fee_bps=settings.fee_bps),
            capital=settings.notional,
            sizing=PositionSizing(notional=settings.notional),
        )

    def attach_housekeeping(self, task: Callable[[], object], every_s: float) -> None:
        """Run ``task`` (archiving, say) from the tactical cycle at most every ``every_s``; a
        failure is recorded in ``last_error`` and retried at the next turn, never fatal."""
        self._housekeeping.append((task, every_s))

    def attach_control(self, control: Callable[[], bool]) -> None:
        """Poll ``control`` every tactical cycle; True asks for a reload."""
        self._control = control

    def note(self, line: str) -> None:
        """Record what an operator's control message did, for the status."""
        self.last_control = line

    def run(self) -> dict[str, Any]:
        """Cycle until stopped (or the feeds end, with ``until_end``); return the summary."""
        if self.engine is None:
            self.start()
        next_tactical = time.monotonic() + self.settings.tactical_cycle_s
        while not self._stop:
            got = self._fast_cycle()
            if time.monotonic() >= next_tactical or self._finished(got):
                self._tactical_cycle()
                next_tactical = time.monotonic() + self.settings.tactical_cycle_s
            if self._finished(got):
                break
        self.stopped = True  # the last status says so: a replay may then reset this namespace
        self._tactical_cycle()
        return self.summary()

    # -- cycles -------------------------------------------------------------------------------

    def _fast_cycle(self) -> int:
        engine = self._engine()
        block_ms = max(1, int(self.settings.fast_cycle_s * 1000))
        if self.writer.saturated and not self.writer.drain(force=True):
            # Backpressure: Redis holds a full buffer's backlog; take no input until it drains
            # (the input waits in Redis, unacknowledged, so nothing is lost).
            self.backpressure_cycles += 1
            time.sleep(self.settings.fast_cycle_s)
            return 0
        try:
            delivery = self.feed.read(self.settings.read_count, block_ms)
        except self._transient as exc:
            self.read_errors += 1
            self.last_error = f"feed read failed: {type(exc).__name__}: {exc}"
            time.sleep(self.settings.fast_cycle_s)
            return 0
        started = time.perf_counter_ns()
        signalled: list[int] = []
        # Batch forms take the whole read at once; an event's signal waits for that too.
        engine.prepare(delivery.events)
        prepared = time.perf_counter_ns() - started
        for event, arrived in zip(delivery.events, delivery.arrivals_ns, strict=True):
            t0 = time.perf_counter_ns()
            if engine.on_event(event):  # it caused signals
                self.in_process.record(time.perf_counter_ns() - t0 + prepared)
                signalled.append(arrived)
        engine.flush()
        if signalled and self.writer.connected:
            written = self._wall_ns()
            for arrived in signalled:
                if arrived > 0:  # entries without t_pub have no tick-to-signal latency
                    self.tick_to_signal.record(max(0, written - arrived))
        self._unacked.extend(delivery.refs)
        for key, entry_id in delivery.refs:  # in id order per stream: the last one wins
            self._cursor[key] = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        self._ended |= delivery.ended
        for rejected in delivery.rejections:
            code = str(rejected.rejection.code)
            self.rejected_by_reason[code] = self.rejected_by_reason.get(code, 0) + 1
        self.skipped += delivery.skipped
        if delivery.events:
            self.fast.record(time.perf_counter_ns() - started)
        return len(delivery.events) + len(delivery.ended) + delivery.rejected

    def _tactical_cycle(self) -> None:
        started = time.perf_counter_ns()
        engine = self._engine()
        self._judge_pending_reload()
        # Before the checkpoint: orders a control message or a settled set placed go out with it.
        self._maybe_reload()
        engine.checkpoint()
        if self.writer.drain(force=True):
            self._mark_checkpoint()
            if self._unacked:
                try:
                    self.feed.ack(self._unacked)
                    self._unacked = []
                except self._transient as exc:
                    self.last_error = f"ack failed: {type(exc).__name__}: {exc}"
                    # Harmless (the entries come again after a crash and the cursor skips
                    # them), but a Redis that keeps refusing acks grows the pending list.
                    log.warning(
                        self.last_error,
                        extra={"event": "ack_failed", "core": self.settings.name,
                               "entries": len(self._unacked), "error": str(exc)[:400]},
                    )  # fmt: skip
            self._maybe_trim()
            self._housekeep()
        self._publish_status()
        self._log_dead_letters(final=self.stopped)
        self._log_progress()
        self.tactical.record(time.perf_counter_ns() - started)

    def _maybe_trim(self) -> None:
        settings = self.settings
        if settings.feed_retention_s <= 0 or time.monotonic() < self._next_trim:
            return
        self._next_trim = time.monotonic() + settings.trim_every_s
        try:
            self.trimmed += self.feed.trim(int(settings.feed_retention_s * 1000))
        except self._transient as exc:  # the next check will do
            self.last_error = f"feed trim failed: {type(exc).__name__}: {exc}"

    def _housekeep(self) -> None:
        now = time.monotonic()
        for index, (task, every_s) in enumerate(self._housekeeping):
            if now < self._next_housekeeping.get(index, 0.0):
                continue
            self._next_housekeeping[index] = now + every_s
            try:
                task()
            except Exception as exc:
                self.last_error = f"housekeeping failed: {type(exc).__name__}: {exc}"[:400]

    def _mark_checkpoint(self) -> None:
        marker = self.settings.checkpoint_marker
        if marker is None or self._marked:
            return
        # Written once: what it says ("this core has checkpointed") stays true until a replay
        # from scratch removes it.
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"core": self.settings.name, "at_ns": self._wall_ns()}))
        self._marked = True

    def _finished(self, got: int) -> bool:
        feeds = set(self.settings.feeds)
        return self.settings.until_end and got == 0 and bool(feeds) and feeds <= self._ended

    # -- hot reload ---------------------------------------------------------------------------

    def _maybe_reload(self) -> None:
        if self._control is not None and self._poll_control():
            self._reload_requested = True
        due = time.monotonic() >= self._next_registry_check
        if not (self._reload_requested or due):
            return
        self._reload_requested = False
        self._next_registry_check = time.monotonic() + self.settings.registry_check_s
        try:
            wanted = self.source.load_active_set()
        except Exception as exc:  # the registry is away or holds a bad version: keep running
            self.reloads_refused += 1
            self.last_error = f"reload skipped, kept the running set: {type(exc).__name__}: {exc}"
            self._log_reload("reload_skipped", self.last_error)
            return
        engine = self._engine()
        if _versions(wanted) == _versions(engine.applicator.deployments):
            return
        if not wanted:
            # An empty answer is far likelier a registry mishap than a wish to stop trading.
            self.last_error = "reload skipped, kept the running set: the registry set is empty"
            self._log_reload("reload_skipped", self.last_error)
            return
        previous = engine.swap_deployments(wanted, settle=False)
        self._pending = _Pending(previous, len(engine.applicator.errors))
        self.reloads += 1
        self._log_reload(
            "reload_applied",
            "new set swapped in, on trial for one cycle",
            engine.applicator.deployments,
            previous.deployments,
        )

    def _log_reload(
        self,
        event: str,
        reason: str,
        now: list[StrategyDeployment] | None = None,
        before: list[StrategyDeployment] | None = None,
        *,
        failure: StrategyError | None = None,
    ) -> None:
        """One record per reload decision, with the models whose version changed."""
        fields: dict[str, Any] = {"event": event, "core": self.settings.name, "reason": reason}
        if failure is not None:
            tried = {d.name: d.version for d in now or []}
            fields.update(
                model=failure.model, symbol=failure.symbol, version=tried.get(failure.model)
            )
        if now is not None and before is not None:
            old = {d.name: d.version for d in before}
            new = {d.name: d.version for d in now}
            fields["models"] = [
                {"model": name, "version": new.get(name), "from_version": old.get(name)}
                for name in sorted(old.keys() | new.keys())
                if new.get(name) != old.get(name)
            ]
        level = logging.INFO if event in ("reload_applied", "reload_kept") else logging.WARNING
        log.log(level, reason[:400], extra=fields)

    def _poll_control(self) -> bool:
        assert self._control is not None
        try:
            return self._control()
        except self._transient:
            return False  # the periodic registry check still catches the change

    def _judge_pending_reload(self) -> None:
        """Keep a new set that ran a cycle cleanly; put the old one back if it raised."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        engine = self._engine()
        if len(engine.applicator.errors) > pending.errors_before:
            trial = engine.applicator
            failure = trial.errors[-1]
            engine.revert(pending.previous)
            # The old set did not see the trial cycle's events; without this its models would
            # resume from where they were at the swap, as if those events had been dropped.
            pending.previous.restore(_unchanged_states(trial, pending.previous))
            self.reloads -= 1
            self.last_error = f"reload reverted, new set failed its first cycle: {failure}"
            self._log_reload(
                "reload_reverted",
                self.last_error,
                trial.deployments,  # "version": the one that failed; "from_version": kept
                pending.previous.deployments,
                failure=failure,
            )
        else:
            engine.settle()  # kept: models that left give up their positions, new weights apply
            self._log_reload("reload_kept", "new set ran its first cycle cleanly")

    # -- logs ---------------------------------------------------------------------------------

    def _log_dead_letters(self, *, final: bool = False) -> None:
        """One ``dead_letters`` record with the rejections by code since the last one, at most
        every ``dead_letters_every_s`` (and once at the end): a flood of bad entries is a few
        lines, and the hot path only counts, as it always did."""
        now = time.monotonic()
        if not final and now < self._next_dead_letters:
            return
        counts = self.rejected_by_reason
        if sum(counts.values()) == sum(self._dead_letters_logged.values()):
            return
        new = {
            code: n - self._dead_letters_logged.get(code, 0)
            for code, n in sorted(counts.items())
            if n != self._dead_letters_logged.get(code, 0)
        }
        self._dead_letters_logged = dict(counts)
        self._next_dead_letters = now + self.settings.dead_letters_every_s
        log.warning(
            f"{sum(new.values())} feed entries dead-lettered",
            extra={"event": "dead_letters", "core": self.settings.name, "counts": new,
                   "rejected": sum(new.values()), "rejected_total": self.rejected},
        )  # fmt: skip

    def _log_progress(self) -> None:
        every = self.settings.progress_every_s
        now = time.monotonic()
        if every <= 0 or now < self._next_progress or self.stopped:
            return
        self._next_progress = now + every
        engine = self._engine()
        events = engine.tracker.events
        since, before = self._progress_mark
        self._progress_mark = (now, events)
        log.info(
            f"{events} events in, {engine.tracker.signals} signals, {engine.risk.accepted} orders",
            extra={
                "event": "core_progress",
                "core": self.settings.name,
                "events_in": events,
                "events_per_s": round((events - before) / max(now - since, 1e-9), 1),
                "signals": engine.tracker.signals,
                "orders": engine.risk.accepted,
                "fills": engine.tracker.fills,
                "equity": engine.portfolio.equity,
                "risk_mode": str(engine.risk.mode),
                "rejected": self.rejected,
                "skipped": self.skipped,
                "read_errors": self.read_errors,
                "unacked": len(self._unacked),
                "buffered": self.writer.buffered_items,
                "tick_to_signal": self.tick_to_signal.summary(),
                "fast_cycle": self.fast.summary(),
            },
        )

    # -- reporting ----------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        engine = self._engine()
        result = engine.summary()
        return {
            "core": self.settings.name,
            "restored_from_checkpoint": self.restored,
            "events_in": result["events"],
            "events_rejected": self.rejected,
            "rejected_by_reason": dict(sorted(self.rejected_by_reason.items())),
            "events_skipped": self.skipped,
            "shard": self.settings.shard.describe(),
            "signals_out": result["signals"],
            "signals_by_strategy": _signals_by_strategy(result),
            "orders": result["risk"]["accepted"],
            "fills": result["fills"],
            "risk": result["risk"],
            "risk_limits": engine.risk.limits.to_dict(),
            "fast_cycle": self.fast.summary(),
            "tactical_cycle": self.tactical.summary(),
            "tick_to_signal": self.tick_to_signal.summary(),
            "in_process": self.in_process.summary(),
            "vectorized": engine.applicator.vectorized,
            "reloads": self.reloads,
            "reloads_refused": self.reloads_refused,
            "strategy_errors": result["strategy_errors"],
            "restore_problems": list(engine.applicator.restore_problems),
            "redis": self.writer.stats(),
            "read_errors": self.read_errors,
            "backpressure_cycles": self.backpressure_cycles,
            "feed_entries_trimmed": self.trimmed,
            "last_error": self.last_error,
            "pnl": result["pnl"],
            "positions": {p.symbol: p.quantity for p in engine.portfolio.positions()},
        }

    def status(self) -> dict[str, Any]:
        """The status as published: :class:`core.messages.CoreStatus` as plain JSON data."""
        return self.status_message().to_dict()

    def status_message(self) -> CoreStatus:
        engine = self._engine()
        heartbeat = self._wall_ns()
        # The core's own /metrics reports this as its heartbeat, as the dashboard reports the
        # published status': a stalled loop shows as a stale timestamp on both.
        self.last_status_ns = heartbeat
        return CoreStatus(
            core=self.settings.name,
            heartbeat_ns=heartbeat,
            state="stopped" if self.stopped else "running",
            active_set=[
                ActiveDeployment(name=d.name, version=d.version, alias=d.alias)
                for d in engine.applicator.deployments
            ],
            vectorized=engine.applicator.vectorized,
            # Percentiles as before, plus cumulative buckets for Prometheus histograms.
            fast_cycle=self._timing(self.fast, LATENCY_BUCKETS_S, CycleSummary),
            tactical_cycle=self._timing(self.tactical, TACTICAL_BUCKETS_S, CycleSummary),
            tick_to_signal=self._timing(self.tick_to_signal, LATENCY_BUCKETS_S, LatencySummary),
            events_in=engine.tracker.events,
            signals_out=engine.tracker.signals,
            orders=engine.risk.accepted,
            fills=engine.tracker.fills,
            read_errors=self.read_errors,
            positions={p.symbol: p.quantity for p in engine.portfolio.positions()},
            per_strategy=self._per_strategy(engine),
            events_rejected=self.rejected,
            rejected_by_reason=dict(sorted(self.rejected_by_reason.items())),
            events_skipped=self.skipped,
            shard=self.settings.shard.describe(),
            equity=engine.portfolio.equity,
            drawdown=self.drawdown(),
            risk_mode=str(engine.risk.mode),
            halt_reason=engine.risk.halt_reason,
            risk_limits=msgspec.convert(engine.risk.limits.to_dict(), PublishedRiskLimits),
            redis=msgspec.convert(self.writer.stats(), WriterStats),
            reloads=self.reloads,
            reloads_refused=self.reloads_refused,
            online=(
                msgspec.convert(engine.shadow.report(), OnlineReport)
                if engine.shadow is not None
                else None
            ),
            last_control=self.last_control,
            last_error=self.last_error,
            restarts=self.restarts,
        )

    def _per_strategy(self, engine: TradingEngine) -> list[StrategyNumbers]:
        """PnL, signals and fills per strategy, from its own book."""
        capital = self.settings.capital
        weights = engine.composer.weights
        rows = []
        for name, portfolio, tracker in self._books(engine):
            metrics = tracker.metrics(portfolio.traded_notional)  # closed samples only
            rows.append(StrategyNumbers(
                strategy=name, pnl=portfolio.equity - capital, signals=tracker.signals,
                fills=tracker.fills, sharpe=metrics["sharpe"], periods=metrics["periods"],
                weight=weights.get(name, 1.0),
            ))  # fmt: skip
        return rows

    def strategy_numbers(self) -> list[dict[str, Any]]:
        """PnL and weight of each strategy, as in the status' ``per_strategy`` rows.

        Only reads plain numbers (no tracker metrics, which take views of the tracker's
        buffers and would stop the core from growing them), so another thread may call it.
        """
        engine = self._engine()
        capital, weights = self.settings.capital, dict(engine.composer.weights)
        return [
            {"strategy": name, "pnl": portfolio.equity - capital, "weight": weights.get(name, 1.0)}
            for name, portfolio, _ in self._books(engine)
        ]

    def drawdown(self) -> float:
        """How far equity is below its peak, as a fraction in [0, 1] (the risk manager's peak,
        the one its drawdown kill switch measures from); 0 before any equity was seen."""
        engine = self._engine()
        peak, equity = engine.risk.peak_equity, engine.portfolio.equity
        if not (peak > 0.0 and math.isfinite(peak) and math.isfinite(equity)):
            return 0.0
        return min(1.0, max(0.0, (peak - equity) / peak))

    @staticmethod
    def _books(engine: TradingEngine) -> list[tuple[str, Portfolio, PerformanceTracker]]:
        """Each running strategy's own book (the engine's ledger when it runs alone)."""
        # list() copies the dict in one step, so a scrape on another thread never iterates it
        # while the core's thread changes it.
        books = dict(list(engine.books.items()))
        running = [d.name for d in engine.applicator.deployments]
        return [(n, books[n].portfolio, books[n].tracker) for n in running if n in books]

    @staticmethod
    def _timing(recorder: LatencyRecorder, bounds_s: tuple[float, ...], kind: type[T]) -> T:
        summary = {**recorder.summary(), "histogram": cumulative_histogram(recorder, bounds_s)}
        return msgspec.convert(summary, kind)

    def _publish_status(self) -> None:
        # Refreshed every tactical cycle: if Redis is away, the next one will do.
        with contextlib.suppress(*self._transient):
            self.board.save_report(f"status:{self.settings.name}", self.status())

    def _engine(self) -> TradingEngine:
        if self.engine is None:
            raise RuntimeError("CoreService.start() was not called")
        return self.engine


def _unchanged_states(
    trial: StrategyApplicator, previous: StrategyApplicator
) -> dict[str, dict[str, Any]]:
    """States of the trial set's instances whose model the previous set runs unchanged (same
    name, type and config) and that did not raise: what the previous set should continue from."""
    before = {d.name: (d.type_name, d.config) for d in previous.deployments}
    same = {d.name for d in trial.deployments if before.get(d.name) == (d.type_name, d.config)}
    raised = {e.model for e in trial.errors}
    return {key: state for key, state in trial.states().items() if key.model in same - raised}


def _versions(deployments: list[StrategyDeployment]) -> set[tuple[str, str]]:
    return {(d.name, d.version) for d in deployments}


def _signals_by_strategy(result: dict[str, Any]) -> dict[str, int]:
    return {row["strategy"]: row["signals"] for row in result["per_strategy"]}
