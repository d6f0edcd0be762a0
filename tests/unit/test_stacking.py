from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.data.datasets import load_bars
from core.errors import ConfigError
from pipelines.stacking import StackingSettings, composer_weights, fit_stack, stack_signals

STRATEGIES = ("ma_crossover", "breakout", "mean_reversion")


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return {s: r.frame for s, r in load_bars("equities_daily_stocknet88", ["KO", "XOM"]).items()}


def test_the_label_is_the_return_from_the_next_open_to_the_open_after(frames):
    data = stack_signals({"KO": frames["KO"]}, STRATEGIES)

    opens = frames["KO"]["open"].to_numpy()
    expected = opens[2:] / opens[1:-1] - 1.0
    # rows start once every strategy is warm; align on the last rows (the final two have no label)
    np.testing.assert_allclose(data.forward_return, expected[-len(data.forward_return) :])
    assert np.array_equal(data.label, (data.forward_return > 0).astype(int))


def test_no_row_changes_when_the_future_is_cut_away(frames):
    whole = stack_signals(frames, STRATEGIES)
    cut = {s: f.iloc[:900] for s, f in frames.items()}
    part = stack_signals(cut, STRATEGIES)

    n = len(part.label)
    np.testing.assert_array_equal(part.features, whole.features[:n])
    np.testing.assert_array_equal(part.label, whole.label[:n])


def test_fit_reports_out_of_sample_numbers_and_weights_that_sum_to_one():
    result = fit_stack(StackingSettings(strategies=STRATEGIES, symbols=("KO", "XOM", "JPM")))

    weights = result["weights"]
    assert set(weights) == {f"strategy.{s}" for s in STRATEGIES}
    assert sum(weights.values()) == pytest.approx(1.0)
    assert all(w >= 0.0 for w in weights.values())
    assert 0.0 < result["out_of_sample_rows"] < result["rows"]
    assert 0.3 < result["hit_rate"] < 0.7
    assert -1.0 <= result["information_coefficient"] <= 1.0


def test_negative_views_get_no_weight_and_all_negative_falls_back_to_equal():
    assert composer_weights({"a": 2.0, "b": -1.0}) == {"strategy.a": 1.0, "strategy.b": 0.0}
    assert composer_weights({"a": -2.0, "b": -1.0}) == {"strategy.a": 0.5, "strategy.b": 0.5}


def test_a_purge_shorter_than_the_label_is_refused():
    with pytest.raises(ConfigError, match="purge must be >= 2"):
        StackingSettings(purge=1)
