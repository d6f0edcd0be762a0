"""Loaders on real slices of the shipped data, plus small files that pin the rejection rules."""

from __future__ import annotations

import csv
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.data.datasets import DATASETS, bars_path, data_root
from core.data.loaders import (
    iter_bars,
    iter_funding,
    iter_news,
    iter_quotes,
    iter_trades,
    merge_bars,
    read_bars_frame,
    read_binance_quotes_frame,
    read_binance_trades_frame,
    read_funding_frame,
    read_sentiment_frame,
    read_tweets_frame,
)
from core.data.timestamps import parse_timestamps
from core.errors import DataError
from core.model import Bar, Side

BINANCE = data_root() / "crypto_l2_binance_hftbacktest" / "derived"


def ns(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 1_000_000_000


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- timestamps --------------------------------------------------------------------------------


def test_every_accepted_spelling_of_one_instant_parses_to_the_same_nanoseconds() -> None:
    spellings = [
        "2012-09-04 14:30:00",
        "2012-09-04T14:30:00Z",
        "2012-09-04T16:30:00+02:00",
        "9/4/2012 14:30:00",
        "20120904 143000",
        str(ns(2012, 9, 4, 14, 30)),
    ]

    parsed = parse_timestamps(spellings)

    assert not parsed.failed.any()
    assert set(parsed.ns.tolist()) == {ns(2012, 9, 4, 14, 30)}


def test_a_date_without_time_is_midnight_utc_unless_a_zone_is_given() -> None:
    utc = parse_timestamps(["2012-09-04"])
    new_york = parse_timestamps(["2012-09-04"], tz="America/New_York")

    assert utc.ns[0] == ns(2012, 9, 4)
    assert new_york.ns[0] == ns(2012, 9, 4, 4)  # EDT is UTC-4 in September


def test_sub_second_precision_survives_to_the_nanosecond() -> None:
    parsed = parse_timestamps(["2024-08-08T23:54:13.123456789Z"])

    assert parsed.ns[0] == ns(2024, 8, 8, 23, 54, 13) + 123_456_789


def test_unparsable_and_nonexistent_local_times_are_flagged_not_raised() -> None:
    parsed = parse_timestamps(["2012-13-45", "", "2012-03-11 02:30:00"], tz="America/New_York")

    assert parsed.unparsable.tolist() == [True, True, False]
    assert parsed.bad_local_time.tolist() == [False, False, True]


# --- bars --------------------------------------------------------------------------------------


def test_aapl_daily_bars_match_the_file_row_for_row(aapl_csv: Path) -> None:
    with aapl_csv.open() as handle:
        rows = list(csv.DictReader(handle))

    loaded = read_bars_frame(aapl_csv)

    frame = loaded.frame
    assert loaded.rejected == [] and loaded.symbol == "AAPL"
    assert list(frame.columns) == ["ts_event", "open", "high", "low", "close", "volume"]
    assert frame["ts_event"].dtype == np.int64 and frame["close"].dtype == np.float64
    assert len(frame) == len(rows) == 1258  # PROVENANCE: 84 tickers have all 1,258 rows
    assert frame["ts_event"].iloc[0] == ns(2012, 9, 4)
    assert frame["ts_event"].iloc[-1] == ns(2017, 9, 1)
    assert frame["close"].iloc[0] == pytest.approx(96.42, abs=0.01)  # PROVENANCE example
    assert frame["volume"].iloc[-1] == float(rows[-1]["Volume"])


def test_month_day_year_dates_parse_to_the_same_nanoseconds_as_iso(tmp_path: Path) -> None:
    iso = write(tmp_path, "iso.csv", "Date,Open,High,Low,Close,Volume\n2012-09-04,1,2,0.5,1.5,10\n")
    us = write(tmp_path, "us.csv", "date,open,high,low,close,volume\n9/4/2012,1,2,0.5,1.5,10\n")

    assert read_bars_frame(us).frame.equals(read_bars_frame(iso).frame)


def test_bad_rows_are_rejected_with_named_reasons_and_good_rows_survive(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "BAD.csv",
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2012-09-04,1,2,0.5,1.5,1.4,100\n"
        "2012-13-45,1,2,0.5,1.5,1.4,100\n"
        "2012-09-06,abc,2,0.5,1.5,1.4,100\n"
        "2012-09-07,1,2,0.5,NaN,1.4,100\n"
        "2012-09-10,1,2,0.5,1.5,1.4,-5\n"
        "2012-09-11,1,2,0.5,inf,1.4,100\n"
        "2012-09-12,3,2,2.5,1.5,1.4,100\n",  # high < low: left for the quality gate
    )

    loaded = read_bars_frame(path)

    assert loaded.frame["ts_event"].tolist() == [ns(2012, 9, 4), ns(2012, 9, 12)]
    reasons = {r.line: r.reason for r in loaded.rejected}
    assert reasons == {
        3: "unparsable date '2012-13-45'",
        4: "non-numeric open 'abc'",
        5: "missing close",
        6: "negative volume -5",
        7: "non-finite close 'inf'",
    }
    assert loaded.rejected[1].raw == "2012-09-06,abc,2,0.5,1.5,1.4,100"


def test_duplicate_and_out_of_order_rows_are_kept_in_file_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "DUP.csv",
        "Date,Open,High,Low,Close,Volume\n"
        "2012-09-05,1,1,1,1,1\n2012-09-04,2,2,2,2,2\n2012-09-04,3,3,3,3,3\n",
    )

    frame = read_bars_frame(path).frame

    assert frame["open"].tolist() == [1.0, 2.0, 3.0]


