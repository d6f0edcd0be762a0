"""Promotion decided by evidence the registry checks itself, never by a tag, in a real MLflow store.

Each refusal is of a version someone with MLflow access prepared by hand (tags set, artifacts
rewritten, runs marked); each must raise ``ValidationGateFailed`` naming what is missing, and the
champion must stay where it was.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException

from core.errors import ValidationGateFailed
from pipelines import learning
from registry import StrategyRegistry
from registry.artifacts import local_folder
from tests.evidence import validated
from tests.fixtures_mlflow import FAILED, PASSED

pytestmark = pytest.mark.integration

NAME = "strategy.ma_crossover"
DATA_HASH = "sha256:aapl-2012"
# The champion's fast period; fast 5 beats it on the held-out AAPL window, fast 12 does not.
CHAMPION_FAST = 8


def _register(
    registry: StrategyRegistry, fast: int, validation: dict | None = None, against: str = ""
) -> str:
    """Register a version; without ``validation``, a passed gate with its evidence evaluated
    against the champion version ``against`` (fast period 8)."""
    config = {"fast_period": fast, "slow_period": 20}
    met = (against, {**config, "fast_period": CHAMPION_FAST}) if against else None
    return registry.register(
        "ma_crossover",
        config,
        data_hash=DATA_HASH,
        validation=validation if validation is not None else validated(config, champion=met),
        symbols=("AAPL",),
    ).version


def _with_report(
    registry: StrategyRegistry, fast: int, change: Callable[[dict[str, Any]], None]
) -> str:
    """Register a version whose honest report (evidence against no champion) ``change`` edits
    before registration: what code that skips or fakes a check would register."""
    report = validated({"fast_period": fast, "slow_period": 20})
    change(report)
    return _register(registry, fast, validation=report)


@pytest.fixture
def champion(registry: StrategyRegistry) -> str:
    """A legitimately validated version, promoted: what every refusal must leave in place."""
    version = _register(registry, fast=CHAMPION_FAST)
    registry.promote(NAME, version)
    return version


def _refused(registry: StrategyRegistry, version: str, champion: str, match: str) -> None:
    with pytest.raises(ValidationGateFailed, match=match) as refusal:
        registry.promote(NAME, version)
    assert refusal.value.report["version"] == version
    assert registry.get_alias(NAME, "champion") == champion
    assert registry.get_alias(NAME, "previous") is None


def _report_file(registry: StrategyRegistry, version: str) -> Path:
    run_id = registry.model_version(NAME, version).run_id
    folder = local_folder(registry.client.get_run(run_id).info.artifact_uri)
    assert folder is not None
    return folder / "validation.json"


def test_a_validated_version_promotes_on_its_own_evidence(
    registry: StrategyRegistry, champion: str
) -> None:
    challenger = _register(registry, fast=5, against=champion)

    evidence = registry.check_evidence(registry.model_version(NAME, challenger))
    registry.promote(NAME, challenger, data_hash=DATA_HASH)

    assert evidence == {
        "run_id": registry.model_version(NAME, challenger).run_id,
        "suite": "bars_daily",
        "data_hash": DATA_HASH,
        "evaluated_against": champion,
    }
    assert registry.get_alias(NAME, "champion") == challenger
    assert registry.get_alias(NAME, "previous") == champion


def test_a_hand_set_validation_tag_without_a_validation_run_is_refused(
    registry: StrategyRegistry, champion: str
) -> None:
    # A version made straight through the MLflow client: a run holding only a document.
    client = registry.client
    run = client.create_run(registry.store.experiment_id())
    document = {"type": "ma_crossover", "config": {"fast_period": 9}, "schema_version": 1}
    client.log_text(run.info.run_id, json.dumps(document), "model/data/strategy.json")
    client.set_terminated(run.info.run_id)
    forged = client.create_model_version(
        NAME,
        source=f"{run.info.artifact_uri}/model",
        run_id=run.info.run_id,
        tags={"validation_success": "true", "data_hash": DATA_HASH},
    ).version

    _refused(
        registry,
        str(forged),
        champion,
        match=rf"{NAME} version {forged} not promoted: it records no validation run "
        r"\(no 'validation_run_id' tag\); a 'validation_success' tag alone is not evidence",
    )


def test_a_hand_set_tag_naming_another_versions_validation_run_is_refused(
    registry: StrategyRegistry, champion: str
) -> None:
    client = registry.client
    run = client.create_run(registry.store.experiment_id())
    client.set_terminated(run.info.run_id)
    borrowed = registry.model_version(NAME, champion).run_id
    forged = client.create_model_version(
        NAME,
        source=f"{run.info.artifact_uri}/model",
        run_id=run.info.run_id,
        tags={"validation_success": "true", "validation_run_id": borrowed, "data_hash": DATA_HASH},
    ).version

    _refused(
        registry,
        str(forged),
        champion,
        match=f"validation run {borrowed} did not log this version",
    )


def test_a_failed_version_whose_tag_was_flipped_to_true_is_refused(
    registry: StrategyRegistry, champion: str
) -> None:
    failed = _register(registry, fast=5, validation=FAILED)
    registry.client.set_model_version_tag(NAME, failed, "validation_success", "true")

    _refused(
        registry, failed, champion, match=f"version {failed} failed validation suite 'bars_daily'"
    )


def test_a_report_rewritten_to_say_failure_is_refused(
    registry: StrategyRegistry, champion: str
) -> None:
    challenger = _register(registry, fast=5, against=champion)
    report = _report_file(registry, challenger)
    report.write_text(json.dumps({**FAILED, "data_hash": DATA_HASH}))

    _refused(
        registry,
        challenger,
        champion,
        match=r"validation\.json of validation run \w+ was changed after the run recorded it",
    )


def test_a_failed_report_rewritten_to_say_success_is_refused(
    registry: StrategyRegistry, champion: str
) -> None:
    failed = _register(registry, fast=5, validation=FAILED)
    report = _report_file(registry, failed)
    report.write_text(json.dumps({**validated({"fast_period": 5}), "data_hash": DATA_HASH}))
    registry.client.set_model_version_tag(NAME, failed, "validation_success", "true")

    _refused(registry, failed, champion, match="was changed after the run recorded it")


def test_a_version_whose_data_hash_tag_differs_from_its_validation_is_refused(
    registry: StrategyRegistry, champion: str
) -> None:
    challenger = _register(registry, fast=5, against=champion)
    registry.client.set_model_version_tag(NAME, challenger, "data_hash", "sha256:other-data")

    _refused(
        registry,
        challenger,
        champion,
        match=rf"data hashes disagree: validation report '{DATA_HASH}', "
        rf"validation run '{DATA_HASH}', version tag 'sha256:other-data'",
    )


def test_a_data_hash_recomputed_from_other_data_is_refused(
    registry: StrategyRegistry, champion: str
) -> None:
    challenger = _register(registry, fast=5, against=champion)

    with pytest.raises(ValidationGateFailed, match="recomputed from the data 'sha256:new-data'"):
        registry.promote(NAME, challenger, data_hash="sha256:new-data")

    assert registry.get_alias(NAME, "champion") == champion


def test_a_validation_run_that_did_not_finish_is_refused(
    registry: StrategyRegistry, champion: str
) -> None:
    challenger = _register(registry, fast=5, against=champion)
    run_id = registry.model_version(NAME, challenger).run_id
    registry.client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))

    _refused(
        registry, challenger, champion, match=f"validation run {run_id} is FAILED, not FINISHED"
    )


def test_a_deleted_validation_run_is_refused(registry: StrategyRegistry, champion: str) -> None:
    challenger = _register(registry, fast=5, against=champion)
    run_id = registry.model_version(NAME, challenger).run_id
    registry.client.delete_run(run_id)

    _refused(registry, challenger, champion, match=f"validation run {run_id} is deleted")


def test_a_report_replaced_by_a_link_is_refused(
    registry: StrategyRegistry, champion: str, tmp_path: Path
) -> None:
    challenger = _register(registry, fast=5, against=champion)
    report = _report_file(registry, challenger)
    copy = tmp_path / "validation.json"
    shutil.copy(report, copy)
    report.unlink()
    report.symlink_to(copy)

    _refused(
        registry, challenger, champion, match="validation.json is a symbolic link, not a regular"
    )


def test_the_pinned_evidence_cannot_be_logged_again_with_another_value(
    registry: StrategyRegistry,
) -> None:
    # What makes a rewritten report detectable: MLflow refuses to change a logged param.
    run_id = registry.model_version(NAME, _register(registry, fast=5)).run_id

    for key in ("evidence.validation_sha256", "evidence.data_hash"):
        with pytest.raises(MlflowException, match="Changing param values is not allowed"):
            registry.client.log_param(run_id, key, "sha256:forged")

    assert registry.client.get_run(run_id).data.params["evidence.data_hash"] == DATA_HASH


# -- look-ahead and evaluation evidence ------------------------------------------------------------


def test_a_version_registered_before_the_lookahead_and_evaluation_evidence_is_refused(
    registry: StrategyRegistry, champion: str
) -> None:
    older = _register(registry, fast=5, validation=PASSED)

    _refused(
        registry,
        older,
        champion,
        match="registered before look-ahead/evaluation evidence .*; retrain it",
    )


def test_a_version_with_evidence_replaces_a_champion_registered_before_the_evidence(
    registry: StrategyRegistry,
) -> None:
    older = _register(registry, fast=5, validation=PASSED)
    # What an earlier release promoted (or a hand-moved alias): no core runs it now.
    registry.client.set_registered_model_alias(NAME, "champion", older)
    assert "registered before look-ahead/evaluation evidence" in registry.champion_problem(NAME)
    assert learning.champion_config(registry, "ma_crossover") == (None, None)
    newer = _register(registry, fast=12)  # measured against no champion

    assert registry.promote(NAME, newer) is True

    assert (registry.get_alias(NAME, "champion"), registry.get_alias(NAME, "previous")) == (
        newer,
        older,
    )
    assert registry.champion_problem(NAME) is None
    # Once the champion has evidence, a version measured against no champion is stale again.
    third = _register(registry, fast=5)
    with pytest.raises(ValidationGateFailed, match="its evaluation is stale: it met no champion"):
        registry.promote(NAME, third)
    assert registry.get_alias(NAME, "champion") == newer


def test_a_version_without_a_lookahead_check_is_refused(registry: StrategyRegistry) -> None:
    version = _with_report(registry, 5, lambda report: report.pop("lookahead"))

    with pytest.raises(ValidationGateFailed, match="it records no look-ahead check"):
        registry.promote(NAME, version)

    assert registry.get_alias(NAME, "champion") is None


def test_a_version_whose_lookahead_check_found_violations_is_refused(
    registry: StrategyRegistry,
) -> None:
    def violated(report: dict[str, Any]) -> None:
        report["lookahead"].update(violations=3, passed=False)

    version = _with_report(registry, 5, violated)

    with pytest.raises(ValidationGateFailed, match=r"look-ahead check \(prefix\) found 3 of"):
        registry.promote(NAME, version)

    assert registry.get_alias(NAME, "champion") is None


def test_a_lookahead_section_that_says_passed_over_violations_is_refused(
    registry: StrategyRegistry,
) -> None:
    version = _with_report(registry, 5, lambda report: report["lookahead"].update(violations=1))

    with pytest.raises(ValidationGateFailed, match="found 1 of"):
        registry.promote(NAME, version)


def test_a_version_without_an_evaluation_is_refused(registry: StrategyRegistry) -> None:
    version = _with_report(registry, 5, lambda report: report.pop("evaluation"))

    with pytest.raises(ValidationGateFailed, match="it records no evaluation against the champ"):
        registry.promote(NAME, version)

    assert registry.get_alias(NAME, "champion") is None


def test_a_challenger_below_the_champion_plus_the_margin_is_refused(
    registry: StrategyRegistry, champion: str
) -> None:
    # Fast 12 truly scores below the champion's fast 8 on the held-out window.
    weaker = _register(registry, fast=12, against=champion)
    evaluation = json.loads(_report_file(registry, weaker).read_text())["evaluation"]

    assert evaluation["challenger"] < evaluation["champion"]
    _refused(registry, weaker, champion, match=f"does not beat champion version {champion} by")


def test_a_lead_smaller_than_the_recorded_margin_is_refused(
    registry: StrategyRegistry, champion: str
) -> None:
    report = validated({"fast_period": 5, "slow_period": 20}, champion=(champion, {
        "fast_period": CHAMPION_FAST, "slow_period": 20}))  # fmt: skip
    lead = report["evaluation"]["challenger"] - report["evaluation"]["champion"]
    report["evaluation"]["margin"] = lead + 0.01
    version = _register(registry, 5, validation=report)

    _refused(registry, version, champion, match="margin")


def test_an_evaluation_against_a_champion_that_was_since_replaced_is_stale_and_refused(
    registry: StrategyRegistry, champion: str
) -> None:
    against_first = _register(registry, fast=5, against=champion)
    also_against_first = _register(registry, fast=7, against=champion)
    registry.promote(NAME, against_first)

    with pytest.raises(
        ValidationGateFailed,
        match=rf"its evaluation is stale: it met champion version {champion}, the champion is "
        rf"now version {against_first}",
    ):
        registry.promote(NAME, also_against_first)

    assert registry.get_alias(NAME, "champion") == against_first
    assert registry.get_alias(NAME, "previous") == champion


def test_an_evaluation_that_met_no_champion_cannot_replace_one(
    registry: StrategyRegistry, champion: str
) -> None:
    alone = _register(registry, fast=5)

    _refused(registry, alone, champion, match="it met no champion, the champion is now version")


def test_rollback_needs_no_fresh_evaluation(registry: StrategyRegistry, champion: str) -> None:
    challenger = _register(registry, fast=5, against=champion)
    registry.promote(NAME, challenger)

    restored = registry.rollback(NAME)

    # The restored version met no champion when it was promoted; the core still loads it.
    assert restored == champion
    assert registry.check_evidence(registry.model_version(NAME, champion))["data_hash"]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=12,
)  # fmt: skip
_SECTION = (
    st.dictionaries(
        st.sampled_from(
            [
                "method",
                "checked",
                "violations",
                "passed",
                "objective",
                "challenger",
                "champion",
                "champion_version",
                "margin",
            ]
        ),
        _JSON,
    )
    | _JSON
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lookahead=_SECTION, evaluation=_SECTION)
def test_a_hostile_validation_report_is_a_clean_refusal_or_a_promotion_never_a_crash(
    registry: StrategyRegistry, lookahead: Any, evaluation: Any
) -> None:
    version = _register(
        registry, 5, validation={**PASSED, "lookahead": lookahead, "evaluation": evaluation}
    )

    try:
        registry.promote(NAME, version)
    except ValidationGateFailed as refusal:
        assert f"{NAME} version {version} not promoted: " in str(refusal)
        assert "\n" not in str(refusal)
    else:
        assert registry.get_alias(NAME, "champion") == version
