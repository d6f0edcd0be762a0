"""Breakout and momentum on real stocknet88 daily bars, cross-checked against pandas."""

from __future__ import annotations

from functools import cache

import msgspec
import numpy as np
import pandas as pd
import pytest

from core.data.loaders import iter_bars, read_bars_frame, read_many_bars
from core.errors import ConfigError
from core.model import Signal
from core.strategies.base import Strategy
from core.strategies.catalogue import build
from core.strategies.trend.breakout import Breakout, BreakoutConfig
from core.strategies.trend.momentum import Momentum, MomentumConfig
from tests.strategy_samples import DATA

PRICES = DATA / "equities_daily_stocknet88" / "prices"


@cache
def _bars(symbol: str) -> pd.DataFrame:
    """The full real daily history of ``symbol``, indexed by its 'YYYY-MM-DD' dates."""
    loaded = read_bars_frame(PRICES / f"{symbol}.csv")
    assert not loaded.rejected
    frame = loaded.frame
    frame.index = pd.Index(pd.to_datetime(frame["ts_event"], unit="ns").dt.strftime("%Y-%m-%d"))
    return frame


def _signals(strategy: Strategy, frame: pd.DataFrame) -> dict[str, Signal]:
    """Signals of the incremental form, keyed by the date of the bar that triggered them."""
    out = {}
    for date, bar in zip(frame.index, iter_bars(frame, strategy.symbol), strict=True):
        signal = strategy.update(bar)
        if signal is not None:
            out[date] = signal
    return out


def _held(strategy: Strategy, frame: pd.DataFrame) -> pd.Series:
    """The incremental form's target after each bar (NaN before its first signal)."""
    held, current = [], np.nan
    for bar in iter_bars(frame, strategy.symbol):
        signal = strategy.update(bar)
        current = signal.target_position if signal is not None else current
        held.append(current)
    return pd.Series(held, index=frame.index)


def _changes(target: pd.Series) -> dict[str, float]:
    values, out, last = target.to_numpy(), {}, np.nan
    for date, v in zip(target.index, values, strict=True):
        if not np.isnan(v) and v != last:
            out[date] = float(v)
            last = v
    return out


# --- breakout ---------------------------------------------------------------------------------


def test_breakout_goes_long_on_the_first_close_above_the_prior_55_day_high():
    # AAPL closed at 66.08 on 2013-08-02, above the 65.33 high of 2013-07-31, the highest high
    # of the 55 sessions before; it fell to 66.82 on 2013-09-11 (the day after the iPhone 5c
    # launch), below the 66.86 lowest low of the previous 20 sessions.
    aapl = _bars("AAPL")
    prior_high = aapl["high"].rolling(55).max().shift(1)
    prior_low = aapl["low"].rolling(20).min().shift(1)
    first_entry = aapl.index[aapl["close"] > prior_high][0]
    after = aapl.index > first_entry
    first_exit = aapl.index[after & (aapl["close"] < prior_low)][0]

    signals = _signals(Breakout(BreakoutConfig(entry_period=55, exit_period=20), "AAPL"), aapl)
    trades = {d: s.target_position for d, s in signals.items() if d >= first_entry}

    assert (first_entry, first_exit) == ("2013-08-02", "2013-09-11")
    assert list(trades.items())[:2] == [("2013-08-02", 1.0), ("2013-09-11", 0.0)]
    assert signals["2013-08-02"].reason["upper"] == pytest.approx(65.334282)


@pytest.mark.parametrize("symbol", ["AAPL", "XOM", "GE", "JPM"])
def test_channel_levels_in_every_signal_equal_pandas_rolling_max_and_min(symbol):
    bars = _bars(symbol)
    upper = bars["high"].rolling(20).max().shift(1)
    lower = bars["low"].rolling(10).min().shift(1)

    signals = _signals(Breakout(BreakoutConfig(allow_short=True), symbol), bars)

    assert len(signals) > 20
    for date, signal in signals.items():
        assert signal.reason["upper"] == upper[date]
        assert signal.reason["lower"] == lower[date]


