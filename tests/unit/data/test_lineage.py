"""A data set's lineage and split identity, and their round trip through the champion record."""

from __future__ import annotations

from churn.champion import ChampionInfo
from churn.config.params import load_params
from churn.data.lineage import lineage_of, split_identity
from churn.features.version import FEATURE_CODE_VERSION


def _record(**extra: object) -> ChampionInfo:
    return ChampionInfo(
        decision_threshold=0.2,
        test_roc_auc=0.84,
        baseline_test_roc_auc=0.83,
        data_version="abc",
        data_files={"data/splits/test.parquet": "m"},
        git_commit="c",
        trained_at="2026-12-07T00:00:00Z",
        **extra,  # type: ignore[arg-type]
    )


def test_lineage_ignores_levels_but_not_columns_or_roles() -> None:
    params = load_params()
    base = lineage_of(params.dataset, "churn")
    more_levels = params.dataset.model_copy(
        update={"categorical": {**params.dataset.categorical, "Contract": ["a", "b"]}}
    )
    assert lineage_of(more_levels, "churn").fingerprint == base.fingerprint
    fewer_columns = params.dataset.model_copy(
        update={"numeric": {k: v for k, v in params.dataset.numeric.items() if k != "tenure"}}
    )
    assert lineage_of(fewer_columns, "churn").fingerprint != base.fingerprint
    other_label = params.dataset.model_copy(
        update={"positive_label": "No", "negative_label": "Yes"}
    )
    assert lineage_of(other_label, "churn").fingerprint != base.fingerprint


def test_record_round_trips_lineage_split_and_feature_code() -> None:
    params = load_params()
    record = _record(
        lineage=lineage_of(params.dataset, "churn"),
        feature_code=FEATURE_CODE_VERSION,
        split=split_identity(params),
    )
    back = ChampionInfo.from_tags(record.to_tags(), version="3")
    assert back.lineage == record.lineage
    assert back.split == record.split
    assert back.feature_code == FEATURE_CODE_VERSION
    assert back.split is not None and back.split.method == params.split_method


def test_older_records_have_no_lineage() -> None:
    back = ChampionInfo.from_tags(_record().to_tags(), version="1")
    assert back.lineage is None and back.split is None and back.feature_code is None
