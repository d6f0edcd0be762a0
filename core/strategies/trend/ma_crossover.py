"""Moving-average crossover: long when the fast average is above the slow one."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from core.indicator_banks import ExponentialMeanBank, FloatArray, IntArray, RollingMeanBank
from core.indicators import ExponentialMean, RollingMean
from core.model import Bar, Lineage, Signal
from core.state import StrategyState
from core.strategies.base import (
    DataKind,
    Family,
    Strategy,
    StrategyConfig,
    StrategySpec,
    Tier,
    require,
)
from core.strategies.batch import BatchStrategy, batch_form
from core.strategies.catalogue import register


class MACrossoverConfig(StrategyConfig, frozen=True, kw_only=True):
    aliases: ClassVar[dict[str, str]] = {"fast": "fast_period", "slow": "slow_period"}

    fast_period: int = 10
    slow_period: int = 30
    ma_type: Literal["sma", "ema"] = "sma"
    allow_short: bool = False

    def __post_init__(self) -> None:
        require(self.fast_period >= 1, f"fast_period must be >= 1, was {self.fast_period}")
        require(
            self.fast_period < self.slow_period,
            f"fast_period must be < slow_period, was {self.fast_period} >= {self.slow_period}",
        )
        require(self.slow_period <= 10_000, f"slow_period must be <= 10000, was {self.slow_period}")


def _average(kind: str, period: int) -> RollingMean | ExponentialMean:
    return RollingMean(period) if kind == "sma" else ExponentialMean(period)


class _MACrossoverState(StrategyState):
    fast: dict[str, Any]  # the moving averages' own states
    slow: dict[str, Any]


@register
class MACrossover(Strategy[MACrossoverConfig]):
    """Target +1 when fast MA > slow MA, else 0 (or -1 when shorting is allowed)."""

    spec = StrategySpec(
        name="ma_crossover",
        family=Family.TREND_FOLLOWING,
        tier=Tier.TACTICAL,
        data_kind=DataKind.BARS,
        summary=(
            "Fast and slow moving average (SMA or EMA); long when fast > slow, "
            "short or flat otherwise."
        ),
        dataset="equities_daily_stocknet88",
    )
    config_type = MACrossoverConfig

    def __init__(self, config: MACrossoverConfig, symbol: str, *, name: str | None = None) -> None:
        super().__init__(config, symbol, name=name)
        self._fast = _average(config.ma_type, config.fast_period)
        self._slow = _average(config.ma_type, config.slow_period)

    @property
    def warmup(self) -> int:
        return self.config.slow_period

    def update(self, bar: Bar) -> Signal | None:
        fast = self._fast.update(bar.close)
        slow = self._slow.update(bar.close)
        if math.isnan(slow):
            return None
        target = 1.0 if fast > slow else (-1.0 if self.config.allow_short else 0.0)
        strength = abs(fast - slow) / slow if slow else 0.0
        return self._emit(bar.ts_event, target, strength, {"fast_ma": fast, "slow_ma": slow})

    def to_state(self) -> dict[str, Any]:
        saved = _MACrossoverState(fast=self._fast.to_state(), slow=self._slow.to_state())
        return {**self._base_state(), **saved.to_dict()}

    def restore(self, state: dict[str, Any]) -> None:
        saved = _MACrossoverState.from_dict(state)
        self._restore_base(state)
        self._fast.restore(saved.fast)
        self._slow.restore(saved.slow)

    @classmethod
    def vectorized(cls, config: MACrossoverConfig, frame: pd.DataFrame) -> pd.Series:
        close = frame["close"].astype("float64")
        fast = _vector_average(close, config.ma_type, config.fast_period)
        slow = _vector_average(close, config.ma_type, config.slow_period)
        low = -1.0 if config.allow_short else 0.0
        target = pd.Series(np.where(fast > slow, 1.0, low), index=frame.index)
        return target.where(slow.notna())


@batch_form(MACrossover)
class MACrossoverBatch(BatchStrategy[MACrossoverConfig]):
    """:class:`MACrossover` over many symbols: the two averages as banks, one row per symbol."""

    reason_names = ("fast_ma", "slow_ma")

    def __init__(
        self, config: MACrossoverConfig, name: str, lineage: Lineage, capacity: int = 16
    ) -> None:
        super().__init__(config, name, lineage, capacity)
        self._fast = _average_bank(config.ma_type, config.fast_period, capacity)
        self._slow = _average_bank(config.ma_type, config.slow_period, capacity)
        self._low = -1.0 if config.allow_short else 0.0
        self._averages: tuple[FloatArray, FloatArray] = (np.empty(0), np.empty(0))

    def _add_rows(self) -> int:
        row = self._fast.add_row()
        self._slow.add_row()
        return row

    def _step(self, rows: IntArray, close: FloatArray) -> FloatArray:
        fast = self._fast.update(rows, close)
        slow = self._slow.update(rows, close)
        target = np.where(fast > slow, 1.0, self._low)
        target[np.isnan(slow)] = np.nan
        self._averages = fast, slow
        return target

    def _explain(self, picked: np.ndarray) -> tuple[list[float], Iterable[tuple[float, ...]]]:
        fast, slow = (a[picked].tolist() for a in self._averages)
        strength = [abs(f - s) / s if s else 0.0 for f, s in zip(fast, slow, strict=True)]
        return strength, zip(fast, slow, strict=True)

    def _row_state(self, row: int) -> dict[str, Any]:
        return {"fast": self._fast.row_state(row), "slow": self._slow.row_state(row)}

    def _restore_row(self, row: int, state: dict[str, Any]) -> None:
        self._fast.restore_row(row, state["fast"])
        self._slow.restore_row(row, state["slow"])


def _average_bank(kind: str, period: int, capacity: int) -> RollingMeanBank | ExponentialMeanBank:
    return (
        RollingMeanBank(period, capacity)
        if kind == "sma"
        else ExponentialMeanBank(period, capacity)
    )


def _vector_average(close: pd.Series, kind: str, period: int) -> pd.Series:
    if kind == "sma":
        return close.rolling(period, min_periods=period).mean()
    return close.ewm(span=period, adjust=False, min_periods=period).mean()
