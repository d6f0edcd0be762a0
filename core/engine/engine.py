"""The trading engine: one code path for backtest and live, differing only in clock and sinks.

Every strategy type runs here. Per event: the venue (:mod:`core.engine.venue`) fills what the
event reaches and the ledger is marked (a bar's open fills the orders decided at the last
close, a quote the taker orders that have arrived, a print the resting quotes, a funding
settlement pays the carry), then the active set runs, the composer turns its signals into
targets, and the orders that move the positions there are placed (an order of a carry or cycle
instrument is filled at once). Outputs are buffered and flushed in batches, so no I/O happens
per event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol

from core.config import FrozenConfig, require
from core.engine.account import AT_DECISION, Account
from core.engine.analyzers import FillAnalyzer
from core.engine.applicator import Routed, StrategyApplicator
from core.engine.books import StrategyBook
from core.engine.clock import SimulatedClock
from core.engine.composer import StrategyComposer
from core.engine.makers import RestingQuotes
from core.engine.tracker import PerformanceTracker
from core.engine.venue import Venue
from core.model import Bar, Fill, FundingRate, Order, Quote, Signal, Trade
from core.ports import SignalSink, StateStore, StrategyDeployment
from core.risk import RiskLimits, RiskManager
from core.risk.manager import FLATTEN_STRATEGY
from core.strategies.base import Execution
from core.strategies.batch import BatchMode

ENGINE_STATE_KEY = "engine"
COMPOSER = "composer"
"""``Order.strategy`` of the orders placed when weights or the active set change."""
SHADOW_STATE_KEY = "shadow"


class Shadow(Protocol):
    """Something that sees every event but never trades (``core.online.OnlineGenerator``)."""

    def prepare(self, events: Sequence[Any]) -> None: ...

    def on_event(self, event: Any) -> None: ...

    def finish(self) -> None: ...

    def report(self) -> dict[str, Any]: ...

    def to_state(self) -> dict[str, Any]: ...

    def restore(self, state: dict[str, Any]) -> None: ...


class PositionSizing(FrozenConfig, frozen=True, kw_only=True):
    """How a strategy's target (+1 = fully long) becomes a quantity.

    ``units``: a fixed number of units per +1 (the backtest contract uses 1). ``notional``:
    that much money per +1, at the instance's first leg's last price when the signal fires;
    a pair's legs are scaled by the same factor so the hedge ratio is kept.
    """

    units: float = 1.0
    notional: float | None = None

    def __post_init__(self) -> None:
        require(
            self.units > 0 and (self.notional is None or self.notional > 0),
            f"sizing must be positive, was units={self.units} notional={self.notional}",
        )

    def factor(self, price: float) -> float:
        if self.notional is None:
            return self.units
        return self.notional / price if price > 0 else 0.0


@dataclass
class _Outbox:
    signals: list[Signal] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.signals) + len(self.orders) + len(self.fills)


class TradingEngine:
    """Drive the active strategy set over a stream of bars."""

    def __init__(
        self,
        deployments: list[StrategyDeployment],
        *,
        venue: Venue | None = None,
        initial_capital: float = 1.0,
        sink: SignalSink | None = None,
        state_store: StateStore | None = None,
        clock: SimulatedClock | None = None,
        sizing: PositionSizing | None = None,
        risk: RiskManager | None = None,
        flush_every: int = 2048,
        keep_history: bool = False,
        shadow: Shadow | None = None,
        batch_forms: BatchMode = "auto",
        equity_window: int | None = None,
        analyzer: FillAnalyzer | None = None,
    ) -> None:
        self.batch_forms: BatchMode = batch_forms
        self.applicator = StrategyApplicator(deployments, batch_forms=batch_forms)
        self.composer = StrategyComposer({d.name: d.weight for d in deployments})
        # Without a venue: next-open bar fills, no taker or maker fills (quotes are marked).
        self.venue = venue or Venue()
        self.account = Account(self.venue, initial_capital)
        self.broker = self.account.broker
        self.portfolio = self.account.portfolio
        # A long-running core keeps a window of equity samples; a backtest keeps them all.
        self.tracker = PerformanceTracker(initial_capital, equity_window)
        self.clock = clock or SimulatedClock()
        self.sizing = sizing or PositionSizing()
        self.makers = RestingQuotes(self.venue.maker) if self.venue.maker is not None else None
        self._capital = initial_capital
        self._equity_window = equity_window
        self.books: dict[str, StrategyBook] = {}
        self._separate: list[StrategyBook] = []
        self._sync_books(deployments)
        self.risk = risk or RiskManager(RiskLimits())
        if self.risk.price_band is not None:  # fat-finger check at execution
            self.broker.fill_guard = self.risk.check_fill_price
        self._sink = sink
        self._state_store = state_store
        self._flush_every = flush_every
        self._outbox = _Outbox()
        self._outbox_size = 0  # len(self._outbox), kept as a count so no event has to sum it
        # History is for backtests and tests; a long-running core keeps only the outbox.
        self._keep_history = keep_history
        self.all_signals: list[Signal] = []
        self.all_fills: list[Fill] = []
        # Shadow variants see each event after the live set has acted on it; they own no order.
        self.shadow = shadow
        # Watches events, orders and fills for markouts and stale fills (backtests).
        self.analyzer = analyzer

    def on_event(self, event: Any) -> list[Routed]:
        """Process one market or context event; return the signals it caused (with the legs
        and instance of each), in the order they were acted on."""
        # The hot path: attributes read once into locals, and the separate books and the
        # outbox size test skipped when there is nothing to do.
        ts = event.ts_event
        self.clock.advance_to(ts)
        tracker = self.tracker
        tracker.count_event()
        account = self.account
        separate = self._separate
        # An order's latency counts from the local receive time of the event that decided it.
        self.broker.local_ns = getattr(event, "ts_recv", 0) or ts
        if self.analyzer is not None:
            self.analyzer.observe(event)
        if isinstance(event, Bar):
            if separate:
                for book in separate:
                    book.on_market(event)
            fill = account.on_bar(event)
            if fill is not None:
                self._record_fill(fill)
        elif isinstance(event, Quote):
            if separate:
                for book in separate:
                    book.on_market(event)
            for fill in account.on_quote(event):
                self._record_fill(fill)
        elif isinstance(event, Trade):
            if self.makers is not None:
                self._on_print(event)
        elif isinstance(event, FundingRate):
            if separate:
                for book in separate:
                    book.on_market(event)
            account.on_funding(event)
        routed = self.applicator.on_event(event)
        if routed:
            for one in routed:
                self._act_on(one)
        portfolio = account.portfolio
        equity = portfolio.equity
        flatten = self.risk.on_equity(equity, ts, portfolio.quantities)
        if flatten:
            for order in flatten:
                self._place(order.symbol, -portfolio.quantity(order.symbol), ts, FLATTEN_STRATEGY)
        tracker.on_equity(ts, equity, portfolio.gross_exposure)
        if separate:
            for book in separate:
                book.on_time(ts)
        if self.shadow is not None:
            self.shadow.on_event(event)
        if self._outbox_size >= self._flush_every:
            self.flush()
        return routed

    def _on_print(self, trade: Trade) -> None:
        """Fill the resting quotes this print reaches; a maker's own book takes its fills."""
        assert self.makers is not None
        for fill in self.makers.on_trade(trade, self.tracker.events):
            self.portfolio.apply_fill(fill)
            self._record_fill(fill)
            own = self.books.get(fill.strategy)
            if own is not None and own.separate:  # its PnL is its fills' alone
                own.on_own_fill(fill)

    def _sync_books(self, deployments: list[StrategyDeployment]) -> None:
        """Give every model of the set a book. A model alone is the engine's own account;
        once the set has several, each has its own, and a book that was the engine's goes on
        from a copy of the ledger at that moment."""
        names = sorted({d.name for d in deployments})
        if len(names) == 1 and not self.books:
            name = names[0]
            shared = (self.account, self.tracker)
            self.books = {name: StrategyBook(name, self.venue, self._capital, shared=shared)}
        else:
            for name in names:
                book = self.books.get(name)
                if book is None or not book.separate:
                    self.books[name] = self._separate_book(name, book)
        self._separate = [book for book in self.books.values() if book.separate]

    def _separate_book(self, name: str, shared: StrategyBook | None) -> StrategyBook:
        book = StrategyBook(name, self.venue, self._capital, self._equity_window)
        if shared is not None:  # it was the whole account until now: it starts from it
            book.account.portfolio.restore(self.portfolio.to_state())
            book.account.broker.restore_pending_state(self.broker.pending_state())
            book.account.broker.restore_book_state(self.broker.book_state())
            for instrument, style in self.account.at_decision.items():
                book.account.register(instrument, style)
            book.composer.restore(self.composer.to_state())
        return book

    def prepare(self, events: Sequence[Any]) -> None:
        """Let the batch forms take ``events`` at once; feed them to :meth:`on_event` next.

        Only strategy updates run ahead (they depend on nothing but their own events); fills,
        marks, orders and risk still happen event by event, so the results are those of
        feeding the events one at a time.
        """
        self.applicator.prepare(events)
        if self.shadow is not None:
            self.shadow.prepare(events)

    def on_batch(self, events: Sequence[Any]) -> None:
        """:meth:`prepare` then :meth:`on_event` for each event."""
        self.prepare(events)
        on_event = self.on_event
        for event in events:
            on_event(event)

    def run(self, events: Iterable[Any], batch_size: int = 1024) -> dict[str, Any]:
        iterator = iter(events)
        while batch := list(islice(iterator, batch_size)):
            self.on_batch(batch)
        self.finish()
        return self.summary()

    def finish(self) -> None:
        """Close the equity curve, flush outputs and snapshot state and positions."""
        self.tracker.close()
        if self.shadow is not None:
            self.shadow.finish()
        self.checkpoint()

    def checkpoint(self) -> None:
        """Flush outputs, then save positions, every strategy's state and the engine's own.

        Outputs go first: the snapshot counts the fills it has applied, so a restart rebuilds
        the ledger from exactly that prefix of the (append-only, deduplicated) fills stream.
        """
        self.flush()
        if self._sink is not None:
            self._sink.save_positions(self.portfolio.positions())
        if self._state_store is None:
            return
        states = self.applicator.states()
        for key, state in states.items():
            self._state_store.save_state(key, state)
        if self.shadow is not None:
            self._state_store.save_state(SHADOW_STATE_KEY, self.shadow.to_state())
        self._state_store.save_state(ENGINE_STATE_KEY, self.snapshot(list(states)))

    def swap_deployments(
        self, deployments: list[StrategyDeployment], *, settle: bool = True
    ) -> StrategyApplicator:
        """Run ``deployments`` from the next event on; return the applicator they replace.

        An instance of a model whose type and config are unchanged carries its state over (a
        new version with the same parameters does not re-warm); any other starts fresh.
        Pending orders and the ledger stay. With ``settle`` the composition follows at once
        (:meth:`settle`); a caller that may still :meth:`revert` settles once it keeps the set.
        """
        old = self.applicator
        new = StrategyApplicator(deployments, batch_forms=self.batch_forms)
        before = {d.name: d for d in old.deployments}
        carried = {
            key: state
            for key, state in old.states().items()
            if _compatible(before.get(key.model), deployments)
        }
        new.restore(carried)
        self.applicator = new
        self._sync_books(deployments)
        if settle:
            self.settle()
        return old

    def revert(self, applicator: StrategyApplicator) -> None:
        """Go back to a previous applicator (a new set that failed its first cycle, unsettled)."""
        self.applicator = applicator

    def settle(self) -> dict[str, float]:
        """Compose for the running set: models that left it give up their positions, weights
        become the set's, and the targets that moves are traded to now. Returns them."""
        deployments = self.applicator.deployments
        targets = self.composer.retain(d.name for d in deployments)
        targets.update(self.composer.set_weights({d.name: d.weight for d in deployments}))
        self._trade_to(targets)
        return targets

    def halt(self, reason: str, *, flatten: bool = False) -> None:
        """Stop every order that opens or increases a position; with ``flatten``, also close
        every position now (the orders go out with the next flush)."""
        self.risk.halt(reason)
        if flatten:
            ts, quantities = self.clock.now_ns(), self.portfolio.quantities
            for symbol in sorted(quantities):
                if quantities[symbol] != 0.0:
                    self._place(symbol, -quantities[symbol], ts, FLATTEN_STRATEGY)

    def resume(self) -> None:
        """Trade normally again after :meth:`halt` (or a tripped kill switch)."""
        self.risk.resume()

    def set_weights(self, weights: dict[str, float]) -> dict[str, float]:
        """Weigh the strategies anew now: every target they change is recomposed and the
        orders that move the positions there are placed. Returns the changed targets."""
        targets = self.composer.set_weights(weights)
        self._trade_to(targets)
        return targets

    def _trade_to(self, targets: dict[str, float]) -> None:
        ts, portfolio = self.clock.now_ns(), self.portfolio
        at_decision = self.account.at_decision
        for symbol, target in targets.items():
            if at_decision.get(symbol) is Execution.CYCLE:
                continue  # a cycle is an act, not a holding: a new weight runs none again
            self._place(symbol, target - portfolio.quantity(symbol), ts, COMPOSER)

    def snapshot(self, instance_keys: list[str]) -> dict[str, Any]:
        """The engine's own state besides strategies and fills (JSON-safe)."""
        return {
            "ts": self.clock.now_ns(),
            "events": self.tracker.events,
            "signals": self.tracker.signals,
            "fills_applied": self.tracker.fills,
            "instances": instance_keys,
            "composer": self.composer.to_state(),
            "risk": self.risk.to_state(),
            "pending": self.broker.pending_state(),
            "book": self.broker.book_state(),
            "at_decision": {k: v.value for k, v in self.account.at_decision.items()},
            "order_sequence": self.broker.sequence,
            "portfolio": self.portfolio.to_state(),
            "makers": self.makers.inventories() if self.makers is not None else {},
        }

    def restore(
        self, state_store: StateStore, fills: Sequence[Fill] | Callable[[], Sequence[Fill]]
    ) -> bool:
        """Continue where a checkpoint left off: strategies, composer, risk, pending orders,
        and the ledger. False if none saved.

        The ledger comes from the snapshot itself; ``fills`` (or a function that reads them)
        is read only for a snapshot written before the ledger was part of it, which is
        rebuilt from its first ``fills_applied`` fills.
        """
        snapshot = state_store.load_state(ENGINE_STATE_KEY)
        if snapshot is None:
            return False
        states = {key: state_store.load_state(key) for key in snapshot["instances"]}
        self.applicator.restore({k: s for k, s in states.items() if s is not None})
        self.composer.restore(snapshot["composer"])
        self.risk.restore(snapshot["risk"])
        self.broker.restore_pending_state(snapshot["pending"])
        self.broker.restore_book_state(snapshot.get("book", {}))  # older snapshots: none
        for instrument, style in snapshot.get("at_decision", {}).items():
            self.account.register(str(instrument), Execution(style))
        # Older snapshots kept per-symbol ids of another form, which these never repeat.
        self.broker.sequence = int(snapshot.get("order_sequence", 0))
        if self.makers is not None:
            self.makers.restore_inventories(snapshot.get("makers", {}))
        if "portfolio" in snapshot:
            self.portfolio.restore(snapshot["portfolio"])
        else:
            history = fills() if callable(fills) else fills
            for fill in history[: snapshot["fills_applied"]]:
                self.portfolio.apply_fill(fill)
        self.clock.advance_to(snapshot["ts"])
        self.tracker.restore_counts(
            snapshot["events"], snapshot["signals"], snapshot["fills_applied"]
        )
        if self.shadow is not None:
            shadow_state = state_store.load_state(SHADOW_STATE_KEY)
            if shadow_state is not None:
                self.shadow.restore(shadow_state)
        # Models that left the set while the core was down give up their positions now.
        self._trade_to(self.composer.retain(d.name for d in self.applicator.deployments))
        return True

    def flush(self) -> None:
        box, self._outbox = self._outbox, _Outbox()
        self._outbox_size = 0
        if self._sink is None:
            return
        if box.signals:
            self._sink.publish_signals(box.signals)
        if box.orders:
            self._sink.record_orders(box.orders)
        if box.fills:
            self._sink.record_fills(box.fills)

    def summary(self) -> dict[str, Any]:
        capital = self.tracker.initial_capital
        totals = {
            "signals": self.tracker.signals,
            "fills": self.tracker.fills,
            "hit_rate": self.portfolio.hit_rate,
            **self.tracker.metrics(self.portfolio.traded_notional),
        }
        # PnL from the ledger, not the equity samples: a core restarted after its feed ended
        # has none, and still has its PnL.
        totals["pnl"] = self.portfolio.equity - capital
        totals["total_return"] = totals["pnl"] / capital if capital > 0 else 0.0
        per_strategy = [book.summary() for book in self.books.values()]
        shadow = {"shadow": self.shadow.report()} if self.shadow is not None else {}
        return {
            "events": self.tracker.events,
            **totals,
            "strategy_errors": [str(e) for e in self.applicator.errors],
            "risk": self.risk.stats(),
            "per_symbol": self.portfolio.per_symbol(),
            "per_strategy": per_strategy,
            **shadow,
        }

    def _act_on(self, routed: Routed) -> None:
        signal = routed.signal
        self.tracker.count_signal()
        self._outbox.signals.append(signal)
        self._outbox_size += 1
        if self._keep_history:
            self.all_signals.append(signal)
        instance = routed.strategy  # None for a batch form's row: a bar type
        execution = instance.spec.execution if instance is not None else Execution.NEXT_OPEN
        book = self.books.get(signal.strategy)
        own = book if book is not None and book.separate else None
        if execution is Execution.MAKER:
            # A market maker states quotes (or pulls them), not a position: quotes rest until
            # prints fill them; without a maker fill model they are only recorded.
            if self.makers is not None:
                self.makers.place(routed.instance_key, instance, signal)
            if own is not None:
                own.on_signal()
            return
        if execution in AT_DECISION:
            for symbol in routed.legs:
                self.account.register(symbol, execution)
                if own is not None:
                    own.account.register(symbol, execution)
        sizing, portfolio = self.sizing, self.portfolio
        if sizing.notional is None:  # fixed units: the factor needs no price
            factor = sizing.units
        else:
            first_leg = next(iter(routed.legs), signal.symbol)
            factor = sizing.factor(portfolio.last_price(first_leg))
        sized = {symbol: position * factor for symbol, position in routed.legs.items()}
        ts, strategy = signal.ts_event, signal.strategy
        if own is not None:
            own.on_legs(routed.instance_key, sized, ts)
        targets = self.composer.on_legs(strategy, routed.instance_key, sized)
        for symbol, target in targets.items():
            self._place(symbol, target - portfolio.quantity(symbol), ts, strategy)

    def _place(self, symbol: str, delta: float, ts_event: int, strategy: str) -> None:
        """Queue the order that moves ``symbol`` by ``delta``, if the risk manager accepts it."""
        portfolio = self.portfolio
        price = portfolio.last_price(symbol)
        order = self.broker.submit(symbol, delta, ts_event, strategy, price)
        if order is None:
            return
        decision = self.risk.check(
            order,
            price=price,
            position=portfolio.quantity(symbol),
            gross_exposure=portfolio.gross_exposure,
            equity=portfolio.equity,
            ts_ns=ts_event,
            net_exposure=portfolio.net_exposure,
        )
        if decision.accepted:
            self._outbox.orders.append(order)
            self._outbox_size += 1
            if self.analyzer is not None:
                self.analyzer.on_order(order)
            if symbol in self.account.at_decision:  # carry and cycles fill as decided
                for fill in self.account.execute(order):
                    self._record_fill(fill)
        else:
            self.broker.submit(symbol, 0.0, ts_event, strategy)  # cancel: the position stays

    def _record_fill(self, fill: Fill) -> None:
        self.tracker.count_fills()
        if self.analyzer is not None:
            self.analyzer.on_fill(fill)
        self._outbox.fills.append(fill)
        self._outbox_size += 1
        if self._keep_history:
            self.all_fills.append(fill)


def _compatible(old: StrategyDeployment | None, new: list[StrategyDeployment]) -> bool:
    """Whether ``old``'s instances may hand their state to the new set's same-named model."""
    if old is None:
        return False
    return any(
        d.name == old.name and d.type_name == old.type_name and d.config == old.config for d in new
    )
