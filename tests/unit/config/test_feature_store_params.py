"""params.yaml's feature_store block: off by default, validated, refused without events."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from churn import feature_source
from churn.config.params import Params, load_params

ROOT = Path(__file__).resolve().parents[3]


def _params(ingest: dict | None = None, **store: object) -> Params:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["feature_store"] = {**raw["feature_store"], **store}
    raw["ingest"] = {**raw["ingest"], **(ingest or {})}
    return Params.model_validate(raw)


def test_the_store_is_off_in_the_shipped_params_and_nothing_is_imported() -> None:
    params = load_params(ROOT / "params.yaml")
    assert params.feature_store.enabled is False
    assert feature_source.feature_store(params) is None


def test_the_feature_names_follow_the_windows() -> None:
    store = _params(windows_days=[30, 7]).feature_store
    assert store.windows_days == (7, 30)
    assert store.feature_names() == [
        "login_count_7d",
        "support_call_count_7d",
        "payment_failed_count_7d",
        "login_count_30d",
        "support_call_count_30d",
        "payment_failed_count_30d",
        "days_since_login",
        "days_since_support_call",
        "days_since_payment_failed",
    ]


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ({"windows_days": [7, 7]}, "feature_store.windows_days must be distinct"),
        ({"windows_days": []}, "feature_store.windows_days is empty"),
        ({"snapshot_hours": 0}, "snapshot_hours"),
        ({"online_store": "cassandra"}, "online_store"),
        ({"refresh": 1}, "refresh"),
    ],
)
def test_a_bad_block_names_its_field(store: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _params(**store)


def test_a_data_set_of_ones_own_cannot_switch_the_store_on() -> None:
    with pytest.raises(ValidationError, match="only the generated data set has"):
        _params({"kind": "file", "path": "data/mine.csv"}, enabled=True)


def test_a_missing_library_is_named_with_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feature_source, "STORE_MODULE", "churn.feature_store_absent_i30.store")
    with pytest.raises(ValueError, match=r"needs 'churn.feature_store_absent_i30'.*--extra feast"):
        feature_source.feature_store(_params(enabled=True))
