"""Market makers on real Binance spot BTCUSDT quotes and trades (2024-08-08 23:54 … 00:05 UTC)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from core.data.loaders import read_binance_quotes_frame, read_binance_trades_frame
from core.model import Quote, Trade
from core.strategies.catalogue import build, strategy_type
from core.strategies.market_making.frames import iter_quotes_trades, quotes_trades_frame
from tests.strategy_samples.samples_market_making import FOLDER, SYMBOL, btcusdt_spot

TYPES = ["adaptive_quote", "spread_adjuster", "volatility_responsive"]
WINDOW = "5s"


@pytest.fixture(scope="module")
def tape() -> pd.DataFrame:
    return btcusdt_spot()


@pytest.fixture(scope="module")
def stretch(tape) -> tuple[pd.DataFrame, list[Quote | Trade]]:
    """About two minutes of tape (rows 10k-30k) as a frame and as events."""
    frame = tape.iloc[10_000:30_000].reset_index(drop=True)
    return frame, list(iter_quotes_trades(frame, SYMBOL))


def _output(name: str, frame: pd.DataFrame, inventory: float = 0.0, **config) -> pd.DataFrame:
    cls = strategy_type(name)
    if inventory:
        frame = frame.assign(inventory=inventory)
    return cls.vectorized(cls.config_type.from_dict(config), frame)


def _mid(frame: pd.DataFrame) -> np.ndarray:
    """Mid of the latest quote at each row, by plain pandas forward fill."""
    return ((frame["bid_price"] + frame["ask_price"]) / 2).ffill().to_numpy()


def _realized_variance(frame: pd.DataFrame) -> pd.Series:
    """Independent volatility: squared mid changes summed over a trailing 5 s, per second."""
    quotes = frame[frame["kind"] == "quote"]
    mid = (quotes["bid_price"] + quotes["ask_price"]) / 2
    moves = pd.Series(mid.diff().pow(2).to_numpy(), index=pd.to_datetime(quotes["ts_recv"]))
    per_second = moves.rolling(WINDOW).sum() / pd.Timedelta(WINDOW).total_seconds()
    at_rows = pd.Series(np.nan, index=frame.index)
    at_rows[quotes.index] = per_second.to_numpy()
    return at_rows.ffill()


def test_merged_frame_keeps_every_print_and_quote_in_receive_order():
    quotes = read_binance_quotes_frame(FOLDER / "bbo.csv.gz").frame
    trades = read_binance_trades_frame(FOLDER / "trades.csv.gz").frame

    frame = quotes_trades_frame(quotes, trades, symbol="BTCUSDT", venue="spot")

    spot = (quotes["symbol"] == "BTCUSDT") & (quotes["venue"] == "spot")
    prints = (trades["symbol"] == "BTCUSDT") & (trades["venue"] == "spot")
    assert (frame["kind"] == "quote").sum() == spot.sum()
    assert (frame["kind"] == "trade").sum() == prints.sum()
    assert frame["ts_recv"].is_monotonic_increasing
    assert frame.loc[frame["kind"] == "quote", "price"].isna().all()
    assert frame.loc[frame["kind"] == "trade", "bid_price"].isna().all()


@pytest.mark.parametrize("name", TYPES)
def test_quotes_straddle_the_mid_on_the_tick_grid(stretch, name):
    _, events = stretch
    strategy = build(name, {}, SYMBOL)

    checked = 0
    mid = math.nan
    for event in events:
        if isinstance(event, Quote):
            mid = 0.5 * (event.bid_price + event.ask_price)
        signal = strategy.update(event)
        if signal is not None and signal.bid_price is not None and signal.ask_price is not None:
            assert signal.bid_price < mid < signal.ask_price
            assert abs(signal.bid_price * 100 - round(signal.bid_price * 100)) < 1e-6
            assert abs(signal.ask_price * 100 - round(signal.ask_price * 100)) < 1e-6
            checked += 1

    assert checked > 100


@pytest.mark.parametrize("name", ["adaptive_quote", "volatility_responsive"])
def test_quoted_width_grows_with_independently_measured_volatility(tape, name):
    # No ceiling here: pulled quotes have no width to compare.
    no_ceiling = {"vol_ceiling_bps": 1e6} if name == "volatility_responsive" else {}
    output = _output(name, tape, **no_ceiling)
    width = (output["ask_price"] - output["bid_price"]).to_numpy()
    variance = _realized_variance(tape).to_numpy()
    both = ~np.isnan(width) & ~np.isnan(variance)

    rank_corr = pd.Series(width[both]).corr(pd.Series(variance[both]), method="spearman")
    calm, wild = np.quantile(variance[both], [0.2, 0.8])
    assert rank_corr > 0.5
    assert width[both & (variance >= wild)].mean() > 2 * width[both & (variance <= calm)].mean()


@pytest.mark.parametrize("name", TYPES)
def test_long_inventory_lowers_both_quotes_and_short_raises_them(stretch, name):
    frame, _ = stretch
    flat = _output(name, frame)
    long = _output(name, frame, inventory=0.002)
    short = _output(name, frame, inventory=-0.002)

    quoted = flat["bid_price"].notna() & long["bid_price"].notna() & short["bid_price"].notna()
    for side in ("bid_price", "ask_price"):
        assert (long[side][quoted] <= flat[side][quoted]).all()
        assert (short[side][quoted] >= flat[side][quoted]).all()
        assert long[side][quoted].mean() < flat[side][quoted].mean() < short[side][quoted].mean()


def test_adaptive_quote_reservation_price_falls_below_the_mid_after_buying(stretch):
    _, events = stretch
    strategy = build("adaptive_quote", {}, SYMBOL)
    for event in events[:5_000]:
        strategy.update(event)

    strategy.on_fill(0.002)
    reasons = [s.reason for e in events[5_000:] if (s := strategy.update(e)) is not None]

    assert reasons
    assert all(r["reservation"] < r["mid"] for r in reasons)
    assert all(r["inventory"] == pytest.approx(0.002) for r in reasons)


@pytest.mark.parametrize("name", TYPES)
def test_fills_fed_to_the_live_form_match_an_inventory_column_in_the_vectorized_form(stretch, name):
    frame, events = stretch
    fill_at, quantity = 6_000, 0.003
    strategy = build(name, {}, SYMBOL)
    live = []
    for i, event in enumerate(events):
        if i == fill_at:
            strategy.on_fill(quantity)
        signal = strategy.update(event)
        if signal is not None:
            live.append((i, signal.target_position, signal.bid_price, signal.ask_price))

    inventory = np.where(np.arange(len(frame)) >= fill_at, quantity, 0.0)
    output = _output(name, frame.assign(inventory=inventory))
    rows = output.to_numpy()
    changes, last = [], None
    for i, row in enumerate(rows):
        if np.isnan(row[0]):
            continue
        values = tuple(None if np.isnan(v) else float(v) for v in row)
        if values != last:
            changes.append((i, *values))
            last = values

    assert changes == live
    assert any(i >= fill_at and target == quantity for i, target, _, _ in live)


def test_inventory_at_the_limit_pulls_the_side_that_would_add_to_it(stretch):
    frame, _ = stretch
    long = _output("adaptive_quote", frame, inventory=0.005)
    short = _output("adaptive_quote", frame, inventory=-0.005)
    ready = long["target_position"].notna()

    assert long["bid_price"][ready].isna().all() and long["ask_price"][ready].notna().all()
    assert short["ask_price"][ready].isna().all() and short["bid_price"][ready].notna().all()


def test_volatility_responsive_pulls_its_quotes_in_the_most_volatile_stretch(tape):
    output = _output("volatility_responsive", tape)
    variance = _realized_variance(tape)
    peak = int(np.nanargmax(variance.to_numpy()))
    ts = pd.to_datetime(tape["ts_recv"])
    around_peak = (ts >= ts[peak] - pd.Timedelta(WINDOW)) & (ts <= ts[peak])
    ready = output["target_position"].notna()
    pulled = ready & output["bid_price"].isna() & output["ask_price"].isna()

    # The independent measure puts the peak in the 23:57:50 drop (about -$67 within 5 s).
    assert pd.Timestamp("2024-08-08 23:57:50") <= ts[peak] < pd.Timestamp("2024-08-08 23:58:00")
    assert pulled[around_peak].mean() > 0.5
    assert pulled[ready].mean() < 0.1  # it does quote through the ordinary stretches


def test_volatility_responsive_shows_less_size_when_volatility_is_high(stretch):
    _, events = stretch
    strategy = build("volatility_responsive", {"vol_ceiling_bps": 1e6}, SYMBOL)
    pairs = [
        (s.reason["sigma_bps"], s.quote_size)
        for e in events
        if (s := strategy.update(e)) is not None and s.bid_price is not None
    ]
    sigma, size = np.array(pairs).T

    assert size.max() <= 0.001 + 1e-12
    assert size[sigma > 1.0].max() < size[sigma < 0.4].min()


def test_spread_adjuster_leans_its_quotes_toward_the_order_flow(tape):
    output = _output("spread_adjuster", tape, book_weight=0.0, trade_weight=1.0)
    trades = tape[tape["kind"] == "trade"]
    sign = np.where(trades["aggressor"] == "buy", 1.0, -1.0)
    flow = (pd.Series(sign * trades["size"].to_numpy()).rolling(100).sum()
            / trades["size"].rolling(100).sum().to_numpy())  # fmt: skip
    imbalance = pd.Series(np.nan, index=tape.index)
    imbalance[trades.index] = flow.to_numpy()
    imbalance = imbalance.ffill()
    lean = (output["bid_price"] + output["ask_price"]) / 2 - _mid(tape)

    assert lean[imbalance > 0.5].mean() > 0
    assert lean[imbalance < -0.5].mean() < 0


def test_update_refuses_events_that_are_not_quotes_or_trades(stretch):
    strategy = build("spread_adjuster", {}, SYMBOL)

    with pytest.raises(TypeError, match="takes Quote and Trade events, got str"):
        strategy.update("not an event")
