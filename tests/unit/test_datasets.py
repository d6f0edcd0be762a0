"""The data-set catalogue points at the files that are really shipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.data.datasets import DATASETS, KINDS, bars_path, data_root, get_dataset, load_bars
from core.errors import DataError

REQUIRED = {
    "equities_daily_stocknet88",
    "etf_daily_pyalgotrade",
    "crypto_l2_binance_hftbacktest",
    "funding_rates_btc_eth_supervik",
    "tweets_timestamped_stocknet",
    "sentiment_twitter_financial_news",
}


def test_the_data_root_is_the_repository_data_folder_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("STRATEGY_ENGINE_DATA", raising=False)

    assert data_root() == Path(__file__).resolve().parents[2] / "data"


def test_the_data_root_can_be_moved_with_an_environment_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STRATEGY_ENGINE_DATA", str(tmp_path))

    assert data_root() == tmp_path
    assert bars_path("etf_daily_pyalgotrade", "GLD") == tmp_path / "etf_daily_pyalgotrade/GLD.csv"


def test_every_catalogued_file_exists_and_every_kind_is_known() -> None:
    assert set(DATASETS) >= REQUIRED
    for dataset in DATASETS.values():
        assert dataset.kind in KINDS, dataset.name
        missing = [p for p in dataset.files() if not p.is_file()]
        assert missing == [], dataset.name


def test_stocknet_lists_the_88_tickers_whose_price_files_are_shipped() -> None:
    dataset = get_dataset("equities_daily_stocknet88")
    shipped = {p.stem for p in (dataset.folder / "prices").glob("*.csv")}

    assert len(dataset.symbols()) == 88
    assert set(dataset.symbols()) == shipped


def test_an_unknown_dataset_name_is_an_error_listing_the_known_names() -> None:
    with pytest.raises(DataError, match=r"unknown dataset 'stocknet'.*equities_daily_stocknet88"):
        get_dataset("stocknet")


def test_an_unknown_symbol_or_a_set_without_bar_files_is_an_error() -> None:
    with pytest.raises(DataError, match=r"no symbol 'TSLA'"):
        bars_path("equities_daily_stocknet88", "TSLA")
    with pytest.raises(DataError, match=r"no per-symbol bar files"):
        bars_path("funding_rates_btc_eth_supervik", "BTC-USDT")


def test_load_bars_reads_the_requested_symbols_of_a_set() -> None:
    loaded = load_bars("etf_daily_pyalgotrade", ["GLD", "GDX"])

    # PROVENANCE: GLD 1,761 rows, GDX 1,664 rows.
    assert {s: len(r.frame) for s, r in loaded.items()} == {"GLD": 1761, "GDX": 1664}
