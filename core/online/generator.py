"""Online Generator: parameter variants of a live strategy run in shadow, weighed by Hedge.

K variants of one live bar strategy (the live config is variant 0) receive the same events as
the live strategy and keep paper books with the engine's fill convention (decided at a bar's
close, filled at the symbol's next open with the same fee and slippage, sized the same way),
but never send an order anywhere. At every new timestamp each variant's log return over the
period is fed to :class:`core.online.bandit.HedgeWeights`. Choices (leader, weights, evidence)
are recorded as JSON-safe records in a bounded list with counters; a variant that beats the
live config by ``margin`` (log return) after ``min_periods`` periods is *proposed*. Accepting
it is the composer's decision: :meth:`OnlineGenerator.accept` returns the config to deploy and
records the acceptance, and nothing here switches the live strategy.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.engine.account import Account
from core.engine.applicator import StrategyApplicator
from core.engine.composer import StrategyComposer
from core.engine.engine import PositionSizing
from core.engine.execution import BarFillModel
from core.engine.venue import Venue
from core.errors import ConfigError
from core.model import Bar
from core.online.bandit import HedgeWeights
from core.online.variants import MAX_VARIANTS
from core.ports import StrategyDeployment
from core.strategies.base import EVENT_KINDS
from core.strategies.catalogue import strategy_type


class ShadowBooks:
    """K paper accounts at the engine's bar venue, one per variant: the engine's own broker and
    ledger (:class:`core.engine.account.Account`), so a variant fills and is marked exactly as
    the engine would fill and mark it."""

    def __init__(self, k: int, fill_model: BarFillModel, capital: float) -> None:
        self.k = k
        self.fill_model = fill_model
        self.capital = capital
        venue = Venue(bars=fill_model)
        self.accounts = [Account(venue, capital) for _ in range(k)]
        self._fills = [0] * k

    @property
    def fills(self) -> np.ndarray:
        """Fills per variant."""
        return np.asarray(self._fills, dtype=np.int64)

    def on_bar(self, bar: Bar) -> None:
        """Fill each variant's order waiting for this open, then mark the close."""
        for k, account in enumerate(self.accounts):
            if account.on_bar(bar) is not None:
                self._fills[k] += 1

    def submit(self, k: int, symbol: str, target: float, ts_event: int, name: str) -> None:
        """Replace variant ``k``'s pending order on ``symbol`` by one reaching ``target``."""
        account = self.accounts[k]
        account.broker.submit(symbol, target - account.portfolio.quantity(symbol), ts_event, name)

    def equity(self) -> np.ndarray:
        return np.fromiter((a.portfolio.equity for a in self.accounts), np.float64, self.k)

    def last_price(self, symbol: str) -> float:
        return self.accounts[0].portfolio.last_price(symbol)

    def to_state(self) -> dict[str, Any]:
        return {
            "accounts": [
                {
                    "portfolio": a.portfolio.to_state(),
                    "pending": a.broker.pending_state(),
                    "sequence": a.broker.sequence,
                }
                for a in self.accounts
            ],
            "fills": list(self._fills),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Take back :meth:`to_state` (or the arrays an older version kept: cash, quantity and
        pending order per variant and symbol, one last price per symbol)."""
        self.__init__(self.k, self.fill_model, self.capital)  # type: ignore[misc]
        self._fills = [int(n) for n in state["fills"]]
        if "accounts" not in state:
            self._restore_arrays(state)
            return
        for account, saved in zip(self.accounts, state["accounts"], strict=True):
            account.portfolio.restore(saved["portfolio"])
            account.broker.restore_pending_state(saved["pending"])
            account.broker.sequence = int(saved["sequence"])

    def _restore_arrays(self, state: dict[str, Any]) -> None:
        symbols, last = list(state["symbols"]), [float(p) for p in state["last"]]
        for k, account in enumerate(self.accounts):
            held = [float(q) for q in state["qty"][k]]
            account.portfolio.restore({
                "cash": float(state["cash"][k]),
                "market_value": math.fsum(q * p for q, p in zip(held, last, strict=True)),
                "gross": math.fsum(abs(q) * p for q, p in zip(held, last, strict=True)),
                "traded_notional": 0.0, "closed_trades": 0, "winning_trades": 0,
                "holdings": {s: [q, p, 0.0, 0.0, p, int(q != 0.0), 0]
                             for s, q, p in zip(symbols, held, last, strict=True)},
            })  # fmt: skip
            for symbol, delta in zip(symbols, state["pending"][k], strict=True):
                if delta:
                    account.broker.submit(symbol, float(delta), 0, f"variant-{k}")


class OnlineGenerator:
    """Shadow K variants of one live bar strategy and weigh them by realized returns.

    Parameters
    ----------
    live : StrategyDeployment
        The live strategy (its name, type, config and symbols).
    configs : list of dict
        The variants' configs, the live config first (see :func:`core.online.variant_configs`).
    fill_model, capital, sizing
        The paper books' fill convention, starting cash and sizing (use the engine's).
    eta, decay
        Hedge's learning rate and per-period forgetting (see :class:`HedgeWeights`).
    margin : float
        Log-return lead over the live config a variant needs to be proposed.
    min_periods : int
        Periods of evidence before any proposal.
    record_every : int
        A weights snapshot is recorded every this many periods (besides leader changes).
    max_records : int
        Bound of the records list (oldest dropped first; the counters keep counting).
    """

    def __init__(
        self,
        live: StrategyDeployment,
        configs: list[dict[str, Any]],
        *,
        fill_model: BarFillModel | None = None,
        capital: float = 1.0,
        sizing: PositionSizing | None = None,
        eta: float = 20.0,
        decay: float = 1.0,
        margin: float = 0.05,
        min_periods: int = 60,
        record_every: int = 20,
        max_records: int = 500,
    ) -> None:
        kind = strategy_type(live.type_name).spec.data_kind
        if "bar" not in EVENT_KINDS[kind]:
            raise ConfigError(f"online variants need a bar strategy, {live.type_name} reads {kind}")
        if not 2 <= len(configs) <= MAX_VARIANTS:
            raise ConfigError(f"variants must number 2 to {MAX_VARIANTS}, were {len(configs)}")
        if min_periods < 1 or record_every < 1 or max_records < 1 or margin < 0:
            raise ConfigError(
                f"min_periods, record_every, max_records must be >= 1 and margin >= 0, were "
                f"{min_periods}, {record_every}, {max_records}, {margin}"
            )
        self.live = live
        self.configs = [dict(c) for c in configs]
        self.names = [f"{live.name}~v{k}" for k in range(len(configs))]
        self._index = {name: k for k, name in enumerate(self.names)}
        self.sizing = sizing or PositionSizing()
        self.margin = margin
        self.min_periods = min_periods
        self.record_every = record_every
        self.bandit = HedgeWeights(len(configs), eta=eta, decay=decay)
        self.books = ShadowBooks(len(configs), fill_model or BarFillModel(), capital)
        self.applicator = StrategyApplicator(
            [
                StrategyDeployment(
                    name=n,
                    version=f"shadow-{k}",
                    type_name=live.type_name,
                    config=c,
                    alias="shadow",
                    symbols=live.symbols,
                )
                for k, (n, c) in enumerate(zip(self.names, self.configs, strict=True))
            ]
        )
        self._composers = [StrategyComposer() for _ in configs]
        self._ts: int | None = None
        self._equity = np.full(len(configs), capital)
        self.records: deque[dict[str, Any]] = deque(maxlen=max_records)
        self.counters = {
            "events": 0,
            "signals": 0,
            "periods": 0,
            "leader_changes": 0,
            "proposals": 0,
            "accepted": 0,
            "records": 0,
        }
        self._leader = 0
        self._proposed: int | None = None

    # -- the per-event path -------------------------------------------------------------------

    def prepare(self, events: Sequence[Any]) -> None:
        """Let the variants' batch forms take ``events`` at once (fed next, in order)."""
        self.applicator.prepare(events)

    def on_event(self, event: Any) -> None:
        """Feed one event to every variant; O(K) (plus one O(K x symbols) sum per period)."""
        ts = event.ts_event
        if ts != self._ts:
            if self._ts is not None:
                self._close_period(self._ts)
            self._ts = ts
        self.counters["events"] += 1
        if isinstance(event, Bar):
            self.books.on_bar(event)
        for routed in self.applicator.on_event(event):
            self._on_signal(
                routed.signal.strategy, routed.instance_key, routed.legs, routed.signal.ts_event
            )

    def finish(self) -> None:
        """Close the last period (a replay's end); a live core never calls it."""
        if self._ts is not None:
            self._close_period(self._ts)
            self._ts = None

    def _on_signal(self, name: str, key: str, legs: dict[str, float], ts: int) -> None:
        k = self._index[name]
        self.counters["signals"] += 1
        factor = self.sizing.factor(self.books.last_price(next(iter(legs))))
        sized = {symbol: position * factor for symbol, position in legs.items()}
        for symbol, target in self._composers[k].on_legs(name, key, sized).items():
            self.books.submit(k, symbol, target, ts, name)

    def _close_period(self, ts: int) -> None:
        equity = self.books.equity()
        # A book at or below zero has no log return; count it as a total loss for the period.
        with np.errstate(divide="ignore", invalid="ignore"):
            rewards = np.where(
                (equity > 0) & (self._equity > 0), np.log(equity / self._equity), -math.inf
            )
        self._equity = equity
        self.bandit.update(np.maximum(rewards, -50.0))  # bounded: exp stays finite
        self.counters["periods"] += 1
        leader = self.bandit.leader()
        if leader != self._leader:
            self.counters["leader_changes"] += 1
            self._record("leader", ts, previous=self._leader)
            self._leader = leader
        elif self.bandit.periods % self.record_every == 0:
            self._record("weights", ts)
        self._check_proposal(ts)

    def _check_proposal(self, ts: int) -> None:
        if self.bandit.periods < self.min_periods:
            return
        total = self.bandit.total
        best = int(np.argmax(total))
        if best == 0 or total[best] - total[0] < self.margin:
            self._proposed = None
            return
        if best != self._proposed:
            self._proposed = best
            self.counters["proposals"] += 1
            self._record("proposal", ts, variant=best, edge=float(total[best] - total[0]))

    # -- decisions ----------------------------------------------------------------------------

    def proposal(self) -> dict[str, Any] | None:
        """The variant currently proposed to replace the live config, with its evidence."""
        if self._proposed is None:
            return None
        k = self._proposed
        total = self.bandit.total
        return {
            "strategy": self.live.name,
            "variant": k,
            "config": dict(self.configs[k]),
            "live_config": dict(self.configs[0]),
            "edge_log_return": float(total[k] - total[0]),
            "log_return": float(total[k]),
            "live_log_return": float(total[0]),
            "periods": self.bandit.periods,
            "weight": float(self.bandit.weights()[k]),
        }

    def accept(self, variant: int) -> dict[str, Any]:
        """Record that ``variant`` was accepted and return its config; nothing switches here.

        Raises
        ------
        ConfigError
            If ``variant`` is not one of this generator's variant indices.
        """
        if not 0 <= variant < len(self.configs):
            raise ConfigError(f"variant must be within [0, {len(self.configs) - 1}], was {variant}")
        self.counters["accepted"] += 1
        self._record("accepted", self._ts or 0, variant=variant)
        return dict(self.configs[variant])

    # -- reporting and state ------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """JSON-safe view for the core to publish: leader, weights, evidence, records."""
        return {
            "strategy": self.live.name,
            "type": self.live.type_name,
            "variants": [dict(c) for c in self.configs],
            "leader": self._leader,
            "weights": self.bandit.weights().tolist(),
            "log_returns": self.bandit.total.tolist(),
            "fills": self.books.fills.tolist(),
            "counters": dict(self.counters),
            "proposal": self.proposal(),
            "strategy_errors": [str(e) for e in self.applicator.errors],
            "records": list(self.records),
        }

    def to_state(self) -> dict[str, Any]:
        """JSON-safe state from which :meth:`restore` resumes exactly."""
        return {
            "configs": self.configs,
            "ts": self._ts,
            "equity": self._equity.tolist(),
            "leader": self._leader,
            "proposed": self._proposed,
            "counters": dict(self.counters),
            "records": list(self.records),
            "bandit": self.bandit.to_state(),
            "books": self.books.to_state(),
            "composers": [c.to_state() for c in self._composers],
            "strategies": self.applicator.states(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`to_state`; a state of other variants is refused.

        Raises
        ------
        ConfigError
            If the saved variants differ from this generator's.
        """
        if state["configs"] != self.configs:
            raise ConfigError(f"saved variants {state['configs']} differ from {self.configs}")
        self._ts = state["ts"]
        self._equity = np.asarray(state["equity"], dtype=float)
        self._leader = int(state["leader"])
        self._proposed = state["proposed"]
        self.counters = dict(state["counters"])
        self.records.clear()
        self.records.extend(state["records"])
        self.bandit.restore(state["bandit"])
        self.books.restore(state["books"])
        for composer, saved in zip(self._composers, state["composers"], strict=True):
            composer.restore(saved)
        self.applicator.restore(state["strategies"])

    def _record(self, what: str, ts: int, **evidence: Any) -> None:
        self.counters["records"] += 1
        self.records.append(
            {
                "what": what,
                "ts": ts,
                "period": self.bandit.periods,
                "leader": self.bandit.leader(),
                "weights": [round(w, 6) for w in self.bandit.weights().tolist()],
                "log_returns": [round(r, 6) for r in self.bandit.total.tolist()],
                **evidence,
            }
        )
