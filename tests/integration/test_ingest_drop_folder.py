"""The drop folder: files are gated, new rows reach the store, and nothing hostile gets past."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.data.datasets import INGESTED_ENV_VAR, ingested_bars_path, load_bars
from pipelines import ingest
from pipelines.ingest import STORE_RULE, ingest_inbox
from pipelines.lifecycle import admit_bars, data_hash
from strategy_engine.cli import main

pytestmark = pytest.mark.integration
DATASET = "equities_daily_stocknet88"
SHIPPED_AAPL_ROWS = 1258
HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"
LAST_SHIPPED = "2017-09-01,164.800003,164.940002,163.630005,164.050003,164.050003,16552800\n"
NEW_DAYS = (
    "2017-09-05,163.75,164.25,160.56,162.08,162.08,29536300\n"
    "2017-09-06,162.71,162.99,160.52,161.91,161.91,21651700\n"
    "2017-09-07,162.09,162.24,160.36,161.26,161.26,21928500\n"
)


def _drop(inbox: Path, name: str, content: str | bytes, dataset: str = DATASET) -> Path:
    folder = inbox / dataset
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def _snapshot(root: Path) -> dict[str, bytes]:
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_an_accepted_file_adds_its_new_rows_to_what_every_load_reads(
    tmp_path: Path, store: Path, counted: list[tuple[str, str]]
):
    inbox = tmp_path / "inbox"
    _drop(inbox, "AAPL.csv", HEADER + LAST_SHIPPED + NEW_DAYS)

    outcome = ingest_inbox(inbox)

    (item,) = outcome["files"]
    assert (item["accepted"], item["new_rows"], item["already_stored"]) == (True, 3, 1)
    assert (outcome["accepted"], outcome["rejected"], outcome["new_rows"]) == (1, 0, 3)
    frame = load_bars(DATASET, ["AAPL"])["AAPL"].frame
    assert len(frame) == SHIPPED_AAPL_ROWS + 3
    assert frame["ts_event"].is_monotonic_increasing
    assert frame.iloc[-1]["close"] == 161.26
    assert pd.Timestamp(int(frame.iloc[-1]["ts_event"]), tz="UTC").date().isoformat() == (
        "2017-09-07"
    )
    moved = Path(item["moved_to"])
    assert moved.parent == inbox / DATASET / "done" and moved.name.endswith("-AAPL.csv")
    assert not (inbox / DATASET / "AAPL.csv").exists()
    assert json.loads(Path(item["report_file"]).read_text())["accepted"] is True
    assert counted == []


def test_the_same_file_ingested_twice_changes_nothing_the_second_time(
    tmp_path: Path, store: Path, counted: list[tuple[str, str]]
):
    inbox = tmp_path / "inbox"
    _drop(inbox, "AAPL.csv", HEADER + NEW_DAYS)
    ingest_inbox(inbox)
    stored = _snapshot(store)
    _drop(inbox, "AAPL.again.csv", HEADER + NEW_DAYS)

    outcome = ingest_inbox(inbox)

    (item,) = outcome["files"]
    assert (item["accepted"], item["new_rows"], item["already_stored"]) == (True, 0, 3)
    assert _snapshot(store) == stored


def test_a_file_that_fails_the_gate_is_moved_aside_with_a_report_and_stores_nothing(
    tmp_path: Path, store: Path, counted: list[tuple[str, str]], caplog: pytest.LogCaptureFixture
):
    inbox = tmp_path / "inbox"
    # 2017-09-06: high 160.0 is below the close.
    bad = NEW_DAYS.replace("162.71,162.99,160.52,161.91", "162.71,160.00,160.52,161.91")
    _drop(inbox, "AAPL.csv", HEADER + bad)
    before = data_hash(admit_bars(DATASET, ["AAPL"]))

    with caplog.at_level(logging.INFO, logger="pipelines"):
        outcome = ingest_inbox(inbox)

    (item,) = outcome["files"]
    assert item["accepted"] is False
    assert item["failed_expectations"] == ["high >= max(open, close)"]
    moved = Path(item["moved_to"])
    assert moved.parent == inbox / DATASET / "rejected"
    report = json.loads(Path(item["report_file"]).read_text())
    assert report["failed_expectations"] == ["high >= max(open, close)"]
    assert report["gate"]["success"] is False
    assert Path(item["report_file"]).name == moved.name + ".report.json"
    assert not ingested_bars_path(DATASET, "AAPL").exists()
    assert data_hash(admit_bars(DATASET, ["AAPL"])) == before
    assert counted == [("gate_failed", f"ingest.{DATASET}")]
    events = [r for r in caplog.records if getattr(r, "event", "") == "ingest_rejected"]
    assert [e.failed_expectations for e in events] == [["high >= max(open, close)"]]


def test_a_row_that_rewrites_stored_history_rejects_the_file(
    tmp_path: Path, store: Path, counted: list[tuple[str, str]]
):
    inbox = tmp_path / "inbox"
    rewritten = LAST_SHIPPED.replace("164.050003,164.050003", "164.000000,164.000000")
    _drop(inbox, "AAPL.csv", HEADER + rewritten + NEW_DAYS)

    (item,) = ingest_inbox(inbox)["files"]

    assert item["accepted"] is False
    assert item["failed_expectations"] == [STORE_RULE]
    assert "1 row at or before the last stored time 2017-09-01" in item["reason"]
    assert not ingested_bars_path(DATASET, "AAPL").exists()


def test_a_parquet_file_is_read_by_the_same_loader_rules(
    tmp_path: Path, store: Path, counted: list[tuple[str, str]]
):
    inbox = tmp_path / "inbox"
    folder = inbox / DATASET
    folder.mkdir(parents=True)
    frame = pd.DataFrame(
        {
            "Date": pd.to_datetime(["2017-09-05", "2017-09-06"], utc=True),
            "Open": [44.0, 44.5],
            "High": [45.0, 45.1],
            "Low": [43.5, 44.2],
            "Close": [44.8, 44.9],
            "Volume": [1_000_000, 1_200_000],
        }
    )
    frame.to_parquet(folder / "KO.parquet")

    (item,) = ingest_inbox(inbox)["files"]

    assert (item["accepted"], item["new_rows"]) == (True, 2), item["reason"]
    assert load_bars(DATASET, ["KO"])["KO"].frame.iloc[-1]["close"] == 44.9


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("AAPL.csv", b"\x00\xff\xfe garbage \x81\x82" * 50, "unreadable CSV"),
        ("AAPL.csv", "when,price\n2017-09-05,1.0\n", "missing columns 'Datetime', 'Open'"),
        ("AAPL.csv", HEADER + NEW_DAYS.splitlines()[0] + "\n" + NEW_DAYS, "no duplicate"),
        ("AAPL.csv", HEADER + "2017-09-05,1,NaN,1,1,1,5\n", "missing high"),
        ("AAPL.csv", HEADER + "2017-09-05,1,inf,1,1,1,5\n", "non-finite high"),
        ("AAPL.csv", "", "empty file"),
        ("ZZZZ.csv", HEADER + NEW_DAYS, "does not list"),
        ("AAPL.xlsx", HEADER + NEW_DAYS, "unsupported file type"),
        ("AAPL.parquet", b"PAR1 not really parquet PAR1", "unreadable file"),
    ],
)
def test_a_hostile_file_is_a_recorded_rejection_that_stores_nothing(
    tmp_path: Path,
    store: Path,
    counted: list[tuple[str, str]],
    name: str,
    content: str | bytes,
    reason: str,
):
    inbox = tmp_path / "inbox"
    _drop(inbox, name, content)

    (item,) = ingest_inbox(inbox)["files"]

    assert item["accepted"] is False
    assert reason in item["reason"]
    assert Path(item["moved_to"]).parent == inbox / DATASET / "rejected"
    assert json.loads(Path(item["report_file"]).read_text())["reason"] == item["reason"]
    assert _snapshot(store / DATASET) == {}


def test_a_symbolic_link_is_moved_aside_unread_and_its_target_left_alone(
    tmp_path: Path, store: Path, counted: list[tuple[str, str]]
):
    inbox = tmp_path / "inbox"
    outside = tmp_path / "outside.csv"
    outside.write_text(HEADER + NEW_DAYS)  # valid bars: only the link makes it a rejection
    (inbox / DATASET).mkdir(parents=True)
    (inbox / DATASET / "AAPL.csv").symlink_to(outside)

    (item,) = ingest_inbox(inbox)["files"]

    assert item["accepted"] is False and "symbolic link" in item["reason"]
    moved = Path(item["moved_to"])
    assert moved.is_symlink() and outside.read_text() == HEADER + NEW_DAYS
    assert not ingested_bars_path(DATASET, "AAPL").exists()


def test_a_file_over_the_size_bound_is_refused_unread(
    tmp_path: Path, store: Path, counted: list[tuple[str, str]]
):
    inbox = tmp_path / "inbox"
    _drop(inbox, "AAPL.csv", HEADER + NEW_DAYS * 20)

    (item,) = ingest_inbox(inbox, max_file_bytes=100)["files"]

    assert item["accepted"] is False and item["reason"].startswith("file too large")


def test_a_fifo_a_folder_of_an_unknown_set_and_a_set_of_another_kind_are_rejected(
    tmp_path: Path, store: Path, counted: list[tuple[str, str]]
):
    inbox = tmp_path / "inbox"
    (inbox / DATASET).mkdir(parents=True)
    os.mkfifo(inbox / DATASET / "AAPL.csv")
    _drop(inbox, "AAPL.csv", HEADER + NEW_DAYS, dataset="no_such_set")
    _drop(inbox, "BTC.csv", HEADER + NEW_DAYS, dataset="sentiment_twitter_financial_news")

    outcome = ingest_inbox(inbox)

    reasons = {f"{f['dataset']}/{f['file']}": f["reason"] for f in outcome["files"]}
    assert reasons[f"{DATASET}/AAPL.csv"] == "not a regular file"
    assert reasons["no_such_set/AAPL.csv"].startswith("unknown data set 'no_such_set'")
    assert "holds text data" in reasons["sentiment_twitter_financial_news/BTC.csv"]
    assert outcome["rejected"] == 3 and _snapshot(store / DATASET) == {}
    labels = sorted(label for _kind, label in counted)
    assert labels == [
        f"ingest.{DATASET}",
        "ingest.sentiment_twitter_financial_news",
        "ingest.unknown",
    ]


def test_files_still_being_written_are_left_for_a_later_run(
    tmp_path: Path, store: Path, counted: list[tuple[str, str]]
):
    inbox = tmp_path / "inbox"
    for name in (".AAPL.csv", "AAPL.csv.part", "AAPL.csv.tmp"):
        _drop(inbox, name, HEADER + NEW_DAYS)

    outcome = ingest_inbox(inbox)

    assert outcome["files"] == []
    assert sorted(p.name for p in (inbox / DATASET).iterdir()) == [
        ".AAPL.csv",
        "AAPL.csv.part",
        "AAPL.csv.tmp",
    ]


_CSVISH = st.text(
    alphabet="Date,OpenHighLowCloseVolume0123456789.-:+eE nan\n\r\"';\t", max_size=400
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    content=st.one_of(
        st.binary(max_size=600),
        _CSVISH,
        _CSVISH.map(lambda body: HEADER + body),
        st.lists(
            st.tuples(
                st.dates().map(str),
                *[st.floats(allow_nan=True, allow_infinity=True) for _ in range(5)],
            ),
            max_size=6,
        ).map(
            lambda rows: (
                HEADER + "".join(f"{d},{o},{h},{lo},{c},{c},{v}\n" for d, o, h, lo, c, v in rows)
            )
        ),
    ),
    suffix=st.sampled_from([".csv", ".parquet"]),
)
def test_whatever_a_dropped_file_holds_ingest_decides_without_raising(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    content: str | bytes,
    suffix: str,
):
    root = tmp_path_factory.mktemp("fuzz")
    monkeypatch.setenv(INGESTED_ENV_VAR, str(root / "ingested"))
    monkeypatch.setattr(ingest, "count_learning_event", lambda *a: True)
    inbox = root / "inbox"
    _drop(inbox, f"AAPL{suffix}", content)

    outcome = ingest_inbox(inbox)

    (item,) = outcome["files"]
    assert item["moved_to"] and Path(item["report_file"]).is_file()
    assert item["reason"]
    if item["accepted"]:
        # Whatever was stored reads back through the loader and passes the gate's order rules.
        frame = load_bars(DATASET, ["AAPL"])["AAPL"].frame
        assert len(frame) == SHIPPED_AAPL_ROWS + item["new_rows"]
        assert frame["ts_event"].is_monotonic_increasing
    else:
        assert item["failed_expectations"]
        assert not ingested_bars_path(DATASET, "AAPL").exists()


def test_the_ingest_command_prints_one_json_document_and_exits_1_on_a_rejection(
    tmp_path: Path, store: Path, counted: list[tuple[str, str]], capsys: pytest.CaptureFixture
):
    inbox = tmp_path / "inbox"
    _drop(inbox, "AAPL.csv", HEADER + NEW_DAYS)
    _drop(inbox, "KO.csv", "not,bars\n1,2\n")

    code = main(["ingest", "--inbox", str(inbox), "--dataset", DATASET, "--json"])

    printed = json.loads(capsys.readouterr().out)
    assert code == 1
    assert (printed["accepted"], printed["rejected"], printed["new_rows"]) == (1, 1, 3)
    assert main(["ingest", "--inbox", str(inbox), "--json"]) == 0  # nothing left to decide
    assert json.loads(capsys.readouterr().out)["files"] == []
    assert main(["ingest", "--inbox", str(inbox), "--dataset", "nope"]) == 2


def test_a_retrain_after_the_scheduled_ingest_trains_on_the_new_rows_and_a_rejection_changes_none(
    prefect_harness, mlflow_dir: Path, tmp_path: Path, store: Path, counted: list[tuple[str, str]]
):
    from pipelines.flows import retrain
    from pipelines.ingest import ingest_drop_folder
    from registry import MlflowStore, MlflowStrategySource, StrategyRegistry

    inbox = tmp_path / "inbox"
    shipped = _retrained_data_hash()
    _drop(inbox, "AAPL.csv", HEADER + NEW_DAYS.replace("161.91,161.91", "170.00,170.00"))
    refused = ingest_drop_folder(inbox=str(inbox), datasets=[DATASET])
    assert refused["rejected"] == 1
    assert _retrained_data_hash() == shipped
    _drop(inbox, "AAPL.csv", HEADER + NEW_DAYS)

    taken = ingest_drop_folder(inbox=str(inbox), datasets=[DATASET])
    outcome = retrain(strategy="ma_crossover", symbols=["AAPL"], notify=False)

    assert (taken["accepted"], taken["new_rows"]) == (1, 3)
    grown = _retrained_data_hash()
    assert grown != shipped
    assert outcome["gate"]["success"] and outcome["gate"]["rows"] == SHIPPED_AAPL_ROWS + 3
    (active,) = MlflowStrategySource(StrategyRegistry(MlflowStore(mlflow_dir))).load_active_set()
    assert active.tags["data_hash"] == grown


def _retrained_data_hash() -> str:
    """The hash a retrain of ma_crossover on AAPL records: of the events a core would admit."""
    from core.backtest.runner import admitted_events
    from core.backtest.streams import stream_for
    from pipelines.governance import stream_hash

    events, _ = admitted_events(stream_for("ma_crossover", DATASET, ["AAPL"]))
    return stream_hash(events)


def test_a_file_name_with_control_characters_and_bad_bytes_is_shown_escaped(
    tmp_path: Path, store: Path, counted: list[tuple[str, str]], capsys: pytest.CaptureFixture
):
    inbox = tmp_path / "inbox"
    (inbox / DATASET).mkdir(parents=True)
    hostile = os.fsdecode(b"AAPL\xff\n2017-09-05 INFO forged.csv")
    (inbox / DATASET / hostile).write_text(HEADER + NEW_DAYS)

    code = main(["ingest", "--inbox", str(inbox), "--json"])

    (item,) = json.loads(capsys.readouterr().out)["files"]
    assert code == 1 and item["accepted"] is False
    assert item["file"] == "AAPL\\udcff\\n2017-09-05 INFO forged.csv"
    assert "\n" not in item["reason"] and "does not list" in item["reason"]
    assert Path(item["moved_to"]).is_file()
    assert counted == [("gate_failed", f"ingest.{DATASET}")]
