"""Pair strategies on real pairs, checked against statsmodels and pandas computations.

The reference implementations here use only statsmodels, pandas and the rule as written in the
strategies' docstrings, never the project's own statistics.
"""

from __future__ import annotations

import itertools
import warnings

import msgspec
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from statsmodels.tsa.adfvalues import mackinnonp
from statsmodels.tsa.stattools import adfuller, coint

from core.data.loaders import iter_merged_bars
from core.errors import ConfigError, DataError
from core.model import Bar
from core.strategies.catalogue import build
from core.strategies.statarb.cointegration import Cointegration, CointegrationConfig
from core.strategies.statarb.pairs_common import (
    PairAligner,
    adf_statistic,
    engle_granger,
    mackinnon_p_value,
    pair_frame,
)
from core.strategies.statarb.pairs_trading import PairsTradingConfig, kalman_spread
from tests.strategy_samples.samples_pairs import leg_bars, pair_data

STOCKS = "equities_daily_stocknet88"
ETFS = "etf_daily_pyalgotrade"
PAIRS = [(STOCKS, "KO/PEP"), (STOCKS, "XOM/CVX"), (ETFS, "GLD/GDX")]


def _signals(strategy, events):
    return [s for e in events if (s := strategy.update(e)) is not None]


def _hysteresis(z: float, position: float, entry: float, exit_: float) -> float:
    if abs(z) > entry:
        return -np.sign(z)
    if (position > 0 and z >= -exit_) or (position < 0 and z <= exit_):
        return 0.0
    return position


# --------------------------------------------------------------------------------------------
# Pair convention
# --------------------------------------------------------------------------------------------


def test_a_pair_symbol_must_name_two_distinct_legs():
    for bad in ("KO", "KO/KO", "KO/PEP/XOM", "/PEP"):
        with pytest.raises(ConfigError, match="pair symbol must look like 'A/B'"):
            build("cointegration", {}, bad)


def test_a_bar_of_a_third_symbol_is_rejected_as_bad_data():
    strategy = build("pairs_trading", {}, "KO/PEP")
    stray = Bar(symbol="XOM", ts_event=1, open=1.0, high=1.0, low=1.0, close=1.0, volume=1.0)

    with pytest.raises(DataError, match="'XOM' is not a leg of pair 'KO/PEP'"):
        strategy.update(stray)


def test_pair_bars_are_the_days_both_legs_traded_and_redelivered_bars_are_ignored():
    ko = leg_bars(STOCKS, "KO").iloc[:40]
    pep = leg_bars(STOCKS, "PEP").iloc[:40].drop(index=[7, 21])  # PEP missing two days
    events = list(iter_merged_bars({"KO": ko, "PEP": pep}))
    events.insert(30, events[25])  # an at-least-once stream redelivers an old bar
    assert events[10].symbol == "KO" and events[11].symbol == "PEP"
    events.insert(11, msgspec.structs.replace(events[10], close=99.0))  # same day, before PEP
    aligner = PairAligner("KO/PEP")

    pairs = [p for e in events if (p := aligner.update(e)) is not None]

    expected = ko.merge(pep, on="ts_event")
    assert len(pairs) == 38
    assert [p[0] for p in pairs] == expected["ts_event"].tolist()
    assert [p[1:] for p in pairs] == list(
        zip(expected["close_x"], expected["close_y"], strict=True)
    )
    assert pair_frame(ko, pep)[["close_a", "close_b"]].to_numpy().tolist() == [
        list(p[1:]) for p in pairs
    ]


# --------------------------------------------------------------------------------------------
# Engle–Granger statistic and p-value against statsmodels
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("dataset", "pair"), PAIRS)
@pytest.mark.parametrize("lags", [0, 1, 3])
def test_engle_granger_statistic_and_p_value_match_statsmodels_coint(dataset, pair, lags):
    frame, _ = pair_data(dataset, pair)
    for end in (150, 600, 1100):
        a = frame["close_a"].to_numpy()[end - 150 : end]
        b = frame["close_b"].to_numpy()[end - 150 : end]

        fit = engle_granger(a, b, lags)
        stat, p_value, _ = coint(a, b, trend="c", maxlag=lags, autolag=None)

        assert fit.adf_stat == pytest.approx(stat, rel=1e-9)
        assert fit.p_value == pytest.approx(p_value, rel=1e-9, abs=1e-12)


def test_adf_statistic_matches_statsmodels_adfuller_without_constant():
    frame, _ = pair_data(ETFS, "GLD/GDX", 400)
    spread = (frame["close_a"] - 1.2 * frame["close_b"]).to_numpy()

    for lags in (0, 2, 5):
        expected = adfuller(spread, maxlag=lags, autolag=None, regression="n", result_object=False)[
            0
        ]
        assert adf_statistic(spread, lags) == pytest.approx(expected, rel=1e-9)


