"""The Great Expectations data gates on real shipped data: clean files pass, real and injected
faults are flagged by the rule that names them, with the right counts and example rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.data.macro import read_fred_series
from core.errors import ConfigError, ValidationGateFailed
from pipelines.validation import (
    GateReport,
    validate,
    validate_bars,
    validate_funding,
    validate_macro,
    validate_quotes,
    validate_text,
    validate_trades,
)
from pipelines.validation.suites import SPECS

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("STRATEGY_ENGINE_DATA") or REPO / "data")
STOCKNET = DATA / "equities_daily_stocknet88" / "prices"
FXCM = DATA / "fx_triangle_daily_lean" / "fxcm"
FRED = DATA / "macro_fred_monetary"
DAY_S = 86_400


def _ns(dates: pd.Series, hours: int = 0) -> pd.Series:
    # pandas 3 parses "2012-09-04" to datetime64[s]: force ns before taking the integers.
    stamps = pd.to_datetime(dates, utc=True).dt.as_unit("ns") + pd.Timedelta(hours=hours)
    return stamps.astype("int64")


def _stocknet_bars(ticker: str) -> pd.DataFrame:
    raw = pd.read_csv(STOCKNET / f"{ticker}.csv")
    raw.columns = [c.lower() for c in raw.columns]
    raw["ts_event"] = _ns(raw["date"])
    return raw[["ts_event", "open", "high", "low", "close", "volume"]]


def _fxcm_quotes(pair: str) -> pd.DataFrame:
    raw = pd.read_csv(FXCM / f"{pair}_daily.csv")
    # FXCM daily bars are labelled 00:00 in fixed UTC-05 (PROVENANCE.md).
    return pd.DataFrame(
        {
            "symbol": pair,
            "ts_event": _ns(raw["date"], hours=5),
            "bid_price": raw["bid_close"],
            "bid_size": raw["bid_size"].astype("float64"),
            "ask_price": raw["ask_close"],
            "ask_size": raw["ask_size"].astype("float64"),
        }
    )


@pytest.fixture(scope="module")
def aapl() -> pd.DataFrame:
    return _stocknet_bars("AAPL")


@pytest.fixture(scope="module")
def fxcm_quotes() -> pd.DataFrame:
    frames = [_fxcm_quotes(p) for p in ("EURUSD", "GBPUSD", "EURGBP")]
    return pd.concat(frames, ignore_index=True)


def _counts(report: GateReport) -> dict[str, int]:
    return {r.expectation: r.unexpected_count for r in report.failed()}


def _day(ts_ns: int) -> str:
    return pd.Timestamp(ts_ns, unit="ns", tz="UTC").date().isoformat()


@pytest.fixture(scope="module")
def corrupted(aapl: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """AAPL with four injected faults, and the date of each fault."""
    bad = aapl.copy()
    bad.loc[100, "high"] = bad.loc[100, "close"] - 0.5
    bad.loc[300, "volume"] = -bad.loc[300, "volume"]
    bad.loc[400, "low"] = np.nan
    # Repeat row 200 right after itself: the same date twice in a row.
    bad = pd.concat([bad.iloc[:201], bad.iloc[[200]], bad.iloc[201:]], ignore_index=True)
    dates = {
        "high": _day(aapl.loc[100, "ts_event"]),
        "duplicate": _day(aapl.loc[200, "ts_event"]),
        "volume": _day(aapl.loc[300, "ts_event"]),
        "nan": _day(aapl.loc[400, "ts_event"]),
    }
    return bad, dates


def test_clean_aapl_daily_bars_pass_every_expectation(aapl: pd.DataFrame) -> None:
    report = validate_bars(aapl, name="AAPL")

    assert report.success, report.summary_text()
    assert report.rows == len(aapl)
    assert report.failed() == []
    names = {r.expectation for r in report.results}
    assert {"high >= max(open, close)", "low <= min(open, close)", "volume >= 0"} <= names
    assert {"ts_event strictly increasing", "no duplicate ts_event", "row count >= 1"} <= names
    report.raise_if_failed()  # a passing gate does not raise


def test_corrupted_aapl_copy_flags_exactly_the_injected_faults_with_their_counts(
    corrupted: tuple[pd.DataFrame, dict[str, str]],
) -> None:
    bad, _ = corrupted

    report = validate_bars(bad, name="AAPL corrupted")

    assert not report.success
    assert report.rows == len(bad)
    # The repeated date is both a duplicate (both copies) and a step that is not forward (the
    # second copy). The NaN low is reported once, by its not-null rule, not again by the
    # low <= min(open, close) rule.
    assert _counts(report) == {
        "high >= max(open, close)": 1,
        "volume >= 0": 1,
        "low is not null": 1,
        "no duplicate ts_event": 2,
        "ts_event strictly increasing": 1,
    }


def test_examples_name_the_dates_of_the_offending_rows(
    corrupted: tuple[pd.DataFrame, dict[str, str]],
) -> None:
    bad, dates = corrupted

    report = validate_bars(bad, name="AAPL corrupted")

    by_rule = {r.expectation: r for r in report.failed()}
    expected_dates = {
        "high >= max(open, close)": [dates["high"]],
        "volume >= 0": [dates["volume"]],
        "low is not null": [dates["nan"]],
        "no duplicate ts_event": [dates["duplicate"]] * 2,
        "ts_event strictly increasing": [dates["duplicate"]],
    }
    for rule, days in expected_dates.items():
        assert [e["ts_event"][:10] for e in by_rule[rule].examples] == days, rule
    assert by_rule["volume >= 0"].examples[0]["volume"] < 0
    assert by_rule["low is not null"].examples[0]["low"] is None
    text = report.summary_text()
    assert "FAILED high >= max(open, close): 1 row" in text
    assert dates["high"] in text


def test_raise_if_failed_raises_validation_gate_failed_with_a_one_line_message(
    corrupted: tuple[pd.DataFrame, dict[str, str]],
) -> None:
    bad, _ = corrupted
    report = validate_bars(bad, name="AAPL corrupted")

    with pytest.raises(ValidationGateFailed) as caught:
        report.raise_if_failed()

    message = str(caught.value)
    assert "\n" not in message
    assert "AAPL corrupted" in message
    assert "no duplicate ts_event: 2 rows" in message
    assert "high >= max(open, close): 1 row" in message
    assert caught.value.report == report.to_dict()


def test_report_to_dict_is_strict_json(corrupted: tuple[pd.DataFrame, dict[str, str]]) -> None:
    bad, _ = corrupted
    report = validate_bars(bad, name="AAPL corrupted")

    text = json.dumps(report.to_dict(), allow_nan=False)

    assert json.loads(text)["rows"] == len(bad)


def test_a_row_count_minimum_fails_a_too_short_frame(aapl: pd.DataFrame) -> None:
    report = validate_bars(aapl.head(3), min_rows=5)

    assert [r.expectation for r in report.failed()] == ["row count >= 5"]
    assert "observed 3" in report.message()


def test_a_frame_missing_a_column_fails_naming_the_column(aapl: pd.DataFrame) -> None:
    report = validate_bars(aapl.drop(columns=["volume"]))

    assert [r.expectation for r in report.failed()] == ["column volume exists"]


def test_the_quotes_gate_catches_the_crossed_fxcm_closes(fxcm_quotes: pd.DataFrame) -> None:
    report = validate_quotes(fxcm_quotes, name="fxcm daily closes")

    # PROVENANCE.md of fx_triangle_daily_lean counts 297 crossed (bid > ask) FXCM pair-dates.
    assert _counts(report) == {"bid_price <= ask_price": 297}
    crossed = report.failed()[0].examples
    assert crossed and all(e["bid_price"] > e["ask_price"] for e in crossed)


def test_a_missing_bid_is_reported_once_by_its_not_null_rule(fxcm_quotes: pd.DataFrame) -> None:
    quotes = fxcm_quotes.copy()
    clean_row = int(np.flatnonzero(quotes["bid_price"] <= quotes["ask_price"])[0])
    quotes.loc[clean_row, "bid_price"] = np.nan

    report = validate("quotes", quotes)

    assert _counts(report) == {"bid_price is not null": 1, "bid_price <= ask_price": 297}


def test_real_bitstamp_trades_show_their_one_zero_size_trade() -> None:
    path = DATA / "crypto_trades_bitstamp_mtgox_pyalgotrade" / "bitstampUSD_trades.csv"
    raw = pd.read_csv(path, header=None, names=["unix_s", "price", "size"])
    trades = pd.DataFrame(
        {"ts_event": raw["unix_s"] * 1_000_000_000, "price": raw["price"], "size": raw["size"]}
    )

    report = validate_trades(trades)

    # The file's trades are in ascending time with ties (PROVENANCE.md): ordering passes.
    assert _counts(report) == {"size > 0": 1}
    assert report.failed()[0].examples[0]["size"] == 0.0


def test_real_binance_funding_passes_the_default_range_and_a_tight_range_flags_rows() -> None:
    folder = DATA / "funding_rates_btc_eth_supervik" / "data" / "BTC-USDT"
    raw = pd.read_csv(next(folder.glob("BTC-USDT_binance_*.csv")))
    # Dates are UTC+3 local time (PROVENANCE.md).
    funding = pd.DataFrame({"ts_event": _ns(raw["Date"], hours=-3), "rate": raw["Funding Rate"]})

    assert validate_funding(funding).success
    tight = validate_funding(funding, max_abs_rate=0.001)
    assert [r.expectation for r in tight.failed()] == ["|rate| <= 0.001"]
    assert all(abs(e["rate"]) > 0.001 for e in tight.failed()[0].examples)


def test_real_tweets_pass_and_a_blank_tweet_is_flagged() -> None:
    raw = pd.read_csv(DATA / "tweets_timestamped_stocknet" / "tweets_KO_PEP_XOM_CVX_JPM_BAC.csv.gz")
    items = pd.DataFrame({"ts_event": _ns(raw["created_at_utc"]), "text": raw["text"]})
    assert validate_text(items).success

    items.loc[7, "text"] = "   "
    report = validate("text", items)

    assert _counts(report) == {"text is not blank": 1}


def test_validate_dispatches_on_kind_and_rejects_an_unknown_kind(aapl: pd.DataFrame) -> None:
    assert (
        validate("bars", aapl, name="AAPL").to_dict() == validate_bars(aapl, name="AAPL").to_dict()
    )
    with pytest.raises(ConfigError, match="'candles'"):
        validate("candles", aapl)
    with pytest.raises(ConfigError, match="max_abs_rate"):
        validate("bars", aapl, max_abs_rate=0.02)


def test_the_whole_stocknet88_set_flags_only_the_rows_the_files_leave_null() -> None:
    files = sorted(STOCKNET.glob("*.csv"))
    frames = [_stocknet_bars(p.stem).assign(symbol=p.stem) for p in files]
    bars = pd.concat(frames, ignore_index=True)
    # Independently of pandas: the CSV lines whose fields are the literal "null".
    null_lines = sum(
        1 for p in files for line in p.read_text().splitlines() if line.endswith(",null")
    )

    started = time.perf_counter()
    report = validate_bars(bars, name="stocknet88")
    elapsed = time.perf_counter() - started

    print(f"\nstocknet88: {report.rows} rows of {len(files)} tickers validated in {elapsed:.3f} s")
    print(report.summary_text())
    assert null_lines > 0
    columns = ("open", "high", "low", "close", "volume")
    assert _counts(report) == {f"{c} is not null": null_lines for c in columns}


def test_validating_writes_no_gx_files_to_the_working_directory_or_home(
    tmp_path: Path, aapl: pd.DataFrame
) -> None:
    workdir, home = tmp_path / "work", tmp_path / "home"
    workdir.mkdir()
    home.mkdir()
    frame_path = tmp_path / "aapl.json"
    aapl.head(50).to_json(frame_path)
    script = (
        "import sys, pandas as pd\n"
        "from pipelines.validation import validate_bars\n"
        "assert validate_bars(pd.read_json(sys.argv[1])).success\n"
    )
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(REPO)}

    subprocess.run(
        [sys.executable, "-c", script, str(frame_path)], cwd=workdir, env=env, check=True
    )

    assert list(workdir.iterdir()) == []
    assert list(home.iterdir()) == []


# --- macro series and freshness -----------------------------------------------------------------


@pytest.fixture(scope="module")
def m2_and_fedfunds() -> pd.DataFrame:
    frames = [read_fred_series(FRED / f"{series}.csv").frame for series in ("M2SL", "FEDFUNDS")]
    return pd.concat(frames, ignore_index=True)


def _as_of(day: str) -> int:
    return pd.Timestamp(day, tz="UTC").as_unit("ns").value


def test_the_shipped_m2_and_fed_funds_series_pass_the_macro_gate(
    m2_and_fedfunds: pd.DataFrame,
) -> None:
    report = validate_macro(m2_and_fedfunds, name="M2SL+FEDFUNDS")

    assert report.success, report.summary_text()
    # PROVENANCE.md: M2SL has 778 monthly rows, FEDFUNDS 833.
    assert report.rows == 778 + 833
    names = {r.expectation for r in report.results}
    assert {
        "ts_event is not null",
        "ts_event >= period_start",
        "period_start strictly increasing per series",
        "ts_event non-decreasing per series",
        "row count >= 1",
    } <= names


def test_a_macro_figure_without_a_publication_date_fails_only_its_not_null_rule(
    m2_and_fedfunds: pd.DataFrame,
) -> None:
    bad = m2_and_fedfunds.copy()
    bad.loc[10, "ts_event"] = None

    report = validate("macro", bad)

    assert _counts(report) == {"ts_event is not null": 1}
    example = report.failed()[0].examples[0]
    assert example["ts_event"] is None
    assert example["period_start"][:10] == _day(m2_and_fedfunds.loc[10, "period_start"])


def test_a_macro_figure_published_before_its_period_starts_is_flagged(
    m2_and_fedfunds: pd.DataFrame,
) -> None:
    bad = m2_and_fedfunds.copy()
    bad.loc[10, "ts_event"] = bad.loc[10, "period_start"] - DAY_S * 1_000_000_000

    report = validate("macro", bad)

    # The month before was published after its own end, i.e. after this period began, so a
    # stamp before this period's start is also a step back in publication time.
    assert _counts(report) == {
        "ts_event >= period_start": 1,
        "ts_event non-decreasing per series": 1,
    }
    example = report.failed()[0].examples[0]
    assert example["ts_event"] < example["period_start"]  # ISO strings of one format sort as time


def test_a_repeated_macro_period_breaks_the_strict_period_order(
    m2_and_fedfunds: pd.DataFrame,
) -> None:
    m2 = m2_and_fedfunds[m2_and_fedfunds["series"] == "M2SL"]
    repeated = pd.concat([m2.iloc[:51], m2.iloc[[50]], m2.iloc[51:]], ignore_index=True)

    report = validate_macro(repeated)

    assert _counts(report) == {"period_start strictly increasing per series": 1}


def test_the_aapl_bars_are_stale_a_month_after_their_last_day(aapl: pd.DataFrame) -> None:
    report = validate("bars", aapl, as_of_ns=_as_of("2017-10-01"), max_age_s=7 * DAY_S)

    [failed] = report.failed()
    assert failed.expectation == "newest ts_event within 7 days of as_of"
    # PROVENANCE.md: the stocknet prices end on 2017-09-01.
    assert failed.detail == "observed 2017-09-01T00:00:00+00:00"


def test_the_aapl_bars_are_fresh_four_days_after_their_last_day(aapl: pd.DataFrame) -> None:
    report = validate("bars", aapl, as_of_ns=_as_of("2017-09-05"), max_age_s=7 * DAY_S)

    assert report.success, report.summary_text()
    assert report.results[-1].expectation == "newest ts_event within 7 days of as_of"


def test_without_as_of_no_freshness_rule_is_added(aapl: pd.DataFrame) -> None:
    report = validate_bars(aapl)

    assert not any(r.expectation.startswith("newest") for r in report.results)


def test_freshness_needs_both_as_of_and_max_age(aapl: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="max_age_s=None"):
        validate("bars", aapl, as_of_ns=_as_of("2017-09-05"))
    with pytest.raises(ConfigError, match="max_age_s must be a positive"):
        validate("text", aapl, as_of_ns=_as_of("2017-09-05"), max_age_s=-1.0)


def test_every_gate_checks_a_row_count() -> None:
    for kind, spec in SPECS.items():
        report = validate(kind, pd.DataFrame(columns=list(spec.required)), min_rows=1)

        assert "row count >= 1" in [r.expectation for r in report.failed()], kind


def test_the_validate_command_checks_a_fred_csv_and_its_freshness(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from strategy_engine.cli import main

    csv = str(FRED / "FEDFUNDS.csv")

    assert main(["validate", "--kind", "macro", "--csv", csv, "--json"]) == 0
    passed = json.loads(capsys.readouterr().out)
    # FEDFUNDS' last period is 2023-11; it is published 7 days after that month ends.
    stale = ["--as-of", "2024-03-01", "--max-age-days", "30"]
    assert main(["validate", "--kind", "macro", "--csv", csv, *stale, "--json"]) == 1
    failed = json.loads(capsys.readouterr().out)

    assert passed["success"] and passed["gate"]["rows"] == 833  # PROVENANCE.md
    assert passed["freshness"] is None
    assert [f["expectation"] for f in failed["failed_expectations"]] == [
        "newest ts_event within 30 days of as_of"
    ]
    assert failed["freshness"] == {"as_of": "2024-03-01T00:00:00+00:00", "max_age_days": 30.0}
