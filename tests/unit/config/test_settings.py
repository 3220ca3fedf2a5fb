"""The one settings object: one name per location, defaults inside the project, loud typos."""

from __future__ import annotations

import logging

import pytest

from churn.config import settings as settings_module
from churn.config.settings import Settings, get_settings


def test_every_location_has_one_name_and_a_default_inside_the_project(tmp_path):
    s = get_settings(project_dir=tmp_path)
    assert s.prediction_log_url == f"sqlite:///{tmp_path / 'data/predictions/predictions.db'}"
    assert s.labels_url == s.prediction_log_url  # labels live beside predictions by default
    assert s.tracking_uri == f"sqlite:///{tmp_path / 'mlruns/mlflow.db'}" and s.tracking_is_local
    assert s.model_cache_dir == tmp_path / ".serving-cache"
    assert s.reports_dir == tmp_path / "reports"
    assert s.params_path == tmp_path / "params.yaml"


def test_relative_paths_are_in_the_project_and_urls_are_kept(tmp_path):
    s = get_settings(
        project_dir=tmp_path,
        model_cache_dir="cache",
        prediction_log_url="postgresql+psycopg://u@db/app",
        tracking_uri="http://mlflow:5000",
    )
    assert s.model_cache_dir == tmp_path / "cache"
    assert s.labels_url == "postgresql+psycopg://u@db/app"
    assert not s.tracking_is_local and s.artifact_location is None


def test_a_variable_that_names_no_setting_is_reported_with_the_closest_name(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(settings_module, "_warned", set())
    monkeypatch.setenv("CHURN_SERVING_CACHE_DIR", "cache")  # the old name of model_cache_dir
    monkeypatch.setenv("CHURN_TEST_DATABASE_URL", "postgresql://x")  # read by the tests: known
    with caplog.at_level(logging.WARNING, logger="churn.config.settings"):
        get_settings(project_dir=tmp_path)
        get_settings(project_dir=tmp_path)  # once per process, not per call
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "CHURN_SERVING_CACHE_DIR is not a setting and is ignored; did you mean "
        "CHURN_MODEL_CACHE_DIR?"
    ]


@pytest.mark.parametrize("name", ["CHURN_API_KEY", "CHURN_TRACKING_URI", "CHURN_REAL_DATA"])
def test_known_variables_are_not_reported(name):
    assert settings_module.unknown_variables({name: "x"}) == {}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("a", "is shorter than 32 characters"),
        ("password", "is a placeholder"),
        ("CHANGE_ME", "is a placeholder"),
        (" change-me ", "is a placeholder"),
        (" ", "is a placeholder"),
        ("Secret", "is a placeholder"),
        ("x9f8e7d6c5b4a3", "is shorter than 32 characters"),
        ("k" * 31, "is shorter than 32 characters"),
    ],
)
def test_weak_keys_are_refused_outside_development_with_the_reason(tmp_path, value, reason):
    with pytest.raises(settings_module.SettingsError) as caught:
        get_settings(project_dir=tmp_path, environment="production", api_key=value)
    message = str(caught.value)
    assert f"CHURN_API_KEY {reason}" in message and "token_urlsafe(32)" in message
    if len(value.strip()) > 3:
        assert value.strip() not in message


def test_weak_keys_are_accepted_in_development(tmp_path):
    assert get_settings(project_dir=tmp_path, api_key="dev").api_key is not None


def test_a_settings_error_never_shows_an_input(tmp_path):
    url = "postgresql+psycopg://app:db-Passw0rd@db/app"
    with pytest.raises(settings_module.SettingsError) as caught:
        get_settings(
            project_dir=tmp_path,
            environment="production",
            api_key="secret",
            id_hash_key="alHmacKey-9f8e7d6c5b4a",
            prediction_log_url=url,
            max_records="many",
        )
    message = str(caught.value)
    assert "CHURN_MAX_RECORDS: Input should be a valid integer" in message
    assert "Passw0rd" not in message and "9f8e7d6c5b4a" not in message
    assert "input_value" not in message


def test_churn_env_is_warned_about_as_the_environment_it_is_not(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(settings_module, "_warned", set())
    monkeypatch.setenv("CHURN_ENV", "production")
    with caplog.at_level(logging.WARNING, logger="churn.config.settings"):
        assert get_settings(project_dir=tmp_path).environment == "development"
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "did you mean CHURN_ENVIRONMENT?" in warning and "keys are NOT required" in warning


def test_the_registered_model_is_the_data_sets_lineage(tmp_path, monkeypatch):
    """dataset.name wins; CHURN_MODEL_NAME names data sets without one; else the identity's."""
    from churn.config.identity import identity

    monkeypatch.delenv("CHURN_MODEL_NAME", raising=False)
    params = tmp_path / "params.yaml"
    params.write_text("dataset:\n  label_column: Churn\n")
    assert Settings(project_dir=tmp_path).model_name == identity().model_name
    monkeypatch.setenv("CHURN_MODEL_NAME", "staging")
    assert Settings(project_dir=tmp_path).model_name == "staging"
    params.write_text("dataset:\n  name: telco_b\n  label_column: Churn\n")
    assert Settings(project_dir=tmp_path).model_name == "telco_b"
    params.write_text("dataset: [not, a, mapping\n")  # load_params reports it where it is read
    assert Settings(project_dir=tmp_path).model_name == "staging"