def test_atr_stop_trails_the_best_close_by_a_multiple_of_the_pandas_wilder_atr():
    aapl = _bars("AAPL")
    previous_close = aapl["close"].shift(1)
    true_range = pd.concat(
        [
            aapl["high"] - aapl["low"],
            (aapl["high"] - previous_close).abs(),
            (aapl["low"] - previous_close).abs(),
        ],
        axis=1,
    ).max(axis=1)
    atr = true_range.ewm(alpha=1 / 14, adjust=False).mean()
    dates = list(aapl.index)
    config = BreakoutConfig(entry_period=20, exit_period=10, atr_stop=2.0)

    signals = _signals(Breakout(config, "AAPL"), aapl)

    entry, stopped = None, 0
    for date, signal in signals.items():
        if signal.target_position == 1.0:
            entry = date
            continue
        if entry is None:
            continue
        yesterday = dates[dates.index(date) - 1]
        best = aapl["close"][entry:yesterday].max()
        expected = best - 2.0 * atr[yesterday]
        assert signal.reason["stop"] == pytest.approx(expected, rel=1e-12)
        if signal.reason["close"] >= signal.reason["lower"]:
            stopped += 1  # out by the stop, not the channel
            assert signal.reason["close"] < signal.reason["stop"]
        entry = None
    assert stopped > 5


def test_breakout_with_shorting_is_always_in_the_market_after_its_first_trade():
    ge = _bars("GE")

    held = _held(Breakout(BreakoutConfig(allow_short=True), "GE"), ge)

    traded = held[(held.abs() > 0).cummax()]
    assert set(traded.unique()) == {-1.0, 1.0}


@pytest.mark.parametrize("symbol", ["AAPL", "XOM", "BAC", "WMT"])
@pytest.mark.parametrize("atr_stop", [0.0, 1.5])
def test_breakout_incremental_signals_equal_vectorized_over_five_years(symbol, atr_stop):
    bars = _bars(symbol)
    config = BreakoutConfig(entry_period=30, exit_period=15, allow_short=True, atr_stop=atr_stop)

    incremental = {
        d: s.target_position for d, s in _signals(Breakout(config, symbol), bars).items()
    }

    assert incremental == _changes(Breakout.vectorized(config, bars))
    assert len(incremental) > 10


def test_breakout_restored_mid_trade_emits_the_same_signals_as_one_that_never_stopped():
    bars = list(iter_bars(_bars("AAPL"), "AAPL"))
    config = BreakoutConfig(entry_period=20, exit_period=10, atr_stop=2.0)
    whole, first = Breakout(config, "AAPL"), Breakout(config, "AAPL")
    for bar in bars[:700]:
        whole.update(bar)
        first.update(bar)

    resumed = Breakout(config, "AAPL")
    resumed.restore(msgspec.json.decode(msgspec.json.encode(first.to_state())))

    assert [resumed.update(b) for b in bars[700:]] == [whole.update(b) for b in bars[700:]]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"exit_period": 0}, r"exit_period must be in \[1, 10000\], was 0"),
        ({"atr_stop": -1.0}, "atr_stop must be a finite number >= 0, was -1.0"),
        ({"atr_stop": float("nan")}, "atr_stop must be a finite number >= 0, was nan"),
        ({"channel": 20}, "unknown field `channel`"),
    ],
)
def test_bad_breakout_configs_are_refused_with_a_message_naming_the_value(config, message):
    with pytest.raises(ConfigError, match=message):
        build("breakout", config, "AAPL")


def test_breakout_warm_up_counts_the_atr_only_when_the_stop_is_on():
    assert Breakout(BreakoutConfig(entry_period=20, exit_period=10), "X").warmup == 21
    assert Breakout(BreakoutConfig(entry_period=5, atr_period=30, atr_stop=2), "X").warmup == 31


# --- momentum ---------------------------------------------------------------------------------


def test_momentum_volatility_equals_the_pandas_ewm_of_squared_returns():
    xom = _bars("XOM")
    returns = xom["close"].pct_change()
    expected = np.sqrt((returns**2).ewm(span=60, adjust=False).mean() * 252)

    signals = _signals(Momentum(MomentumConfig(), "XOM"), xom)

    assert len(signals) > 500
    for date, signal in signals.items():
        assert signal.reason["vol"] == pytest.approx(expected[date], rel=1e-12)


@pytest.mark.parametrize("symbol", ["AAPL", "XOM", "KO"])
def test_momentum_is_long_exactly_when_the_12_minus_1_month_return_is_positive(symbol):
    close = _bars(symbol)["close"]
    twelve_minus_one = close.shift(21) / close.shift(21 + 252) - 1

    held = _held(Momentum(MomentumConfig(lookback=252, skip=21), symbol), _bars(symbol))

    defined = held.notna()
    assert defined.sum() > 900
    assert (np.sign(held[defined]) == np.sign(twelve_minus_one[defined])).all()


