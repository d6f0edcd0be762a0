"""Trend-following (and single-asset mean-reversion) samples: real daily bars from stocknet88."""

from __future__ import annotations

from tests.strategy_samples import StrategySample, stocknet_bars


def ma_crossover() -> StrategySample:
    frame, events = stocknet_bars("AAPL", 400)
    return StrategySample(
        symbol="AAPL",
        config={"fast_period": 10, "slow_period": 30, "ma_type": "ema", "allow_short": True},
        events=events,
        frame=frame,
        bad_config={"fast_period": 30, "slow_period": 20},
        bad_message="fast_period must be < slow_period, was 30 >= 20",
    )


def breakout() -> StrategySample:
    frame, events = stocknet_bars("AAPL", 400)
    return StrategySample(
        symbol="AAPL",
        config={"entry_period": 20, "exit_period": 10, "allow_short": True, "atr_stop": 2.0},
        events=events,
        frame=frame,
        bad_config={"entry_period": 0},
        bad_message="entry_period must be in \\[1, 10000\\], was 0",
    )


def momentum() -> StrategySample:
    frame, events = stocknet_bars("JPM", 400)
    return StrategySample(
        symbol="JPM",
        config={"lookback": 60, "skip": 5, "vol_span": 20, "vol_target": 0.15},
        events=events,
        frame=frame,
        bad_config={"lookback": 10, "skip": 10},
        bad_message="skip must be < lookback, was 10 >= 10",
    )


def mean_reversion() -> StrategySample:
    frame, events = stocknet_bars("KO", 400)
    return StrategySample(
        symbol="KO",
        config={"window": 20, "z_entry": 2.0, "z_exit": 0.5},
        events=events,
        frame=frame,
        bad_config={"z_entry": 0.5, "z_exit": 1.0},
        bad_message="z_entry must be > z_exit, was 0.5 <= 1.0",
    )


SAMPLES = {
    "ma_crossover": ma_crossover,
    "breakout": breakout,
    "momentum": momentum,
    "mean_reversion": mean_reversion,
}