def test_headerless_ninjatrader_minute_bars_load_as_utc_bar_end_stamps() -> None:
    path = data_root() / "intraday_spy_1min_pyalgotrade" / "nt-spy-minute-2011-03.csv"

    loaded = read_bars_frame(path, "SPY")

    assert loaded.rejected == []
    assert len(loaded.frame) == 17_577  # PROVENANCE row count
    assert loaded.frame["ts_event"].iloc[0] == ns(2011, 3, 1, 9, 1)
    assert loaded.frame["ts_event"].iloc[-1] == ns(2011, 3, 31, 23, 59)


def test_a_missing_column_is_a_one_line_error_listing_the_columns_present(tmp_path: Path) -> None:
    path = write(tmp_path, "AAPL.csv", "Date,Open,High,Low,Volume\n2012-09-04,1,2,1,5\n")
    partial = write(tmp_path, "MSFT.csv", "Date,Open,High\n2012-09-04,1,2\n")

    with pytest.raises(DataError) as err:
        read_bars_frame(path)
    with pytest.raises(DataError) as several:
        read_bars_frame(partial)

    assert (
        str(err.value) == "AAPL.csv: missing column 'Close' (have: Date, Open, High, Low, Volume)"
    )
    assert str(several.value) == (
        "MSFT.csv: missing columns 'Low', 'Close', 'Volume' (have: Date, Open, High)"
    )


def test_a_missing_or_empty_file_is_a_one_line_error_naming_the_file(tmp_path: Path) -> None:
    empty = write(tmp_path, "EMPTY.csv", "")
    header_only = write(tmp_path, "HDR.csv", "Date,Open,High,Low,Close,Volume\n")

    with pytest.raises(DataError, match=r"NOPE\.csv: no such file$"):
        read_bars_frame(tmp_path / "NOPE.csv")
    with pytest.raises(DataError, match=r"^EMPTY\.csv: empty file$"):
        read_bars_frame(empty)
    with pytest.raises(DataError, match=r"^HDR\.csv: no data rows$"):
        read_bars_frame(header_only)


def test_iter_bars_yields_typed_bars_in_frame_order(aapl_bars: pd.DataFrame) -> None:
    bars = list(iter_bars(aapl_bars.head(3), "AAPL"))

    assert all(isinstance(b, Bar) and b.symbol == "AAPL" for b in bars)
    assert [b.ts_event for b in bars] == aapl_bars["ts_event"].head(3).tolist()
    assert bars[0].close == aapl_bars["close"].iloc[0]