def test_momentum_sizes_positions_so_their_ex_ante_volatility_is_the_target():
    config = MomentumConfig(vol_target=0.10, max_leverage=1.5)

    signals = _signals(Momentum(config, "MSFT"), _bars("MSFT")).values()

    sizes = [(abs(s.target_position), s.reason["vol"]) for s in signals]
    uncapped = [size * vol for size, vol in sizes if size < 1.5]
    assert len(uncapped) > 500
    assert np.allclose(uncapped, 0.10, rtol=1e-12)
    assert all(size <= 1.5 for size, _ in sizes)


def test_momentum_realizes_close_to_its_volatility_target_across_stocks():
    # Vol targeting with an EWMA estimate should land near the 15% target out of sample.
    loaded = read_many_bars({s: PRICES / f"{s}.csv" for s in ("AAPL", "JPM", "KO", "GE")})
    for symbol, result in loaded.items():
        frame = result.frame
        target = Momentum.vectorized(MomentumConfig(vol_target=0.15), frame)
        pnl = (target.shift(1) * frame["close"].pct_change()).dropna()

        assert 0.12 < pnl.std() * np.sqrt(252) < 0.18, symbol


def test_momentum_cuts_the_jpm_position_as_volatility_jumps_in_the_august_2015_selloff():
    jpm = _bars("JPM")
    vol = np.sqrt((jpm["close"].pct_change() ** 2).ewm(span=60, adjust=False).mean() * 252)

    held = _held(Momentum(MomentumConfig(), "JPM"), jpm)

    before, after = held["2015-08-18"], held["2015-08-24"]
    assert before > 0 and after > 0  # still long: the 12-1 month trend was up
    assert vol["2015-08-24"] > 1.3 * vol["2015-08-18"]
    assert after / before == pytest.approx(vol["2015-08-18"] / vol["2015-08-24"], rel=1e-9)


@pytest.mark.parametrize("symbol", ["AAPL", "BAC"])
def test_momentum_incremental_targets_equal_vectorized_to_1e_9(symbol):
    bars = _bars(symbol)
    config = MomentumConfig(lookback=120, skip=10, vol_span=30)

    incremental = _held(Momentum(config, symbol), bars)
    vectorized = Momentum.vectorized(config, bars)

    assert incremental.isna().sum() == config.warmup - 1
    np.testing.assert_allclose(incremental, vectorized, rtol=1e-9, equal_nan=True)


def test_intraday_momentum_on_spy_minute_bars_matches_its_vectorized_form():
    loaded = read_bars_frame(DATA / "intraday_spy_1min_pyalgotrade" / "nt-spy-minute-2011-03.csv")
    spy = loaded.frame.iloc[:3000].reset_index(drop=True)
    config = MomentumConfig(lookback=60, skip=5, vol_span=30, periods_per_year=252 * 390)

    incremental = _held(Momentum(config, "SPY"), spy)
    returns = spy["close"].pct_change()
    vol = np.sqrt((returns**2).ewm(span=30, adjust=False).mean() * 252 * 390)

    np.testing.assert_allclose(incremental, Momentum.vectorized(config, spy), rtol=1e-9)
    # A flat 60-minute return (common at one-cent ticks) means no position, not a sized one.
    sized = (incremental.abs() < config.max_leverage) & (incremental != 0.0)
    assert sized.sum() > 1000
    np.testing.assert_allclose((incremental.abs() * vol)[sized], 0.15, rtol=1e-9)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"lookback": 12, "skip": 12}, "skip must be < lookback, was 12 >= 12"),
        ({"skip": -1}, "skip must be >= 0, was -1"),
        ({"vol_target": 0.0}, "vol_target must be a finite number > 0, was 0.0"),
        ({"vol_span": 1}, r"vol_span must be in \[2, 10000\], was 1"),
        ({"lookback": 9000, "skip": 2000}, "lookback \\+ skip must be <= 10000, was 11000"),
    ],
)
def test_bad_momentum_configs_are_refused_with_a_message_naming_the_value(config, message):
    with pytest.raises(ConfigError, match=message):
        build("momentum", config, "AAPL")


def test_momentum_warm_up_covers_the_lookback_the_skip_and_the_volatility_span():
    assert Momentum(MomentumConfig(lookback=252, skip=21, vol_span=60), "X").warmup == 274
    assert Momentum(MomentumConfig(lookback=10, skip=2, vol_span=60), "X").warmup == 61
