from __future__ import annotations

import msgspec
import numpy as np
import pandas as pd
import pytest

from core.data.loaders import iter_bars
from core.errors import ConfigError
from core.strategies.catalogue import build
from core.strategies.trend.ma_crossover import MACrossover, MACrossoverConfig


def _replay(strategy: MACrossover, frame: pd.DataFrame) -> dict[int, float]:
    """Targets announced by the incremental strategy, keyed by row position."""
    out: dict[int, float] = {}
    for i, bar in enumerate(iter_bars(frame, "AAPL")):
        signal = strategy.update(bar)
        if signal is not None:
            out[i] = signal.target_position
    return out


def _changes(target: pd.Series) -> dict[int, float]:
    """Row positions where a target series is first defined or changes value."""
    values = target.to_numpy()
    out: dict[int, float] = {}
    last = np.nan
    for i, v in enumerate(values):
        if not np.isnan(v) and v != last:
            out[i] = float(v)
            last = v
    return out


@pytest.mark.parametrize("ma_type", ["sma", "ema"])
@pytest.mark.parametrize("allow_short", [False, True])
def test_incremental_signals_equal_the_vectorized_targets_on_real_aapl(
    aapl_bars, ma_type, allow_short
):
    config = MACrossoverConfig(
        fast_period=10, slow_period=30, ma_type=ma_type, allow_short=allow_short
    )

    incremental = _replay(MACrossover(config, "AAPL"), aapl_bars)
    vectorized = _changes(MACrossover.vectorized(config, aapl_bars))

    assert incremental == vectorized
    assert len(incremental) > 20


def test_vectorized_form_agrees_with_an_independent_pandas_crossover(aapl_bars):
    close = aapl_bars["close"]
    fast, slow = close.rolling(50).mean(), close.rolling(200).mean()
    expected = (fast > slow).astype(float).where(slow.notna())

    target = MACrossover.vectorized(MACrossoverConfig(fast_period=50, slow_period=200), aapl_bars)

    pd.testing.assert_series_equal(target, expected, check_names=False)


def test_goes_long_on_the_2013_golden_cross_and_flat_on_the_2015_death_cross(aapl_bars):
    # AAPL's 50-day SMA crossed above its 200-day on 2013-09-12 and below it on 2015-08-26.
    strategy = MACrossover(MACrossoverConfig(fast_period=50, slow_period=200), "AAPL")
    dates = pd.to_datetime(aapl_bars["ts_event"], unit="ns").dt.strftime("%Y-%m-%d").to_numpy()

    targets = {dates[i]: t for i, t in _replay(strategy, aapl_bars).items()}

    assert targets["2013-09-12"] == 1.0
    assert targets["2015-08-26"] == 0.0
    assert targets["2016-09-02"] == 1.0


def test_warm_up_emits_nothing_before_the_slow_window_is_full(aapl_bars):
    strategy = MACrossover(MACrossoverConfig(fast_period=5, slow_period=40), "AAPL")

    emitted = _replay(strategy, aapl_bars.iloc[:60])

    assert strategy.warmup == 40
    assert min(emitted) == 39


def test_restored_mid_series_emits_the_same_signals_as_one_that_never_stopped(aapl_bars):
    config = MACrossoverConfig(fast_period=8, slow_period=21, ma_type="ema", allow_short=True)
    whole = MACrossover(config, "AAPL")
    first = MACrossover(config, "AAPL")
    bars = list(iter_bars(aapl_bars, "AAPL"))
    for bar in bars[:600]:
        whole.update(bar)
        first.update(bar)

    snapshot = msgspec.json.decode(msgspec.json.encode(first.to_state()))
    resumed = MACrossover(config, "AAPL")
    resumed.restore(snapshot)

    for bar in bars[600:]:
        assert resumed.update(bar) == whole.update(bar)


def test_reset_returns_to_a_fresh_strategy(aapl_bars):
    config = MACrossoverConfig()
    used = MACrossover(config, "AAPL")
    _replay(used, aapl_bars.iloc[:100])

    used.reset()

    assert used.to_state() == MACrossover(config, "AAPL").to_state()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"fast_period": 30, "slow_period": 20}, "fast_period must be < slow_period, was 30 >= 20"),
        ({"fast_period": 0}, "fast_period must be >= 1, was 0"),
        ({"ma_type": "wma"}, "ma_type"),
        ({"speed": 3}, "unknown field `speed`"),
    ],
)
def test_bad_configs_are_refused_with_a_message_naming_the_value(config, message):
    with pytest.raises(ConfigError, match=message):
        build("ma_crossover", config, "AAPL")


def test_config_round_trips_through_json_and_accepts_short_names():
    config = MACrossoverConfig.from_dict({"fast": "12", "slow": 26, "ma_type": "ema"})

    again = MACrossoverConfig.from_dict(msgspec.json.decode(msgspec.json.encode(config.to_dict())))

    assert again == config
    assert (config.fast_period, config.slow_period) == (12, 26)
