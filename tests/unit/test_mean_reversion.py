"""Bollinger mean reversion on real daily bars, cross-checked against pandas and statsmodels."""

from __future__ import annotations

import math
from functools import cache

import msgspec
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from core.data.loaders import iter_bars, read_bars_frame
from core.errors import ConfigError
from core.model import Signal
from core.strategies.catalogue import build
from core.strategies.statarb.mean_reversion import (
    MeanReversion,
    MeanReversionConfig,
    ou_half_life,
    window_from_half_life,
)
from tests.strategy_samples import DATA

STOCKNET = DATA / "equities_daily_stocknet88" / "prices"
ETFS = DATA / "etf_daily_pyalgotrade"


@cache
def _bars(path: str) -> pd.DataFrame:
    """A real daily history, indexed by its 'YYYY-MM-DD' dates."""
    loaded = read_bars_frame(path)
    assert not loaded.rejected
    frame = loaded.frame
    frame.index = pd.Index(pd.to_datetime(frame["ts_event"], unit="ns").dt.strftime("%Y-%m-%d"))
    return frame


def _stock(symbol: str) -> pd.DataFrame:
    return _bars(str(STOCKNET / f"{symbol}.csv"))


def _etf(symbol: str) -> pd.DataFrame:
    return _bars(str(ETFS / f"{symbol}.csv"))


def _signals(strategy: MeanReversion, frame: pd.DataFrame) -> dict[str, Signal]:
    out = {}
    for date, bar in zip(frame.index, iter_bars(frame, strategy.symbol), strict=True):
        signal = strategy.update(bar)
        if signal is not None:
            out[date] = signal
    return out


def _pandas_z(close: pd.Series, window: int) -> pd.Series:
    rolling = close.rolling(window)
    return (close - rolling.mean()) / rolling.std(ddof=0)


def _changes(target: pd.Series) -> dict[str, float]:
    out, last = {}, math.nan
    for date, v in target.items():
        if not math.isnan(v) and v != last:
            out[date] = float(v)
            last = v
    return out


def test_goes_long_on_the_first_close_below_the_lower_band_and_exits_back_near_the_mean():
    # KO closed at 37.40 on 2012-10-19, more than two 20-day standard deviations (0.32) below
    # its 20-day mean (38.11), in the slide after its third-quarter results.
    ko = _stock("KO")
    z = _pandas_z(ko["close"], 20)
    entry = z.index[z < -2.0][0]
    exit_ = z.index[(z.index > entry) & (z >= -0.5)][0]

    signals = _signals(MeanReversion(MeanReversionConfig(), "KO"), ko)
    trades = [(d, s.target_position) for d, s in signals.items() if d >= entry]

    assert entry == "2012-10-19"
    assert trades[:2] == [(entry, 1.0), (exit_, 0.0)]
    assert signals[entry].reason["mean"] == pytest.approx(38.1125, abs=1e-4)


def test_goes_short_above_the_upper_band_and_only_flat_when_shorting_is_off():
    ko = _stock("KO")
    z = _pandas_z(ko["close"], 20)
    first_rich = z.index[z > 2.0][0]

    with_short = _signals(MeanReversion(MeanReversionConfig(), "KO"), ko)
    long_only = _signals(MeanReversion(MeanReversionConfig(allow_short=False), "KO"), ko)

    assert with_short[first_rich].target_position == -1.0
    assert {s.target_position for s in long_only.values()} == {0.0, 1.0}


@pytest.mark.parametrize(("symbol", "window"), [("KO", 20), ("XOM", 50), ("AAPL", 10)])
def test_z_score_in_every_signal_equals_pandas_rolling_mean_and_std(symbol, window):
    # Five years of running sums: any cancellation or drift in the O(1) moments would show.
    bars = _stock(symbol)
    z = _pandas_z(bars["close"], window)
    mean = bars["close"].rolling(window).mean()

    signals = _signals(MeanReversion(MeanReversionConfig(window=window), symbol), bars)

    assert len(signals) > 20
    for date, signal in signals.items():
        assert signal.reason["z"] == pytest.approx(z[date], rel=1e-9, abs=1e-9)
        assert signal.reason["mean"] == pytest.approx(mean[date], rel=1e-12)


