"""Behaviour of the macro strategies on the shipped real data, checked by independent pandas,
scikit-learn computations; plus the macro loaders' timing conventions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.mixture import GaussianMixture

from core.data.datasets import data_root
from core.data.loaders import iter_bars
from core.data.macro import (
    between,
    fred_series,
    iter_macro_events,
    lean_daily_bars,
    macro_event_frame,
    read_fred_series,
    sp500_index_bars,
    treasury_curve,
    treasury_points,
)
from core.model import Bar, MacroPoint
from core.strategies.catalogue import build

DAY = pd.Timedelta(days=1)


def _signals(name, config, symbol, events):
    strategy = build(name, config, symbol)
    return strategy, [s for s in map(strategy.update, events) if s is not None]


def _held(signals, days, field=None):
    """The output in force on each day (last signal at or before it)."""
    values = [s.target_position if field is None else s.reason[field] for s in signals]
    stamps = pd.to_datetime([s.ts_event for s in signals])
    return pd.Series(values, index=stamps).reindex(days, method="ffill")


def _raw_fred(series):
    raw = pd.read_csv(data_root() / "macro_fred_monetary" / f"{series}.csv", parse_dates=["Date"])
    raw["Date"] = raw["Date"].astype("datetime64[ns]")
    return raw.rename(columns={"Date": "period", series: "value"})


def _raw_curve():
    raw = pd.read_csv(data_root() / "us_treasury_yields_zipline" / "treasury_curves.csv")
    stamps = pd.to_datetime(raw["Time Period"], utc=True).dt.tz_localize(None)
    raw["date"] = stamps.astype("datetime64[ns]")
    return raw


def _spy_days(start, end):
    return pd.to_datetime(between(lean_daily_bars("SPY").frame, start, end)["ts_event"])


# ---------------------------------------------------------------------------------------------
# Loaders
# ---------------------------------------------------------------------------------------------


def test_m2_figure_is_stamped_four_weeks_after_the_month_it_measures():
    m2 = fred_series("M2SL").frame
    sept_2008 = m2[m2["period_start"] == pd.Timestamp("2008-09-01").value].iloc[0]

    assert pd.Timestamp(sept_2008["ts_event"]) == pd.Timestamp("2008-10-01") + 28 * DAY
    assert sept_2008["value"] == _raw_fred("M2SL").set_index("period").loc["2008-09-01", "value"]


def test_fred_loader_rejects_a_missing_value_naming_it(tmp_path):
    path = tmp_path / "M2SL.csv"
    path.write_text('"Date","M2SL"\n2020-01-01,15000.1\n2020-02-01,.\n')

    result = read_fred_series(path)

    assert len(result.frame) == 1
    assert [(r.line, r.reason) for r in result.rejected] == [(3, "non-numeric M2SL '.'")]


def test_treasury_yields_are_in_percent_and_usable_from_the_next_day():
    points = treasury_points(treasury_curve().frame, ("2year",))
    raw = _raw_curve().set_index("date")
    first = points.iloc[0]

    assert pd.Timestamp(first["period_start"]) == pd.Timestamp("1990-01-02")
    assert pd.Timestamp(first["ts_event"]) == pd.Timestamp("1990-01-03")
    assert first["value"] == pytest.approx(raw.loc["1990-01-02", "2year"] * 100)


def test_event_stream_puts_a_figure_published_on_a_bar_day_before_that_bar():
    m2 = between(fred_series("M2SL").frame, "2008-10-01", "2008-11-01")
    bars = between(lean_daily_bars("SPY").frame, "2008-10-28", "2008-10-31")
    events = list(iter_macro_events(macro_event_frame(m2, {"SPY": bars})))

    kinds = [(type(e).__name__, str(pd.Timestamp(e.ts_event).date())) for e in events]

    assert kinds == [
        ("Bar", "2008-10-28"),
        ("MacroPoint", "2008-10-29"),
        ("Bar", "2008-10-29"),
        ("Bar", "2008-10-30"),
    ]


# ---------------------------------------------------------------------------------------------
# fed_policy
# ---------------------------------------------------------------------------------------------


def _fed_events(start, end):
    macro = [
        between(fred_series("FEDFUNDS").frame, start, end),
        between(treasury_points(treasury_curve().frame, ("2year",)), start, end),
    ]
    frame = macro_event_frame(macro, {"SPY": between(lean_daily_bars("SPY").frame, start, end)})
    return list(iter_macro_events(frame))


def _pandas_fed_stance(days, start):
    """Risk-off per day from the raw CSVs: Δ6m Fed funds + Δ126d 2y (fresh) > 0.25 points."""
    ff = _raw_fred("FEDFUNDS")
    ff = ff[ff["period"] >= start].copy()
    ff["known"] = ff["period"] + pd.offsets.MonthBegin(1) + 7 * DAY
    ff["change"] = ff["value"].diff(6)
    curve = _raw_curve()
    curve = curve[curve["date"] >= start]
    y2 = curve[["date", "2year"]].dropna().copy()
    y2["known"] = y2["date"] + DAY
    y2["change"] = (y2["2year"] * 100).diff(126)
    frame = pd.DataFrame({"day": days})
    frame = pd.merge_asof(frame, ff[["known", "change"]], left_on="day", right_on="known")
    frame = pd.merge_asof(
        frame, y2[["known", "change"]], left_on="day", right_on="known", suffixes=("", "_y")
    )
    fresh = (frame["day"] - frame["known_y"] <= 7 * DAY) & frame["change_y"].notna()
    score = frame["change"] + np.where(fresh, frame["change_y"], 0.0)
    return pd.Series((score > 0.25).to_numpy(), index=days)


@pytest.fixture(scope="module")
def fed_run():
    events = _fed_events("2002-01-01", "2019-01-01")
    _, equity = _signals("fed_policy", {}, "SPY", events)
    _, bond = _signals("fed_policy", {"asset": "bond"}, "SPY", events)
    days = _spy_days("2002-01-01", "2019-01-01")
    return days, _held(equity, days), _held(bond, days)


@pytest.mark.parametrize(
    ("start", "end", "share"),
    [("2004-07-01", "2006-07-01", 0.95), ("2017-01-01", "2019-01-01", 0.85)],
)
def test_fed_policy_is_risk_off_through_the_hiking_cycles_on_the_dates_pandas_says(
    fed_run, start, end, share
):
    days, equity, _ = fed_run
    expected = _pandas_fed_stance(days, "2001-01-01")[start:end]

    risk_off = equity[start:end] == 0.0

    assert expected.mean() > share  # the cycles really are tightening by this rule
    assert (risk_off == expected).all()


def test_fed_policy_bond_leg_mirrors_the_equity_leg(fed_run):
    _, equity, bond = fed_run
    known = equity.notna()

    assert ((equity[known] + bond[known]) == 1.0).all()


def test_fed_policy_ignores_a_stale_two_year_yield_after_the_treasury_file_ends():
    _, signals = _signals("fed_policy", {}, "SPY", _fed_events("2016-01-01", "2019-01-01"))
    late = [s for s in signals if s.ts_event > pd.Timestamp("2017-04-10").value]

    assert late and all(s.reason["yield_used"] == 0.0 for s in late)


# ---------------------------------------------------------------------------------------------
# global_liquidity
# ---------------------------------------------------------------------------------------------


def _liquidity_events(end="2021-04-01"):
    macro = [between(fred_series(s).frame, "1995-01-01", end) for s in ("M2SL", "BOGMBASE")]
    bars = between(lean_daily_bars("SPY").frame, "1998-01-01", end)
    return list(iter_macro_events(macro_event_frame(macro, {"SPY": bars})))


@pytest.fixture(scope="module")
def liquidity_run():
    return _signals("global_liquidity", {}, "SPY", _liquidity_events())[1]


def test_global_liquidity_uses_no_m2_figure_before_its_publication(liquidity_run):
    for signal in liquidity_run:
        month = pd.Timestamp(signal.reason["m2_period_day"] * DAY.value)
        published = month + pd.offsets.MonthBegin(1) + 28 * DAY
        assert published <= pd.Timestamp(signal.ts_event), (month, signal.ts_event)


def test_global_liquidity_growth_matches_pandas_on_the_latest_published_m2(liquidity_run):
    m2 = _raw_fred("M2SL")
    m2["yoy"] = m2["value"].pct_change(12)
    m2["published"] = m2["period"] + pd.offsets.MonthBegin(1) + 28 * DAY
    signals = pd.DataFrame(
        {
            "day": pd.to_datetime([s.ts_event for s in liquidity_run]),
            "yoy": [s.reason["m2_yoy"] for s in liquidity_run],
        }
    )
    latest = pd.merge_asof(signals, m2[["published", "yoy"]], left_on="day", right_on="published")

    np.testing.assert_allclose(latest["yoy_x"], latest["yoy_y"], rtol=1e-12)


def test_global_liquidity_past_signals_do_not_change_when_the_future_is_removed(liquidity_run):
    cut = pd.Timestamp("2008-10-15").value
    _, truncated = _signals("global_liquidity", {}, "SPY", _liquidity_events("2008-10-15"))
    full_before = [s for s in liquidity_run if s.ts_event < cut]

    assert truncated == full_before


# ---------------------------------------------------------------------------------------------
# macro_trend
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trend_run():
    bars = lean_daily_bars("SPY").frame
    curve = treasury_points(treasury_curve().frame, ("3month", "10year"))
    events = list(iter_macro_events(macro_event_frame(curve, {"SPY": bars})))
    return _signals("macro_trend", {}, "SPY", events)[1]


def test_macro_trend_is_out_of_spy_for_late_2008_when_spy_is_below_its_10_month_sma(trend_run):
    days = _spy_days("2008-07-01", "2009-01-01")
    held = _held(trend_run, days)
    raw = pd.read_csv(data_root() / "etf_daily_lean" / "SPY.csv", parse_dates=["date"])
    monthly = raw.set_index("date")["close"].resample("ME").last()
    below = monthly < monthly.rolling(10).mean()

    assert below["2008-06":"2008-11"].all()  # pandas: below the SMA every month-end
    assert (held == 0.0).mean() > 0.95


def test_macro_trend_decisions_follow_the_pandas_10_month_sma_every_month(trend_run):
    raw = pd.read_csv(data_root() / "etf_daily_lean" / "SPY.csv", parse_dates=["date"])
    monthly = raw.set_index("date")["close"].resample("ME").last()
    up = (monthly > monthly.rolling(10).mean()).shift(1)  # known at the next month's first bar
    decisions = _held(trend_run, pd.to_datetime([s.ts_event for s in trend_run]))
    by_month = decisions.groupby(decisions.index.to_period("M")).last()

    expected = up.groupby(up.index.to_period("M")).last().reindex(by_month.index)
    assert ((by_month > 0.0) == expected.astype(bool)).all()


def test_macro_trend_halves_exposure_while_the_curve_was_inverted_in_2006_2007(trend_run):
    curve = _raw_curve().set_index("date")
    slope = (curve["10year"] - curve["3month"]) * 100
    held = _held(trend_run, _spy_days("2006-09-01", "2007-06-01"))
    month_starts = held.groupby(held.index.to_period("M")).head(1)

    assert (slope["2006-08-15":"2007-05-15"] < 0.1).mean() > 0.9
    assert (month_starts == 0.5).mean() > 0.75


# ---------------------------------------------------------------------------------------------
# regime_shift
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def regime_run():
    bars = sp500_index_bars()
    events = list(iter_bars(bars, "SP500"))
    cut = int(np.searchsorted(bars["ts_event"].to_numpy(), pd.Timestamp("2009-01-01").value))
    strategy = build("regime_shift", {}, "SP500")
    signals, snapshot = [], None
    for i, event in enumerate(events):
        if i == cut:
            snapshot = strategy.to_state()
        signal = strategy.update(event)
        if signal is not None:
            signals.append(signal)
    return bars, events, cut, signals, snapshot


@pytest.mark.parametrize(
    ("start", "end"), [("2008-10-01", "2008-12-01"), ("2020-03-09", "2020-04-01")]
)
def test_regime_shift_marks_autumn_2008_and_march_2020_as_the_turbulent_regime(
    regime_run, start, end
):
    bars, _, _, signals, _ = regime_run
    regime = _held(signals, pd.to_datetime(bars["ts_event"]), "regime")

    assert (regime[start:end] == 2.0).all()
    assert (regime["2017-01-01":"2018-01-01"] == 0.0).mean() > 0.9  # the calm 2017 market


def test_regime_shift_fit_up_to_a_date_ignores_the_data_after_it(regime_run):
    _, events, cut, _, snapshot = regime_run
    truncated = build("regime_shift", {}, "SP500")
    for event in events[:cut]:
        truncated.update(event)

    assert truncated.to_state() == snapshot


def _pandas_features(bars, config):
    close = bars.set_index(pd.to_datetime(bars["ts_event"]))["close"]
    r = close.pct_change()
    alpha = 2.0 / (config["vol_span"] + 1.0)
    vol = np.sqrt(252.0 * (r**2).ewm(alpha=alpha, adjust=False).mean())
    return pd.DataFrame({"ret": close.pct_change(config["return_window"]), "vol": vol})


def test_regime_shift_fit_matches_scikit_learn_fitted_directly_on_the_same_window(regime_run):
    bars, _, cut, _, snapshot = regime_run
    config = {"return_window": 21, "vol_span": 21, "fit_window": 1260, "min_fit_samples": 504}
    features = _pandas_features(bars, config).iloc[:cut].dropna()
    # The last fit before the cut: features are counted from the 22nd bar, refit every 63.
    n_fits = (len(features) - config["min_fit_samples"]) // 63
    end = config["min_fit_samples"] + 63 * n_fits
    window = features.iloc[max(0, end - 1260) : end].to_numpy()

    model = GaussianMixture(3, covariance_type="full", random_state=0, max_iter=200).fit(window)
    order = np.argsort(model.means_[:, 1])
    params = snapshot["params"]

    np.testing.assert_allclose(params["means"], model.means_[order], rtol=1e-6)
    np.testing.assert_allclose(params["covariances"], model.covariances_[order], rtol=1e-6)
    np.testing.assert_allclose(params["weights"], model.weights_[order], rtol=1e-6)


def test_regime_shift_probability_matches_scikit_learn_predict_proba(regime_run):
    bars, events, cut, _, snapshot = regime_run
    model = GaussianMixture(3, covariance_type="full")
    model.weights_ = np.asarray(snapshot["params"]["weights"])
    model.means_ = np.asarray(snapshot["params"]["means"])
    model.covariances_ = np.asarray(snapshot["params"]["covariances"])
    model.precisions_cholesky_ = np.linalg.cholesky(np.linalg.inv(model.covariances_))
    features = _pandas_features(bars, {"return_window": 21, "vol_span": 21})
    live = build("regime_shift", {}, "SP500")
    live.restore(snapshot)

    checked = 0
    for i in range(cut, cut + 40):
        # A probe that has never emitted answers on every bar, so each posterior is visible.
        probe = build("regime_shift", {}, "SP500")
        probe.restore({**live.to_state(), "emitted": False})
        signal = probe.update(events[i])
        live.update(events[i])
        if probe.to_state()["params"] != snapshot["params"]:
            continue  # refitted on this bar: other parameters
        expected = model.predict_proba(features.iloc[[i]].to_numpy())[0]
        assert signal is not None
        regime = int(signal.reason["regime"])
        assert regime == int(np.argmax(expected))
        assert signal.reason["probability"] == pytest.approx(expected[regime], rel=1e-9)
        assert signal.reason["turbulent_probability"] == pytest.approx(
            expected[2], rel=1e-9, abs=1e-15
        )
        checked += 1
    assert checked >= 10


def test_macro_events_are_typed_events():
    events = _fed_events("2005-01-01", "2005-03-01")

    assert {type(e) for e in events} == {Bar, MacroPoint}
