"""Direction features: incremental equals vectorized, nothing reads the future, real-data sanity."""

from __future__ import annotations

import msgspec
import numpy as np
import pandas as pd
import pytest

from core.data.datasets import load_bars
from core.errors import ConfigError
from core.features.direction import (
    DirectionFeatures,
    FeatureParams,
    direction_labels,
    feature_frame,
    lookahead_violations,
)

PARAMS = FeatureParams()


def _frame(symbol: str) -> pd.DataFrame:
    return load_bars("equities_daily_stocknet88", [symbol])[symbol].frame


def _incremental(frame: pd.DataFrame, params: FeatureParams) -> np.ndarray:
    features = DirectionFeatures(params)
    rows = []
    for close, volume in zip(frame["close"].tolist(), frame["volume"].tolist(), strict=True):
        out = features.update(close, volume)
        rows.append(np.full(len(params.names), np.nan) if out is None else out.copy())
    return np.array(rows)


@pytest.mark.parametrize("symbol", ["AAPL", "KO", "AGFS"])  # AGFS has 49 zero-volume days
def test_incremental_features_equal_the_vectorized_ones_to_1e_9(symbol):
    frame = _frame(symbol)

    got = _incremental(frame, PARAMS)
    want = feature_frame(frame, PARAMS).to_numpy()

    assert np.isnan(want[: PARAMS.warmup - 1]).all()
    assert not np.isnan(want[PARAMS.warmup - 1 :]).any()
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, equal_nan=True)


def test_parity_holds_for_other_look_back_lengths():
    params = FeatureParams(
        return_horizons=(2, 3, 60), vol_span=5, ma_periods=(7,), rsi_period=3, volume_window=3
    )
    frame = _frame("XOM").iloc[:400]

    np.testing.assert_allclose(
        _incremental(frame, params),
        feature_frame(frame, params).to_numpy(),
        rtol=1e-9,
        atol=1e-12,
        equal_nan=True,
    )


def test_truncating_the_future_leaves_every_earlier_feature_unchanged():
    frame = _frame("JPM")

    cutoffs = list(range(PARAMS.warmup - 3, len(frame), 97))

    assert lookahead_violations(frame, PARAMS, cutoffs) == []


def test_rewriting_the_future_leaves_every_earlier_feature_unchanged():
    frame = _frame("MSFT")
    cutoff = 700
    shocked = frame.copy()
    rng = np.random.default_rng(3)
    for column in ("open", "high", "low", "close", "volume"):
        shocked.loc[cutoff + 1 :, column] *= rng.uniform(0.5, 1.5, len(frame) - cutoff - 1)

    before = feature_frame(frame, PARAMS).iloc[: cutoff + 1]
    after = feature_frame(shocked, PARAMS).iloc[: cutoff + 1]

    pd.testing.assert_frame_equal(before, after, check_exact=True)


def test_the_label_does_read_the_future_so_the_check_has_teeth():
    frame = _frame("MSFT")

    full = direction_labels(frame)["next_return"]
    truncated = direction_labels(frame.iloc[:501])["next_return"]

    assert not np.isnan(full.iloc[499]) and np.isnan(truncated.iloc[499])


def test_the_label_is_the_return_from_the_next_open_to_the_open_after():
    frame = _frame("AAPL")

    labels = direction_labels(frame)

    opens = frame["open"].to_numpy()
    assert labels["next_return"].iloc[10] == pytest.approx(opens[12] / opens[11] - 1.0, rel=1e-12)
    assert labels["label"].iloc[10] == float(opens[12] > opens[11])
    assert labels.iloc[-2:].isna().all().all()


def test_apples_january_2013_earnings_crash_shows_as_a_big_drop_on_heavy_volume():
    frame = _frame("AAPL")
    dates = pd.to_datetime(frame["ts_event"])
    features = feature_frame(frame, PARAMS)
    day = int(np.flatnonzero(dates == pd.Timestamp("2013-01-24"))[0])

    closes = frame["close"].to_numpy()
    log_volume = np.log1p(frame["volume"].to_numpy()[day - 19 : day + 1])
    expected_z = (log_volume[-1] - log_volume.mean()) / log_volume.std(ddof=0)
    in_2013 = features[dates.dt.year == 2013]

    assert features.loc[day, "ret_1"] == pytest.approx(np.log(closes[day] / closes[day - 1]))
    assert features.loc[day, "ret_1"] < -0.12
    assert in_2013["ret_1"].idxmin() == day
    assert features.loc[day, "volume_z"] == pytest.approx(expected_z, rel=1e-9)
    assert features.loc[day, "volume_z"] > 2.5


def test_state_survives_a_json_round_trip_mid_series():
    frame = _frame("KO").iloc[:300]
    closes, volumes = frame["close"].tolist(), frame["volume"].tolist()
    whole, first = DirectionFeatures(PARAMS), DirectionFeatures(PARAMS)
    for close, volume in zip(closes[:150], volumes[:150], strict=True):
        whole.update(close, volume)
        first.update(close, volume)

    resumed = DirectionFeatures(PARAMS)
    resumed.restore(msgspec.json.decode(msgspec.json.encode(first.to_state())))

    for close, volume in zip(closes[150:], volumes[150:], strict=True):
        a, b = whole.update(close, volume), resumed.update(close, volume)
        assert a is not None and b is not None
        np.testing.assert_array_equal(a, b)


def test_state_of_a_fresh_instance_with_nans_survives_json():
    fresh = DirectionFeatures(PARAMS)
    fresh.update(10.0, 1000.0)

    restored = DirectionFeatures(PARAMS)
    restored.restore(msgspec.json.decode(msgspec.json.encode(fresh.to_state())))

    assert msgspec.json.encode(restored.to_state()) == msgspec.json.encode(fresh.to_state())


def test_warmup_is_the_longest_look_back():
    assert PARAMS.warmup == 50
    assert FeatureParams(return_horizons=(60,)).warmup == 61


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"return_horizons": ()}, "return_horizons must hold at least one period, was \\[\\]"),
        ({"ma_periods": (10, 10)}, "ma_periods must not repeat a period, was \\[10, 10\\]"),
        ({"vol_span": 0}, "vol_span must be in \\[1, 10000\\], was 0"),
        ({"volume_window": 1}, "volume_window must be >= 2, was 1"),
    ],
)
def test_bad_look_backs_are_refused_naming_the_value(bad, message):
    with pytest.raises(ConfigError, match=message):
        FeatureParams(**bad)