def test_mackinnon_p_value_matches_statsmodels_over_the_whole_range():
    for stat in np.linspace(-20.0, 2.0, 441):
        expected = mackinnonp(stat, regression="c", N=2)
        assert mackinnon_p_value(float(stat)) == pytest.approx(expected, rel=1e-12, abs=1e-15)


# --------------------------------------------------------------------------------------------
# Cointegration strategy against a statsmodels + pandas reference
# --------------------------------------------------------------------------------------------


def _reference_cointegration(frame: pd.DataFrame, cfg: CointegrationConfig) -> pd.DataFrame:
    """Hedge ratio, z-score, p-value and position per pair bar, from statsmodels and pandas."""
    a, b = frame["close_a"], frame["close_b"]
    n, window, every = len(frame), cfg.window, cfg.retest_every
    rows = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for end in range(window, n + 1, every):
            wa, wb = a.iloc[end - window : end], b.iloc[end - window : end]
            hedge = sm.OLS(wa.to_numpy(), sm.add_constant(wb.to_numpy())).fit().params[1]
            p_value = coint(wa, wb, maxlag=cfg.adf_lags, autolag=None)[1]
            spread = wa - hedge * wb
            for i in range(end - 1, min(end - 1 + every, n)):
                z = (a.iat[i] - hedge * b.iat[i] - spread.mean()) / spread.std()
                rows[i] = (hedge, z, p_value)
    ref = pd.DataFrame.from_dict(rows, orient="index", columns=["hedge_ratio", "z", "p_value"])
    position, positions = 0.0, []
    for z, p_value in zip(ref["z"], ref["p_value"], strict=True):
        cointegrated = p_value <= cfg.max_p_value
        position = _hysteresis(z, position, cfg.z_entry, cfg.z_exit) if cointegrated else 0.0
        positions.append(position)
    ref["position"] = positions
    ref["ts_event"] = frame["ts_event"].iloc[ref.index].to_numpy()
    return ref


@pytest.fixture(scope="module")
def ko_pep():
    cfg = CointegrationConfig(window=120, retest_every=20, max_p_value=0.1, z_entry=1.5)
    frame, events = pair_data(STOCKS, "KO/PEP")
    signals = _signals(Cointegration(cfg, "KO/PEP"), events)
    return cfg, frame, signals, _reference_cointegration(frame, cfg).set_index("ts_event")


def test_ko_pep_hedge_ratio_is_the_statsmodels_ols_slope_on_the_same_window(ko_pep):
    _, _, signals, ref = ko_pep

    got = [s.reason["hedge_ratio"] for s in signals]
    want = ref.loc[[s.ts_event for s in signals], "hedge_ratio"].to_numpy()

    np.testing.assert_allclose(got, want, rtol=1e-9)
    # PEP trades at about 2.5 times KO's price: well under one PEP share hedges a KO share.
    assert min(got) > 0.1 and max(got) < 1.0


def test_ko_pep_spread_z_score_and_p_value_match_an_independent_pandas_computation(ko_pep):
    _, _, signals, ref = ko_pep
    at = ref.loc[[s.ts_event for s in signals]]

    np.testing.assert_allclose([s.reason["z_score"] for s in signals], at["z"], rtol=1e-7)
    np.testing.assert_allclose([s.reason["p_value"] for s in signals], at["p_value"], rtol=1e-9)


def test_ko_pep_trades_only_while_the_pair_tests_as_cointegrated(ko_pep):
    cfg, frame, signals, ref = ko_pep
    held = Cointegration.vectorized(cfg, frame).dropna()
    p_value = ref["p_value"].to_numpy()

    assert (held != 0).sum() > 20, "the pair must trade somewhere on five years of data"
    assert (p_value > cfg.max_p_value).sum() > 100, "and fail the test elsewhere"
    assert (p_value[held.to_numpy() != 0] <= cfg.max_p_value).all()
    assert all(s.reason["p_value"] <= cfg.max_p_value for s in signals if s.target_position)


@pytest.mark.parametrize(("dataset", "pair"), PAIRS)
def test_positions_follow_the_reference_rule_day_by_day(dataset, pair):
    cfg = CointegrationConfig()
    frame, _ = pair_data(dataset, pair)

    held = Cointegration.vectorized(cfg, frame).dropna()
    ref = _reference_cointegration(frame, cfg)

    assert held.index.tolist() == ref.index.tolist()
    np.testing.assert_array_equal(held.to_numpy(), ref["position"].to_numpy())


