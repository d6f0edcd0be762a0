"""Learned-strategy samples: real daily bars from stocknet88, the model held in the config."""

from __future__ import annotations

from tests.strategy_samples import StrategySample, stocknet_bars


def ml_direction() -> StrategySample:
    frame, events = stocknet_bars("MSFT", 500)
    # A small logistic model over the eight default features (ret_1, ret_5, ret_20, vol_ewma,
    # dist_ma_10, dist_ma_50, rsi, volume_z): every feature has a say, so the parity check
    # exercises all of them.
    coefficients = [-8.0, 3.0, 6.0, -20.0, 5.0, 6.0, 0.8, 0.05]
    return StrategySample(
        symbol="MSFT",
        config={
            "coefficients": coefficients,
            "intercept": 0.05,
            "upper": 0.53,
            "lower": 0.47,
            "allow_short": True,
        },
        events=events,
        frame=frame,
        bad_config={"lower": 0.6, "upper": 0.5},
        bad_message="lower must be <= upper, was 0.6 > 0.5",
    )


SAMPLES = {"ml_direction": ml_direction}