def test_merged_bars_of_several_symbols_are_time_ordered_with_symbol_ties() -> None:
    frames = {
        s: read_bars_frame(bars_path("equities_daily_stocknet88", s)).frame
        for s in ("KO", "PEP", "BABA")
    }

    merged = merge_bars(frames)

    assert len(merged) == sum(len(f) for f in frames.values())
    keys = [(b.ts_event, b.symbol) for b in merged]
    assert keys == sorted(keys)
    # BABA listed on 2014-09-19 (PROVENANCE): before that only KO and PEP alternate.
    assert [b.symbol for b in merged[:4]] == ["KO", "PEP", "KO", "PEP"]


def test_loading_all_88_stocknet_tickers_is_fast() -> None:
    dataset = DATASETS["equities_daily_stocknet88"]
    start = time.perf_counter()

    loaded = {s: read_bars_frame(bars_path(dataset.name, s), s) for s in dataset.symbols()}
    merged = merge_bars({s: r.frame for s, r in loaded.items()})

    elapsed = time.perf_counter() - start
    print(f"\nloaded and merged 88 tickers ({len(merged)} bars) in {elapsed:.2f} s")
    rejected = {
        s: [(r.line, r.raw) for r in res.rejected] for s, res in loaded.items() if res.rejected
    }
    # Three files carry a Yahoo "null" row on 2016-06-29 (line 962; found with grep ',null').
    null_row = [(962, "2016-06-29,null,null,null,null,null,null")]
    assert rejected == {"PTR": null_row, "REX": null_row, "SNP": null_row}
    assert len(merged) == 108_592 - 3  # PROVENANCE total, less the three null rows


# --- Binance quotes and trades -----------------------------------------------------------------


def _non_decreasing_share(frame: pd.DataFrame, column: str) -> float:
    steps = frame.groupby(["venue", "symbol"], sort=False)[column].diff().dropna()
    return float((steps >= 0).mean())


def test_binance_best_bid_ask_parses_to_ordered_uncrossed_quotes() -> None:
    loaded = read_binance_quotes_frame(BINANCE / "bbo.csv.gz")

    frame = loaded.frame
    assert loaded.rejected == [] and len(frame) == 198_021  # PROVENANCE row count
    assert set(frame["venue"]) == {"spot", "usdm"}
    assert set(frame["symbol"]) == {"BTCUSDT", "ETHUSDT"}
    assert _non_decreasing_share(frame, "ts_recv") > 0.99
    assert (frame["bid_price"] <= frame["ask_price"]).mean() > 0.99
    # Capture window 2024-08-08 23:54 … 2024-08-09 00:06 UTC (PROVENANCE).
    assert frame["ts_recv"].between(ns(2024, 8, 8, 23, 54), ns(2024, 8, 9, 0, 6)).all()


def test_binance_quotes_carry_exchange_time_on_usdm_and_local_time_on_spot() -> None:
    frame = read_binance_quotes_frame(BINANCE / "bbo.csv.gz").frame
    spot = frame[frame["venue"] == "spot"]
    usdm = frame[frame["venue"] == "usdm"]

    assert (spot["ts_event"] == spot["ts_recv"]).all()
    # PROVENANCE: the local clock is about 1.2 s behind the exchange.
    lag_s = (usdm["ts_event"] - usdm["ts_recv"]).median() / 1e9
    assert 0.5 < lag_s < 2.0

    quote = next(iter_quotes(usdm.head(1)))
    assert quote.venue == "usdm" and quote.ts_recv == usdm["ts_recv"].iloc[0]


def test_binance_trades_take_the_aggressor_from_buyer_is_maker() -> None:
    raw = pd.read_csv(BINANCE / "trades.csv.gz", nrows=2000)

    loaded = read_binance_trades_frame(BINANCE / "trades.csv.gz")

    frame = loaded.frame
    assert loaded.rejected == [] and len(frame) == 55_732  # PROVENANCE row count
    expected = np.where(raw["buyer_is_maker"].to_numpy(bool), "sell", "buy")
    assert frame["aggressor"].head(2000).tolist() == expected.tolist()
    assert _non_decreasing_share(frame, "ts_event") > 0.99
    trade = next(iter_trades(frame.head(1)))
    assert trade.aggressor in (Side.BUY, Side.SELL) and trade.trade_id == str(raw["trade_id"][0])


