"""A lineage per data set, and a gate that fails closed (issue #25), on real training runs.

One project, trained three times in order (module scope, so the suite pays for it once):
the default data on pandas (champion v1 of ``churn``), the same data with ``split.method: hash``
(the champion's split differs: only the rows held out from both are compared), then the shared
Iranian file through ``churn init-dataset`` (its own lineage, judged as a first model). Between
them the gate is called directly on real registered versions for the faults no run causes:
a champion whose artefact is broken, another data set's champion under the same name.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from churn.champion import ChampionInfo
from churn.config.identity import identity
from churn.config.params import load_params
from churn.config.settings import get_settings
from churn.data import stages as data_stages
from churn.data import versioning
from churn.data.generator import generate_customers
from churn.release import promotion, registry
from churn.training.stages import featurize
from pipelines.training import training_flow
from tools.fork import fork_project
from tools.real_data import REAL_FILES, init_dataset

pytestmark = pytest.mark.integration

SMALL = {
    "ingest": {"generator": {"n_rows": 2500, "seed": 7}},
    "train": {"search": {"n_trials": 1}},
}
IRANIAN = REAL_FILES["iranian"][0]
DEFAULT = identity().model_name  # the default data's lineage (no dataset.name)


def _client(project: Path) -> MlflowClient:
    return MlflowClient(get_settings(project_dir=project).tracking_uri)


def _edit_params(project: Path, edit: Any) -> None:
    path = project / "params.yaml"
    raw = yaml.safe_load(path.read_text())
    edit(raw)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def _record(project: Path, name: str, version: str) -> ChampionInfo:
    return ChampionInfo.from_version(_client(project).get_model_version(name, version))


def _features(project: Path) -> Any:
    settings = get_settings(project_dir=project)
    return featurize(data_stages.load_splits(settings), load_params(settings.params_path))


@pytest.fixture(scope="module")
def lineage_project(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> dict[str, Any]:
    project = fork_project(tmp_path_factory.mktemp("lineage") / "project", SMALL)
    first = training_flow(str(project), push=False)
    assert first.promoted, first.reason
    return {"project": project, "first": first}


def test_every_version_records_its_lineage_feature_code_and_split(lineage_project):
    project, first = lineage_project["project"], lineage_project["first"]
    record = _record(project, DEFAULT, first.version)
    assert record.lineage is not None and record.lineage.name == DEFAULT
    assert len(record.lineage.fingerprint) == 12
    assert record.feature_code is not None
    assert record.split is not None and record.split.method == "stratified"


def test_a_split_mismatch_compares_only_rows_held_out_from_both(lineage_project, caplog):
    """The pandas-trained champion is never scored on rows it was trained on after the split
    method changes (what `engine.kind: dask` does to `split.method: auto`)."""
    project, first = lineage_project["project"], lineage_project["first"]
    _edit_params(project, lambda raw: raw["split"].update(method="hash"))
    with caplog.at_level(logging.INFO, logger="churn.release.promotion"):
        second = training_flow(str(project), push=False)
    lines = [r.getMessage() for r in caplog.records if "splits differ" in r.getMessage()]
    print(f"gate log: {lines}\ngate: {second.reason}")
    assert len(lines) == 1 and "held out from both" in lines[0]
    # The reason carries it when the champion comparison decided (not the baseline rule).
    assert "splits differ" in second.reason or "baseline" in second.reason
    champion = _record(project, DEFAULT, first.version)
    challenger = _record(project, DEFAULT, second.version)
    assert challenger.split is not None and challenger.split.method == "hash"
    key = load_params(project / "params.yaml").dataset.key_column

    def keys(record: ChampionInfo, split: str) -> set[str]:
        paths = versioning.versioned_paths(project, record.split_md5(split))
        return set(pd.concat([pd.read_parquet(p, columns=[key]) for p in paths])[key].astype(str))

    ours, theirs = keys(challenger, "test"), keys(champion, "test")
    trained_on = keys(champion, "train") | keys(champion, "valid")
    assert ours & trained_on, "the hash split's test rows include the champion's training rows"
    compared = len(ours & theirs)
    assert f"compared on the {compared} of {len(ours)} test rows" in lines[0]
    assert compared < len(ours)


# The gate is called here outside a flow run: Prefect's API log handler says it cannot ship that.
@pytest.mark.filterwarnings("ignore:Logger .* attempted to send logs to the API")
def test_a_champion_that_cannot_score_stops_the_gate(lineage_project, caplog):
    project = lineage_project["project"]
    settings = get_settings(project_dir=project)
    client = _client(project)
    champion = registry.current_champion(client, DEFAULT)
    assert champion is not None
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{DEFAULT}'"))
    other = str(next(v for v in versions if str(v) != str(champion.version)))
    challenger = _record(project, DEFAULT, other)
    # Break the champion's artefact: its pickled pipeline no longer loads.
    logged = client.get_logged_model(str(champion.source).removeprefix("models:/"))
    folder = Path(logged.artifact_location.removeprefix("file://"))
    broken = [p for p in folder.rglob("model.*") if p.suffix in (".skops", ".pkl")]
    assert broken, logged.artifact_location
    for path in broken:
        path.write_bytes(b"not a pickle")
    params = load_params(settings.params_path)
    with caplog.at_level(logging.WARNING, logger="churn.release.promotion"):
        registered = promotion.gate(settings, params, _features(project), challenger)
    print(f"gate: {registered.decision.reason}")
    assert not registered.promoted and registered.recorded == registry.REJECTED
    assert f"champion v{champion.version} cannot score" in registered.decision.reason
    assert "churn promote --force" in registered.decision.reason
    assert registry.current_champion(client, DEFAULT).version == champion.version
    assert any("undecided" in r.getMessage() for r in caplog.records)
    tags = client.get_model_version(DEFAULT, other).tags
    assert tags["promotion.decision"] == registry.REJECTED


@pytest.mark.realdata
@pytest.mark.skipif(not IRANIAN.is_file(), reason=f"{IRANIAN} is absent (../shared/data/README.md)")
def test_a_new_data_set_gets_its_own_lineage_and_is_judged_as_a_first_model(
    lineage_project, caplog
):
    project = lineage_project["project"]
    client = _client(project)
    before = registry.current_champion(client, DEFAULT)
    assert before is not None
    # Feedback exported by `make monitor` on the previous data set: set aside, never a failure.
    feedback = project / "data" / "feedback" / "labelled.parquet"
    feedback.parent.mkdir(parents=True, exist_ok=True)
    generate_customers(20, 3).to_parquet(feedback)
    init_dataset(project, [IRANIAN], "Churn")
    _edit_params(project, lambda raw: raw["train"]["search"].update(n_trials=1))
    assert get_settings(project_dir=project).model_name == "iranian_customer_churn"
    with caplog.at_level(logging.WARNING):
        summary = training_flow(str(project), push=False)
    print(f"gate: {summary.reason}")
    set_aside = [r.getMessage() for r in caplog.records if "set aside" in r.getMessage()]
    assert len(set_aside) == 1 and "lacks the source's columns" in set_aside[0], set_aside
    assert summary.promoted and summary.reason.startswith("no champion yet"), summary.reason
    record = _record(project, "iranian_customer_churn", summary.version)
    assert record.lineage is not None and record.lineage.name == "iranian_customer_churn"
    champion_a = _record(project, DEFAULT, str(before.version))
    assert champion_a.lineage is not None
    assert record.lineage.fingerprint != champion_a.lineage.fingerprint
    # The default data's champion did not move.
    assert registry.current_champion(client, DEFAULT).version == before.version

    # The same data set under the old name: compared with nothing, refused with what to do.
    params = load_params(project / "params.yaml")
    versus = promotion.compare_with_champion(
        client, DEFAULT, record, params, _features(project), project
    )
    print(f"gate (other lineage): {promotion.undecided_reason(versus.refusal, record.version)}")
    assert versus.version == str(before.version) and versus.champion_auc is None
    assert "another data set" in versus.refusal and "dataset.name" in versus.refusal
