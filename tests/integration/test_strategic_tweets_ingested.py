"""The strategic news flow reads the tweets ingested after the shipped file, as a retrain does."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.data.datasets import INGESTED_ENV_VAR
from pipelines.ingest import ingest_inbox
from pipelines.strategic import shipped_tweets

pytestmark = pytest.mark.integration

DATASET = "tweets_timestamped_stocknet"
NEW = (
    "ticker,file_date,created_at_utc,text\n"
    'KO,2016-01-04,2016-01-04 15:00:00,"coca-cola beats estimates , raises dividend $ ko"\n'
)


def test_the_news_flow_scores_the_tweets_ingested_after_the_shipped_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv(INGESTED_ENV_VAR, str(tmp_path / "ingested"))
    before = shipped_tweets()
    folder = tmp_path / "inbox" / DATASET
    folder.mkdir(parents=True)
    (folder / "tweets-2016-01.csv").write_text(NEW)

    (item,) = ingest_inbox(tmp_path / "inbox")["files"]

    assert item["accepted"], item["reason"]
    after = shipped_tweets()
    assert len(after) == len(before) + 1
    assert after.iloc[-1]["text"] == "coca-cola beats estimates , raises dividend $ ko"
    assert after.iloc[: len(before)].equals(before)