@pytest.mark.parametrize("symbol", ["GLD", "GDX", "SPY"])
def test_incremental_signals_equal_vectorized_on_eight_years_of_etfs(symbol):
    bars = _etf(symbol)
    config = MeanReversionConfig(window=30, z_entry=1.5, z_exit=0.0)

    incremental = {
        d: s.target_position for d, s in _signals(MeanReversion(config, symbol), bars).items()
    }

    assert incremental == _changes(MeanReversion.vectorized(config, bars))
    assert len(incremental) > 30


def test_restored_mid_series_emits_the_same_signals_as_one_that_never_stopped():
    bars = list(iter_bars(_stock("PEP"), "PEP"))
    config = MeanReversionConfig(window=15, z_entry=1.8, z_exit=0.3)
    whole, first = MeanReversion(config, "PEP"), MeanReversion(config, "PEP")
    for bar in bars[:637]:  # not a multiple of the window: the ring is mid-turn
        whole.update(bar)
        first.update(bar)

    resumed = MeanReversion(config, "PEP")
    resumed.restore(msgspec.json.decode(msgspec.json.encode(first.to_state())))

    assert [resumed.update(b) for b in bars[637:]] == [whole.update(b) for b in bars[637:]]


def test_a_window_without_any_spread_never_trades():
    flat = _stock("KO").iloc[:60].copy()
    flat[["open", "high", "low", "close"]] = 40.0

    signals = _signals(MeanReversion(MeanReversionConfig(), "KO"), flat)

    assert [s.target_position for s in signals.values()] == [0.0]
    assert MeanReversion.vectorized(MeanReversionConfig(), flat).dropna().eq(0.0).all()


@pytest.mark.parametrize("symbol", ["KO", "XOM"])
def test_half_life_equals_the_one_from_a_statsmodels_ols_of_change_on_level(symbol):
    close = _stock(symbol)["close"].to_numpy()
    fit = sm.OLS(np.diff(close), sm.add_constant(close[:-1])).fit()
    expected = -math.log(2.0) / math.log(1.0 + fit.params[1])

    assert ou_half_life(close) == pytest.approx(expected, rel=1e-9)


def test_half_life_recovers_the_known_speed_of_a_simulated_ou_process():
    # An AR(1) with coefficient 0.9 halves its distance to the mean in ln 2 / -ln 0.9 = 6.58 bars.
    rng = np.random.default_rng(7)
    levels = np.empty(20_000)
    levels[0] = 100.0
    for t in range(1, len(levels)):
        levels[t] = 100.0 + 0.9 * (levels[t - 1] - 100.0) + rng.normal()

    assert ou_half_life(levels) == pytest.approx(math.log(2) / -math.log(0.9), rel=0.05)


def test_window_from_half_life_is_clipped_and_a_trending_history_gets_the_longest_window():
    uptrend = 50.0 * 1.01 ** np.arange(300)  # compounding: each change grows with the level
    ko = _stock("KO")["close"]

    assert math.isinf(ou_half_life(uptrend))
    assert window_from_half_life(uptrend, max_window=120) == 120
    assert window_from_half_life(ko, min_window=5, max_window=40) == 40
    assert window_from_half_life(ko, multiple=0.05, min_window=5) == 5
    with pytest.raises(ValueError, match="at least 3 finite prices"):
        ou_half_life([1.0, math.nan, 2.0])


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"z_entry": 0.5, "z_exit": 1.0}, "z_entry must be > z_exit, was 0.5 <= 1.0"),
        ({"z_exit": -0.1}, "z_exit must be a finite number >= 0, was -0.1"),
        ({"window": 1}, r"window must be in \[2, 10000\], was 1"),
        ({"z_entry": float("inf")}, "z_entry must be a finite number > 0, was inf"),
        ({"lookback": 20}, "unknown field `lookback`"),
    ],
)
def test_bad_configs_are_refused_with_a_message_naming_the_value(config, message):
    with pytest.raises(ConfigError, match=message):
        build("mean_reversion", config, "KO")


def test_warm_up_is_the_window_and_nothing_is_emitted_before_it():
    strategy = MeanReversion(MeanReversionConfig(window=25), "KO")

    signals = _signals(strategy, _stock("KO").iloc[:40])

    assert strategy.warmup == 25
    assert min(signals) == _stock("KO").index[24]
