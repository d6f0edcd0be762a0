"""Pre-trade risk limits: a frozen, validated config that serializes to JSON.

``None`` means "no limit" for every optional limit, so the bare :class:`RiskLimits` accepts any
well-formed order (research backtests). A core that places orders never runs with it: it runs
:meth:`RiskLimits.conservative` for its capital and sizing, overridden field by field by a risk
file and command-line flags (``strategy-engine core --risk-file``), and records them.
"""

from __future__ import annotations

import math

import msgspec

from core.config import FrozenConfig
from core.errors import ConfigError


def _positive(name: str, value: float | None) -> None:
    # ``not value > 0`` also catches NaN, which compares false to everything.
    if value is not None and not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{name} must be a finite number > 0, was {value}")


def _non_negative(name: str, value: float | None) -> None:
    if value is not None and not (value >= 0 and math.isfinite(value)):
        raise ConfigError(f"{name} must be a finite number >= 0, was {value}")


class RiskLimits(FrozenConfig, frozen=True, kw_only=True):
    """What the pre-trade risk manager allows.

    Attributes
    ----------
    max_position
        Largest absolute position per symbol, in units of the instrument (shares, coins).
    position_overrides
        Per-symbol ``max_position`` replacing the default for that symbol (0 = never open it).
    max_gross_exposure
        Largest sum over symbols of ``|position| * price`` (notional, in account currency).
    max_order_quantity
        Largest quantity of one order.
    max_order_notional
        Largest ``quantity * price`` of one order.
    max_orders_per_second
        Largest number of accepted orders within any sliding one-second window of event time.
    max_drawdown
        Kill switch: the fall of equity from its peak, as a fraction in (0, 1), past which the
        manager halts and the positions are flattened.
    allowed_symbols
        Symbols that may be traded; empty means any symbol.
    max_net_exposure
        Largest ``|sum over symbols of position * price|`` (notional, account currency).
    max_daily_loss
        Kill switch: the fall of equity from its value at the first event of the (UTC, event
        time) day, as a fraction in (0, 1), past which the manager halts and flattens.
    price_band
        Fat-finger check at execution: an order fills only at a price within this fraction of
        the price it was decided at (0.5: between half and one and a half times); otherwise it
        is cancelled and the rejection recorded. A bad print cannot buy a position.
    """

    max_position: float | None = None
    position_overrides: dict[str, float] = msgspec.field(default_factory=dict)
    max_gross_exposure: float | None = None
    max_order_quantity: float | None = None
    max_order_notional: float | None = None
    max_orders_per_second: int | None = None
    max_drawdown: float | None = None
    allowed_symbols: tuple[str, ...] = ()
    max_net_exposure: float | None = None
    max_daily_loss: float | None = None
    price_band: float | None = None

    @classmethod
    def conservative(cls, *, capital: float, notional: float) -> RiskLimits:
        """The limits a core applies unless told otherwise, scaled to its account.

        One order at most ten signals' notional; gross exposure at most three times the
        capital, net at most twice; at most 1,000 orders per second of event time (a day's bars
        of a whole universe share one timestamp); halt and flatten at a 20% drawdown or a 10%
        loss within a day; fills only within 50% of the decision price.
        """
        _positive("capital", capital)
        _positive("notional", notional)
        return cls(
            max_order_notional=10.0 * notional,
            max_gross_exposure=3.0 * capital,
            max_net_exposure=2.0 * capital,
            max_orders_per_second=1000,
            max_drawdown=0.2,
            max_daily_loss=0.1,
            price_band=0.5,
        )

    def __post_init__(self) -> None:
        _non_negative("max_position", self.max_position)
        for symbol, limit in self.position_overrides.items():
            _non_negative(f"position_overrides[{symbol!r}]", limit)
        _positive("max_gross_exposure", self.max_gross_exposure)
        _positive("max_order_quantity", self.max_order_quantity)
        _positive("max_order_notional", self.max_order_notional)
        rate = self.max_orders_per_second
        if rate is not None and not 1 <= rate <= 1_000_000:
            raise ConfigError(f"max_orders_per_second must be within [1, 1000000], was {rate}")
        if self.max_drawdown is not None and not 0.0 < self.max_drawdown < 1.0:
            raise ConfigError(f"max_drawdown must be within (0, 1), was {self.max_drawdown}")
        _positive("max_net_exposure", self.max_net_exposure)
        if self.max_daily_loss is not None and not 0.0 < self.max_daily_loss < 1.0:
            raise ConfigError(f"max_daily_loss must be within (0, 1), was {self.max_daily_loss}")
        if self.price_band is not None and not 0.0 < self.price_band < 1.0:
            raise ConfigError(f"price_band must be within (0, 1), was {self.price_band}")
        self._check_symbols()

    def _check_symbols(self) -> None:
        for symbol in self.allowed_symbols:
            if not symbol or symbol != symbol.strip():
                raise ConfigError(f"allowed_symbols holds an invalid symbol {symbol!r}")
        allowed = set(self.allowed_symbols)
        for symbol in self.position_overrides:
            if not symbol:
                raise ConfigError("position_overrides holds an empty symbol ''")
            if allowed and symbol not in allowed:
                raise ConfigError(f"position_overrides names {symbol!r}, not in allowed_symbols")

    def position_limit(self, symbol: str) -> float:
        """Return the largest absolute position allowed in ``symbol`` (``inf`` when unlimited)."""
        limit = self.position_overrides.get(symbol, self.max_position)
        return math.inf if limit is None else limit
