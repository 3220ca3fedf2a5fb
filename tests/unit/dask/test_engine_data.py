"""The pieces of the dask engine's data stages that need no cluster: parts, hash split, reports."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

pytest.importorskip(
    "distributed", reason="the optional dask group is not installed (uv sync --extra dask)"
)

from churn.config.params import IngestParams, Params, SplitParams, load_params
from churn.dask.data import merge_reports
from churn.data.generator import generate_customers, generate_part, part_sizes
from churn.data.ingest import IngestError, source_files
from churn.data.split import hash_assign, split_frame
from churn.data.validate import ValidationReport

ROOT = Path(__file__).resolve().parents[3]


def _params(**sections: dict) -> Params:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name, values in sections.items():
        raw[name] = {**raw[name], **values}
    return Params.model_validate(raw)


def test_one_part_is_the_default_data_set_and_parts_never_share_an_id():
    assert generate_part(1000, 42, 0, 5000).equals(generate_customers(1000, 42))
    assert part_sizes(10_500, 5000) == [5000, 5000, 500]
    parts = [generate_part(10_500, 42, i, 5000) for i in range(3)]
    ids = pd.concat([p["customerID"] for p in parts])
    assert ids.is_unique and len(ids) == 10_500
    assert parts[2]["customerID"].str.startswith("002-").all()
    assert not parts[0]["Churn"].equals(parts[1]["Churn"])  # each part has its own seed
    with pytest.raises(ValueError, match="part 3 out of range"):
        generate_part(10_500, 42, 3, 5000)


def test_hash_split_gives_each_row_its_split_whatever_the_partitioning():
    params = load_params(ROOT / "params.yaml")
    frame = generate_customers(20_000, 5)
    whole = hash_assign(frame, params.dataset, params.split)
    pieces = [
        hash_assign(frame.iloc[i : i + 3000], params.dataset, params.split)
        for i in range(0, 20_000, 3000)
    ]
    assert (pd.Series(whole) == pd.Series([x for p in pieces for x in p])).all()
    shares = pd.Series(whole).value_counts(normalize=True)
    assert shares["test"] == pytest.approx(0.2, abs=0.01)
    assert shares["valid"] == pytest.approx(0.15, abs=0.01)
    # Another seed moves rows between splits; the same seed never does.
    other = hash_assign(frame, params.dataset, SplitParams(seed=1))
    assert (other != whole).mean() > 0.3
    parts = split_frame(frame, params.dataset, params.split, "hash")
    assert {n: len(p) for n, p in parts.items()} == pd.Series(whole).value_counts().to_dict()


def test_the_dask_engine_implies_the_hash_split_and_refuses_the_others():
    assert _params().split_method == "stratified"
    assert _params(engine={"kind": "dask"}).split_method == "hash"
    assert _params(split={"method": "hash"}).split_method == "hash"
    with pytest.raises(ValueError, match=r"split\.method: hash"):
        _params(engine={"kind": "dask"}, split={"method": "stratified"})
    with pytest.raises(ValueError, match=r"dataset\.time_column"):
        _params(engine={"kind": "dask"}, dataset={"time_column": "signup"})


def test_a_directory_source_stands_for_its_parts(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    for name in ("part-1.parquet", "part-0.csv", "notes.txt"):
        (folder / name).write_text("x")
    source = IngestParams(kind="file", path="parts")
    assert [p.name for p in source_files(source, tmp_path)] == ["part-0.csv", "part-1.parquet"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(IngestError, match="directory without Parquet or CSV"):
        source_files(IngestParams(kind="file", path="empty"), tmp_path)


def test_part_reports_add_up_to_the_data_set_report():
    a = ValidationReport(100, 95, 5, 0.05, {"tenure: ge": 3, "Contract: isin": 2})
    b = ValidationReport(300, 290, 10, 10 / 300, {"Contract: isin": 6, "tenure: ge": 4})
    merged = merge_reports([a, b])
    assert (merged.n_rows, merged.n_valid, merged.n_quarantined) == (400, 385, 15)
    assert merged.quarantined_share == pytest.approx(15 / 400)
    assert list(merged.reasons.items()) == [("Contract: isin", 8), ("tenure: ge", 7)]


def test_the_training_deployment_runs_on_the_configured_scheduler(tmp_path):
    from churn.config.settings import get_settings
    from pipelines.deployments import build_deployments

    training, _ = build_deployments(get_settings(project_dir=tmp_path))
    assert not (training.job_variables or {}).get("env")
    settings = get_settings(project_dir=tmp_path, dask_scheduler="tcp://scheduler:8786")
    training, _ = build_deployments(settings)
    assert training.job_variables["env"] == {"CHURN_DASK_SCHEDULER": "tcp://scheduler:8786"}