def test_a_corrupt_binance_row_is_rejected_and_the_rest_load(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "bbo.csv",
        "market,symbol,local_ts_ns,exch_ts_ms,update_id,bid_px,bid_qty,ask_px,ask_qty\n"
        "spot,BTCUSDT,1723161254087891268,,1,61837.63,3.7,61837.64,1.5\n"
        "spot,BTCUSDT,garbage,,2,61837.63,3.7,61837.64,1.5\n",
    )

    loaded = read_binance_quotes_frame(path)

    assert loaded.frame["ts_event"].tolist() == [1723161254087891268]
    assert [r.reason for r in loaded.rejected] == ["unparsable local_ts_ns 'garbage'"]


# --- funding, tweets, sentiment ----------------------------------------------------------------


def test_funding_rates_parse_on_each_venues_utc_schedule() -> None:
    path = data_root() / "funding_rates_btc_eth_supervik" / "derived" / "funding_rates_utc.csv.gz"

    loaded = read_funding_frame(path)

    frame = loaded.frame
    assert loaded.rejected == [] and len(frame) == 78_664  # PROVENANCE row count
    hours = pd.to_datetime(frame["ts_event"], unit="ns").dt.hour
    binance = frame["venue"] == "binance"
    assert set(hours[binance]) == {0, 8, 16}  # PROVENANCE: Binance settles 00/08/16 UTC
    first = next(iter_funding(frame.head(1)))
    assert first.venue == "binance" and first.ts_event == ns(2020, 1, 1)


def test_tweets_become_news_items_with_their_tickers() -> None:
    path = data_root() / "tweets_timestamped_stocknet" / "tweets_KO_PEP_XOM_CVX_JPM_BAC.csv.gz"

    loaded = read_tweets_frame(path)

    frame = loaded.frame
    assert loaded.rejected == []
    tagged = {s for symbols in frame["symbols"] for s in symbols}
    assert tagged == {"KO", "PEP", "XOM", "CVX", "JPM", "BAC"}
    # One item per distinct (time, text); each distinct (ticker, time, text) row tags it once.
    raw = pd.read_csv(path)
    assert len(raw) == 8_828  # PROVENANCE row count
    distinct = raw.drop_duplicates(["ticker", "created_at_utc", "text"])
    assert frame["symbols"].map(len).sum() == len(distinct)
    assert len(frame) == len(distinct.drop_duplicates(["created_at_utc", "text"]))
    assert frame["ts_event"].is_monotonic_increasing
    assert frame["ts_event"].between(ns(2014, 1, 1), ns(2016, 1, 1)).all()
    item = next(iter_news(frame.head(1)))
    assert item.symbols and item.source == "stocknet"


def test_sentiment_files_load_with_the_official_split_sizes() -> None:
    folder = data_root() / "sentiment_twitter_financial_news"

    train = read_sentiment_frame(folder / "sent_train.csv")
    valid = read_sentiment_frame(folder / "sent_valid.csv")

    # PROVENANCE: train 9,543 (1,442 / 1,923 / 6,178), validation 2,388.
    assert train.frame["label"].value_counts().sort_index().tolist() == [1442, 1923, 6178]
    assert len(valid.frame) == 2388 and valid.rejected == []
    assert list(train.frame.columns) == ["text", "label"]


def test_a_sentiment_row_with_an_unknown_label_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", 'text,label\n"up, up",1\n"down",7\n')

    loaded = read_sentiment_frame(path)

    assert loaded.frame["text"].tolist() == ["up, up"]
    assert [(r.line, r.reason) for r in loaded.rejected] == [(3, "label '7' not in 0, 1, 2")]