def test_xom_cvx_goes_long_the_spread_on_the_first_cointegrated_plunge_below_minus_two_sigma():
    cfg = CointegrationConfig()  # 120-day window, p <= 0.05, enter beyond 2 sigma
    frame, events = pair_data(STOCKS, "XOM/CVX")
    ref = _reference_cointegration(frame, cfg)
    plunge = ref[(ref["p_value"] <= 0.05) & (ref["z"] < -cfg.z_entry)].iloc[0]

    signals = _signals(Cointegration(cfg, "XOM/CVX"), events)
    entry = next(s for s in signals if s.target_position == 1.0)

    assert entry.ts_event == plunge["ts_event"]
    assert pd.Timestamp(entry.ts_event).year == 2014  # XOM lagging CVX, June 2014
    assert entry.reason["hedge_ratio"] == pytest.approx(plunge["hedge_ratio"], rel=1e-9)


# --------------------------------------------------------------------------------------------
# Kalman pairs trading against statsmodels OLS and recursive residuals
# --------------------------------------------------------------------------------------------


def test_without_drift_the_kalman_hedge_ratio_is_the_expanding_statsmodels_ols_fit():
    cfg = PairsTradingConfig(warmup_bars=60, delta=0.0)
    frame, events = pair_data(ETFS, "GLD/GDX", 700)
    a, b = frame["close_a"].to_numpy(), frame["close_b"].to_numpy()

    path = kalman_spread(cfg, a, b)
    signals = _signals(build("pairs_trading", cfg.to_dict(), "GLD/GDX"), events)

    for i in (60, 61, 150, 400, 699):
        slope_intercept = sm.OLS(a[:i], sm.add_constant(b[:i])).fit().params[::-1]
        got = [path["hedge_ratio"][i], path["intercept"][i]]
        np.testing.assert_allclose(got, slope_intercept, rtol=1e-7)
    row = {int(t): i for i, t in enumerate(frame["ts_event"])}
    for s in signals:
        i = row[s.ts_event]
        slope = sm.OLS(a[:i], sm.add_constant(b[:i])).fit().params[1]
        assert s.reason["hedge_ratio"] == pytest.approx(slope, rel=1e-7)


def test_without_drift_the_normalized_spread_is_the_standardized_recursive_residual():
    cfg = PairsTradingConfig(warmup_bars=60, delta=0.0)
    frame, _ = pair_data(STOCKS, "KO/PEP", 500)
    a, b = frame["close_a"].to_numpy(), frame["close_b"].to_numpy()
    noise = sm.OLS(a[:60], sm.add_constant(b[:60])).fit().scale  # warm-up residual variance

    z = kalman_spread(cfg, a, b)["z_score"]

    for i in (60, 100, 250, 499):
        x = sm.add_constant(b[:i])
        fit = sm.OLS(a[:i], x).fit()
        xi = np.array([1.0, b[i]])
        error = a[i] - xi @ fit.params
        leverage = xi @ np.linalg.inv(x.T @ x) @ xi
        assert z[i] == pytest.approx(error / np.sqrt(noise * (1.0 + leverage)), rel=1e-7)
    assert np.isnan(z[:60]).all()


def test_gld_gdx_enters_beyond_z_entry_and_exits_inside_z_exit():
    cfg = PairsTradingConfig()
    _, events = pair_data(ETFS, "GLD/GDX")

    signals = _signals(build("pairs_trading", cfg.to_dict(), "GLD/GDX"), events)

    longs = [s for s in signals if s.target_position == 1.0]
    shorts = [s for s in signals if s.target_position == -1.0]
    assert len(longs) > 5 and len(shorts) > 5
    assert all(s.reason["z_score"] < -cfg.z_entry for s in longs)
    assert all(s.reason["z_score"] > cfg.z_entry for s in shorts)
    for before, now in itertools.pairwise(signals):
        if now.target_position == 0.0:  # closed once the spread came back past -/+ z_exit
            assert now.reason["z_score"] * before.target_position >= -cfg.z_exit
    assert all(s.reason["hedge_ratio"] > 0 for s in signals)  # gold miners move with gold


@pytest.mark.parametrize("name", ["cointegration", "pairs_trading"])
def test_a_restart_during_warm_up_or_between_retests_resumes_identically(name):
    _, events = pair_data(STOCKS, "XOM/CVX", 400)
    config = {"window": 60, "retest_every": 7} if name == "cointegration" else {"warmup_bars": 60}
    whole = _signals(build(name, config, "XOM/CVX"), events)

    for cut in (1, 51, 119, 121, 133, 401):  # mid-pair, warm-up, window edge, between retests
        first = build(name, config, "XOM/CVX")
        before = _signals(first, events[:cut])
        resumed = build(name, config, "XOM/CVX")
        resumed.restore(msgspec.json.decode(msgspec.json.encode(first.to_state())))

        after = _signals(resumed, events[cut:])

        assert [(s.ts_event, s.target_position) for s in before + after] == [
            (s.ts_event, s.target_position) for s in whole
        ]
