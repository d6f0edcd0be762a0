"""The drop folder takes funding rates, tweets, FRED series, FX closes, Treasury curves, the S&P
500 index and Binance quotes and trades as it takes bars: gated by their own loader and suite,
appended beside the shipped file, and read by every stream after it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.data.datasets import INGESTED_ENV_VAR, data_root
from pipelines import ingest
from pipelines.ingest import STORE_RULE, ingest_inbox

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Case:
    """One data kind: a file of new rows (with one row already shipped), the strategy type
    whose stream reads it, and how many more events that stream then has."""

    dataset: str
    file: str
    header: str
    stored_row: str
    new_rows: str
    type_name: str
    symbols: tuple[str, ...] | None
    new_count: int
    more_events: int
    stored_count: int = 1  # the rows the stored line of the file is loaded as


FUNDING = Case(
    dataset="funding_rates_btc_eth_supervik",
    file="rates-2024-01.csv",
    header="exchange,symbol,funding_time_utc,funding_rate\n",
    stored_row="binance,BTC-USDT,2023-12-31 16:00:00,0.00033597\n",
    new_rows=(
        "binance,BTC-USDT,2024-01-01 00:00:00,0.0001\n"
        "binance,BTC-USDT,2024-01-01 08:00:00,-0.00012\n"
        "okx,BTC-USDT,2024-01-01 00:00:00,0.0002\n"
    ),
    type_name="funding_rate",
    symbols=None,
    new_count=3,
    more_events=2,  # the default funding_rate instance reads binance only
)
TWEETS = Case(
    dataset="tweets_timestamped_stocknet",
    file="tweets-2016-01.csv",
    header="ticker,file_date,created_at_utc,text\n",
    stored_row=(
        "XOM,2015-12-30,2015-12-30 06:17:34,"
        "exxon mobil's buy rating reiterated at morningstar . URL $ xom xom\n"
    ),
    new_rows=(
        'KO,2016-01-04,2016-01-04 15:00:00,"coca-cola beats estimates , raises dividend $ ko"\n'
        "PEP,2016-01-04,2016-01-04 16:30:00,pepsico guidance cut $ pep\n"
    ),
    type_name="earnings_reaction",
    symbols=("KO",),
    new_count=2,
    # The stream now runs to the day after the last tweet: one KO tweet and one KO bar more.
    more_events=2,
)
FRED = Case(
    dataset="macro_fred_monetary",
    file="FEDFUNDS.csv",
    header='"Date","FEDFUNDS"\n',
    stored_row="2023-11-01,5.33\n",
    new_rows="2023-12-01,5.33\n2024-01-01,5.33\n",
    type_name="fed_policy",
    symbols=None,
    new_count=2,
    more_events=2,
)
_LEAN_HEADER = (
    "date,bid_open,bid_high,bid_low,bid_close,bid_size,"
    "ask_open,ask_high,ask_low,ask_close,ask_size\n"
)
FX = Case(
    dataset="fx_triangle_daily_lean",
    file="fxcm_EURUSD.csv",
    header=_LEAN_HEADER,
    stored_row="2018-07-04,1.16616,1.16807,1.16295,1.16559,0,1.16641,1.1683,1.16318,1.16583,0\n",
    new_rows=(
        "2018-07-05,1.16559,1.1702,1.1651,1.16901,0,1.16583,1.1704,1.1653,1.16925,0\n"
        "2018-07-06,1.16901,1.1745,1.1681,1.17401,0,1.16925,1.1747,1.1683,1.17425,0\n"
    ),
    type_name="triangular",
    symbols=("fxcm",),
    new_count=2,
    more_events=2,
)
TREASURY = Case(
    dataset="us_treasury_yields_zipline",
    file="curve-2017-03.csv",
    header="Time Period,1month,3month,6month,1year,2year,3year,5year,7year,10year,20year,30year\n",
    stored_row=(
        "2017-03-29 00:00:00+00:00,"
        "0.0076,0.0078,0.0092,0.0104,0.0126,0.0153,0.0193,0.0221,0.0239,0.0274,0.0299\n"
    ),
    new_rows=(
        "2017-03-30,0.0074,0.0076,0.0091,0.0103,0.0128,0.0155,0.0196,0.0224,0.0242,0.0276,0.0302\n"
        "2017-03-31,0.0074,0.0076,0.0091,0.0103,0.0127,0.0150,0.0193,0.0222,0.0240,0.0276,0.0302\n"
    ),
    type_name="macro_trend",
    symbols=None,
    new_count=22,  # a point per tenor and day
    # The DGS10 and DGS3MO points of two days (each usable the day after), and the SPY bar of
    # the 31st: the stream runs to the last point, 1 April, a day later than before.
    more_events=5,
    stored_count=11,
)
SP500 = Case(
    dataset="equities_adjclose_skfolio",
    file="sp500-2022-12.csv",
    header="Date,SP500\n",
    stored_row="2022-12-28,3783.22\n",
    new_rows="2022-12-29,3849.28\n2022-12-30,3839.5\n",
    type_name="regime_shift",
    symbols=None,
    new_count=2,
    more_events=2,
)
BBO = Case(
    dataset="crypto_l2_binance_hftbacktest",
    file="bbo.csv",
    header="market,symbol,local_ts_ns,exch_ts_ms,update_id,bid_px,bid_qty,ask_px,ask_qty\n",
    stored_row=(
        "spot,BTCUSDT,1723161904524703633,,50093696317,"
        "61602.01000000,1.67177000,61602.02000000,2.66795000\n"
    ),
    new_rows=(
        "spot,BTCUSDT,1723161905000000000,,50093696400,61602.5,1.0,61602.6,2.0\n"
        "spot,BTCUSDT,1723161906000000000,,50093696401,61603.0,1.5,61603.1,0.5\n"
    ),
    type_name="adaptive_quote",
    symbols=None,
    new_count=2,
    more_events=2,
)
TRADES = Case(
    dataset="crypto_l2_binance_hftbacktest",
    file="trades.csv",
    header="market,symbol,local_ts_ns,exch_ts_ms,trade_id,price,qty,buyer_is_maker\n",
    stored_row=(
        "spot,BTCUSDT,1723161904525430833,1723161905800,3735703162,"
        "61602.02000000,0.00536000,False\n"
    ),
    new_rows=(
        "spot,BTCUSDT,1723161905100000000,1723161906400,3735703163,61602.6,0.01,False\n"
        "spot,BTCUSDT,1723161905200000000,1723161906500,3735703164,61602.5,0.02,True\n"
    ),
    type_name="adaptive_quote",
    symbols=None,
    new_count=2,
    more_events=2,
)
CASES = [
    pytest.param(c, id=f"{c.dataset}-{c.file}")
    for c in (FUNDING, TWEETS, FRED, FX, TREASURY, SP500, BBO, TRADES)
]


def _drop(inbox: Path, dataset: str, name: str, content: str | bytes) -> Path:
    folder = inbox / dataset
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def _snapshot(root: Path) -> dict[str, bytes]:
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _retrained(case: Case) -> tuple[int, str]:
    """The events of the type's whole stream and the hash a retrain records of those a core
    admits (the fast slices end before the shipped data does, so they never see new rows)."""
    from core.backtest.runner import admitted_events
    from core.backtest.streams import stream_for
    from pipelines.governance import stream_hash

    stream = stream_for(case.type_name, case.dataset, case.symbols)
    events, _ = admitted_events(stream)
    return len(stream.events), stream_hash(events)


@pytest.mark.parametrize("case", CASES)
def test_an_accepted_file_reaches_the_stream_of_its_type_and_a_second_drop_adds_nothing(
    tmp_path: Path, store: Path, counted: list[tuple[str, str]], case: Case
):
    inbox = tmp_path / "inbox"
    shipped = _snapshot(data_root() / case.dataset)
    before_count, before_hash = _retrained(case)
    _drop(inbox, case.dataset, case.file, case.header + case.stored_row + case.new_rows)

    outcome = ingest_inbox(inbox)

    (item,) = outcome["files"]
    assert item["accepted"], item["reason"]
    assert (item["new_rows"], item["already_stored"]) == (case.new_count, case.stored_count)
    assert Path(item["stored_in"]).is_relative_to(store / case.dataset)
    assert Path(item["moved_to"]).parent == inbox / case.dataset / "done"
    after_count, after_hash = _retrained(case)
    assert after_count == before_count + case.more_events
    assert after_hash != before_hash
    assert _snapshot(data_root() / case.dataset) == shipped
    stored = _snapshot(store)

    again_name = case.file.replace(".csv", ".again.csv")
    _drop(inbox, case.dataset, again_name, case.header + case.new_rows)
    (again,) = ingest_inbox(inbox)["files"]

    assert (again["accepted"], again["new_rows"], again["already_stored"]) == (
        True,
        0,
        case.new_count,
    )
    assert _snapshot(store) == stored
    assert _retrained(case) == (after_count, after_hash)
    assert counted == []


REJECTIONS = [
    # Funding: a shipped rate rewritten, a rate no venue charges, a row twice, a bad stamp.
    (FUNDING, "binance,BTC-USDT,2023-12-31 16:00:00,0.0005\n", STORE_RULE),
    (FUNDING, "binance,BTC-USDT,2024-01-01 00:00:00,0.5\n", "|rate| <= 0.01"),
    (FUNDING, FUNDING.new_rows.splitlines()[0] + "\n" + FUNDING.new_rows, "one row per"),
    (FUNDING, "binance,BTC-USDT,yesterday,0.0001\n", "loader rejected rows <= 0"),
    # Tweets: a tweet slipped in before the last stored one, a blank text.
    (TWEETS, "KO,2015-12-30,2015-12-30 06:00:00,late tweet $ ko\n", STORE_RULE),
    (TWEETS, 'KO,2016-01-04,2016-01-04 15:00:00,"   "\n', "loader rejected rows <= 0"),
    # FRED: a published month revised, a missing value, a month before the one it follows.
    (FRED, "2023-10-01,9.99\n", STORE_RULE),
    (FRED, "2023-12-01,.\n", "loader rejected rows <= 0"),
    (FRED, "2024-02-01,5.33\n2024-01-01,5.33\n", "period_start strictly increasing per series"),
    # FX: a shipped close rewritten, a crossed close (the shipped ones are documented, a new
    # one is not let in), a day that is no date, a zero price.
    (FX, FX.stored_row.replace("1.16559", "1.16", 1), STORE_RULE),
    (FX, "2018-07-05,1.17,1.17,1.17,1.17,0,1.16,1.16,1.16,1.16,0\n", "bid_price <= ask_price"),
    (FX, "2018-07-32,1.17,1.17,1.17,1.17,0,1.18,1.18,1.18,1.18,0\n", "loader rejected rows <= 0"),
    (FX, "2018-07-05,0,0,0,0,0,1.18,1.18,1.18,1.18,0\n", "bid_price > 0"),
    # Treasury: a published day revised, a yield that is no number, a day twice, days reversed.
    (TREASURY, "2017-03-28,0.0075,0.0078,,,,,,,0.03,,\n", STORE_RULE),
    (TREASURY, "2017-03-30,0.0074,abc,,,,,,,0.0242,,\n", "loader rejected rows <= 0"),
    (TREASURY, "2017-03-30,,0.0076,,,,,,,,,\n2017-03-30,,0.0077,,,,,,,,,\n", "one row per"),
    (
        TREASURY,
        "2017-04-03,,0.0076,,,,,,,,,\n2017-03-31,,0.0076,,,,,,,,,\n",
        "period_start strictly increasing per series",
    ),
    # The S&P 500 index: a published close revised, a negative close, a day twice.
    (SP500, "2022-12-27,3800\n", STORE_RULE),
    (SP500, "2022-12-29,-3849.28\n", "loader rejected rows <= 0"),
    (SP500, "2022-12-29,3849.28\n2022-12-29,3849.28\n", "no duplicate ts_event"),
    # Binance best bid/ask: a stored quote rewritten, a crossed book, a price that is no number.
    (BBO, BBO.stored_row.replace("1.67177000", "9.0"), STORE_RULE),
    (
        BBO,
        "spot,BTCUSDT,1723161905000000000,,1,61603.0,1.0,61602.0,1.0\n",
        "bid_price <= ask_price",
    ),
    (BBO, "spot,BTCUSDT,1723161905000000000,,1,abc,1.0,61602.0,1.0\n", "loader rejected rows <= 0"),
    # Binance trades: a stored trade repriced, a trade of no size, an unknown aggressor side.
    (TRADES, TRADES.stored_row.replace("61602.02", "61000"), STORE_RULE),
    (TRADES, "spot,BTCUSDT,1723161905100000000,1723161906400,9,61602.6,0,False\n", "size > 0"),
    (
        TRADES,
        "spot,BTCUSDT,1723161905100000000,1723161906400,9,61602.6,0.1,maybe\n",
        "loader rejected rows <= 0",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "failed"),
    [
        pytest.param(c, b, f, id=f"{c.dataset}-{c.file}-{i}")
        for i, (c, b, f) in enumerate(REJECTIONS)
    ],
)
def test_a_file_that_fails_its_kind_s_gate_is_rejected_and_changes_nothing(
    tmp_path: Path,
    store: Path,
    counted: list[tuple[str, str]],
    case: Case,
    body: str,
    failed: str,
):
    inbox = tmp_path / "inbox"
    before = _retrained(case)
    _drop(inbox, case.dataset, case.file, case.header + body)

    (item,) = ingest_inbox(inbox)["files"]

    assert item["accepted"] is False
    assert any(e.startswith(failed) for e in item["failed_expectations"]), item
    assert Path(item["moved_to"]).parent == inbox / case.dataset / "rejected"
    assert _snapshot(store / case.dataset) == {}
    assert _retrained(case) == before
    assert counted == [("gate_failed", f"ingest.{case.dataset}")]


def test_a_fred_file_must_name_a_shipped_series(
    tmp_path: Path, store: Path, counted: list[tuple[str, str]]
):
    inbox = tmp_path / "inbox"
    _drop(inbox, FRED.dataset, "DGS2.csv", '"Date","DGS2"\n2024-01-01,4.2\n')

    (item,) = ingest_inbox(inbox)["files"]

    assert item["accepted"] is False
    assert (
        "names series 'DGS2', which data set 'macro_fred_monetary' does not ship"
        in (item["reason"])
    )
    assert _snapshot(store / FRED.dataset) == {}


def test_an_fx_file_must_name_a_market_and_pair_of_the_triangle(
    tmp_path: Path, store: Path, counted: list[tuple[str, str]]
):
    inbox = tmp_path / "inbox"
    _drop(inbox, FX.dataset, "EURUSD.csv", FX.header + FX.new_rows)
    _drop(inbox, FX.dataset, "ecb_EURUSD.csv", FX.header + FX.new_rows)

    items = ingest_inbox(inbox)["files"]

    assert [i["accepted"] for i in items] == [False, False]
    assert all("names no market and pair" in i["reason"] for i in items)
    assert _snapshot(store / FX.dataset) == {}
    assert counted == [("gate_failed", f"ingest.{FX.dataset}")] * 2


def test_ingested_fx_closes_are_read_in_the_market_s_zone_after_the_shipped_ones(
    tmp_path: Path, store: Path, counted: list[tuple[str, str]]
):
    from core.data.fx import read_fx_triangle_frame

    inbox = tmp_path / "inbox"
    before = read_fx_triangle_frame("fxcm").frame
    _drop(inbox, FX.dataset, FX.file, FX.header + FX.new_rows)

    (item,) = ingest_inbox(inbox)["files"]
    after = read_fx_triangle_frame("fxcm").frame

    assert item["accepted"], item["reason"]
    eurusd = after[after["symbol"] == "EURUSD"]
    added = eurusd.iloc[int((before["symbol"] == "EURUSD").sum()) :]
    # FXCM labels its days in UTC-05: the 5th's close is stamped 05:00 UTC, as shipped ones are.
    assert [str(pd.Timestamp(t, tz="UTC")) for t in added["ts_event"]] == [
        "2018-07-05 05:00:00+00:00",
        "2018-07-06 05:00:00+00:00",
    ]
    assert added["bid_price"].tolist() == [1.16901, 1.17401]
    assert added["ask_price"].tolist() == [1.16925, 1.17425]
    assert set(added["venue"]) == {"fxcm"}
    assert after["ts_event"].is_monotonic_increasing


def test_ingested_treasury_days_extend_the_curve_as_its_loader_returns_it(
    tmp_path: Path, store: Path, counted: list[tuple[str, str]]
):
    from core.data.macro import treasury_curve

    inbox = tmp_path / "inbox"
    before = treasury_curve().frame
    # A day with two tenors published: the others stay blank on that day, as shipped days do.
    _drop(
        inbox,
        TREASURY.dataset,
        TREASURY.file,
        "Time Period,3month,10year\n2017-03-30,0.0076,0.0242\n",
    )

    (item,) = ingest_inbox(inbox)["files"]
    after = treasury_curve().frame

    assert item["accepted"], item["reason"]
    assert list(after.columns) == list(before.columns)
    assert len(after) == len(before) + 1
    added = after.iloc[-1]
    assert str(pd.Timestamp(int(added["ts_event"]), tz="UTC")) == "2017-03-30 00:00:00+00:00"
    assert added["3month"] == pytest.approx(0.0076, rel=1e-12)
    assert added["10year"] == pytest.approx(0.0242, rel=1e-12)
    assert added.drop(["ts_event", "3month", "10year"]).isna().all()
    assert after.iloc[: len(before)].equals(before)


def test_the_binance_replay_feed_ends_with_the_ingested_quotes_and_trades(
    tmp_path: Path, store: Path, counted: list[tuple[str, str]]
):
    from core.data.feeds import replay_events

    inbox = tmp_path / "inbox"
    before = replay_events(BBO.dataset, ["BTCUSDT"])
    _drop(inbox, BBO.dataset, BBO.file, BBO.header + BBO.new_rows)
    _drop(inbox, TRADES.dataset, TRADES.file, TRADES.header + TRADES.new_rows)

    outcome = ingest_inbox(inbox)
    after = replay_events(BBO.dataset, ["BTCUSDT"])

    assert outcome["accepted"] == 2, outcome["files"]
    assert after[: len(before)] == before
    # By receive time: the quote at .0 s, the two trades at .1 and .2 s, the quote at 1 s.
    added = [(type(e).__name__, e.ts_recv) for e in after[len(before) :]]
    assert added == [
        ("Quote", 1723161905000000000),
        ("Trade", 1723161905100000000),
        ("Trade", 1723161905200000000),
        ("Quote", 1723161906000000000),
    ]


def test_a_binance_file_must_name_the_bbo_or_the_trades_file(
    tmp_path: Path, store: Path, counted: list[tuple[str, str]]
):
    inbox = tmp_path / "inbox"
    _drop(inbox, BBO.dataset, "book.csv", BBO.header + BBO.new_rows)

    (item,) = ingest_inbox(inbox)["files"]

    assert item["accepted"] is False
    assert "names no file of data set 'crypto_l2_binance_hftbacktest'" in item["reason"]
    assert _snapshot(store / BBO.dataset) == {}
    assert counted == [("gate_failed", f"ingest.{BBO.dataset}")]


_TEXTISH = st.text(
    alphabet="abcxyz,binanceBTC-USDTKOFEDFUNDS0123456789.-:+eE nan\n\r\"';\t$", max_size=300
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    case=st.sampled_from([FUNDING, TWEETS, FRED, FX, TREASURY, SP500, BBO, TRADES]),
    content=st.one_of(
        st.binary(max_size=400).map(lambda b: (None, b)),
        _TEXTISH.map(lambda body: ("header", body)),
        st.lists(
            st.tuples(
                st.datetimes().map(str),
                st.floats(allow_nan=True, allow_infinity=True),
                st.sampled_from(["KO", "PEP", "BTC-USDT", "", "x"]),
            ),
            max_size=5,
        ).map(lambda rows: ("rows", rows)),
    ),
    suffix=st.sampled_from([".csv", ".parquet"]),
)
def test_whatever_a_dropped_file_of_another_kind_holds_ingest_decides_without_raising(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    case: Case,
    content: tuple[str | None, object],
    suffix: str,
):
    root = tmp_path_factory.mktemp("fuzz")
    monkeypatch.setenv(INGESTED_ENV_VAR, str(root / "ingested"))
    monkeypatch.setattr(ingest, "count_learning_event", lambda *a: True)
    form, payload = content
    data: str | bytes
    if form is None:
        data = payload  # type: ignore[assignment]
    elif form == "header":
        data = case.header + str(payload)
    else:
        lines = []
        for stamp, value, name in payload:  # type: ignore[attr-defined]
            if case is FUNDING:
                lines.append(f"binance,{name},{stamp},{value}\n")
            elif case is TWEETS:
                lines.append(f"{name},{stamp[:10]},{stamp},{value} $ {name.lower()}\n")
            elif case is BBO:
                lines.append(f"spot,{name},{stamp},,1,{value},1,{value},1\n")
            elif case is TRADES:
                lines.append(f"spot,{name},{stamp},,1,{value},{value},False\n")
            elif case is SP500:
                lines.append(f"{stamp},{value}\n")
            elif case is TREASURY:
                lines.append(f"{stamp},{value},{value},,,,,,,{value},,\n")
            elif case is FX:
                lines.append(f"{stamp},{value},{value},{value},{value},0,1.2,1.2,1.2,1.2,0\n")
            else:
                lines.append(f"{stamp[:10]},{value}\n")
        data = case.header + "".join(lines)
    stem = case.file.rsplit(".", 1)[0]
    _drop(root / "inbox", case.dataset, stem + suffix, data)

    (item,) = ingest_inbox(root / "inbox")["files"]

    assert item["moved_to"] and Path(item["report_file"]).is_file()
    assert item["reason"]
    if item["accepted"]:
        # What was stored reads back through the stream of the data set's type.
        count, _ = _retrained(case)
        assert count >= 1
    else:
        assert item["failed_expectations"]
        assert _snapshot(root / "ingested" / case.dataset) == {}
