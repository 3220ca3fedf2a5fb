"""`churn init-dataset`'s inferences on tiny frames, and the params.yaml it writes."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churn.config.params import IngestParams, Params
from churn.data.params_file import render_params
from churn.data.profiling import ProfileError, profile_files, profile_frame

ROOT = Path(__file__).resolve().parents[3]


def _frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    churn = rng.random(n) < 0.3
    return pd.DataFrame(
        {
            "RowNumber": np.arange(1, n + 1),
            "CustomerId": [f"C{i:05d}" for i in range(n)],
            "Surname": [f"name-{i}" for i in range(n)],
            "Plan": rng.choice([1, 2], n),
            "Balance": rng.normal(1000, 300, n).round(2),
            "Country": rng.choice(["France", "Spain", "Germany"], n),
            "Constant": "x",
            "RefundIssued": np.where(churn, "yes", "no"),  # recorded after the churn: a leak
            "Exited": np.where(churn, "True", "False"),
        }
    )


def test_each_column_gets_its_role_and_reason():
    profile = profile_frame(_frame(), "Exited")
    roles = {c.name: c.role for c in profile.columns}
    assert roles == {
        "Exited": "label",
        "RowNumber": "ignored",
        "CustomerId": "id",
        "Surname": "pii",
        "Plan": "categorical",
        "Balance": "numeric",
        "Country": "categorical",
        "Constant": "ignored",
        "RefundIssued": "ignored",
    }
    why = {c.name: c.why for c in profile.columns}
    assert "row number" in why["RowNumber"] and "constant" in why["Constant"]
    assert "leaks the label" in why["RefundIssued"] and "ROC AUC 1.000" in why["RefundIssued"]
    ds = profile.dataset
    assert ds.id_column == "CustomerId" and ds.pii_columns == ["CustomerId", "Surname"]
    assert ds.categorical["Plan"] == [1, 2]
    assert sorted(ds.ignore_columns) == ["Constant", "RefundIssued", "RowNumber"]


def test_the_positive_label_is_the_minority_unless_given():
    frame = _frame()
    assert profile_frame(frame, "Exited").dataset.positive_label == "True"
    assert profile_frame(frame, "Exited", positive="False").dataset.positive_label == "False"
    # Given as the user types it: compared as data, written as the file holds it.
    frame = frame.assign(Exited=frame["Exited"] == "True")
    assert profile_frame(frame, "Exited", positive="true").dataset.positive_label is True


def test_a_label_that_is_not_binary_lists_its_values():
    frame = _frame().assign(Exited=["a", "b", "c", "d"] * 50)
    with pytest.raises(ProfileError, match=r"holds 4 distinct value\(s\): 'a' \(50 rows\)"):
        profile_frame(frame, "Exited")


def test_a_wrong_positive_or_missing_label_is_named():
    with pytest.raises(ProfileError, match=r"--positive 'VRAI' is not a value"):
        profile_frame(_frame(), "Exited", positive="VRAI")
    with pytest.raises(ProfileError, match=r"--label 'Churn' is not a column"):
        profile_frame(_frame(), "Churn")


def test_without_an_id_like_column_rows_are_keyed_by_content():
    frame = _frame().drop(columns=["CustomerId"])
    profile = profile_frame(frame, "Exited")
    assert profile.dataset.id_column is None and "_row_key" in profile.id_why


def test_small_integer_codes_are_categorical_and_quantities_numeric():
    frame = _frame().assign(Calls=np.arange(200) % 40)
    ds = profile_frame(frame, "Exited").dataset
    assert "Calls" in ds.numeric and ds.numeric["Calls"].integer
    assert ds.numeric["Calls"].min == 0 and ds.numeric["Calls"].max >= 39 * 1.5


def test_numbers_with_blank_cells_are_nullable_numerics():
    frame = _frame().astype({"Balance": object})
    frame.loc[:4, "Balance"] = " "
    spec = profile_frame(frame, "Exited").dataset.numeric["Balance"]
    assert spec.nullable and not spec.integer


def test_a_semicolon_file_with_decimal_commas_is_profiled(tmp_path):
    path = tmp_path / "clients.csv"
    _frame().to_csv(path, sep=";", decimal=",", index=False)
    profile = profile_files([path], "Exited")
    assert (profile.ingest.sep, profile.ingest.decimal) == (";", ",")
    assert "Balance" in profile.dataset.numeric


def test_written_params_keep_other_blocks_and_comments_and_load(tmp_path):
    text = (ROOT / "params.yaml").read_text()
    source = IngestParams(kind="file", path="data/clients.csv")
    profile = profile_frame(_frame(), "Exited", ingest=source)
    rendered, removed = render_params(text, profile)
    params = Params.model_validate(yaml.safe_load(rendered))
    assert params.dataset == profile.dataset and params.ingest.path == "data/clients.csv"
    assert "# Retraining data policy" in rendered and "monitor:" in rendered
    assert "cooldown_hours: 24    # no second retrain" in rendered
    # The Telco derived features and monotone constraint name columns this data lacks.
    assert params.features.ratios == {} and params.train.monotone == {}
    assert "train.monotone.Contract" in removed
    assert any(note.startswith("features.counts.n_services (uses ") for note in removed)
    assert "# leaks the label" in rendered  # each decision is commented in the file


def test_levels_that_yaml_would_read_as_booleans_stay_text():
    frame = _frame().assign(Country=np.where(np.arange(200) % 2, "Yes", "No"))
    source = IngestParams(kind="file", path="data/clients.csv")
    profile = profile_frame(frame, "Exited", ingest=source)
    rendered, _ = render_params((ROOT / "params.yaml").read_text(), profile)
    assert yaml.safe_load(rendered)["dataset"]["categorical"]["Country"] == ["No", "Yes"]


def test_segments_the_data_lacks_are_removed_and_group_columns_suggested():
    """fairness.segments: the template's gender and SeniorCitizen are not in this data; a
    categorical column named for a group of customers (``Gender``) is suggested instead."""
    frame = _frame().assign(Gender=lambda f: np.where(f.index % 2 == 0, "F", "M"))
    source = IngestParams(kind="file", path="data/clients.csv")
    profile = profile_frame(frame, "Exited", ingest=source)
    assert any("fairness.segments: Gender" in note for note in profile.notes)
    rendered, removed = render_params((ROOT / "params.yaml").read_text(), profile)
    params = Params.model_validate(yaml.safe_load(rendered))
    assert params.fairness.segments == ["Gender"]
    assert {"fairness.segments gender", "fairness.segments SeniorCitizen"} <= set(removed)
    # Without such a column, the list is left empty (nothing is measured per segment).
    rendered, _ = render_params(
        (ROOT / "params.yaml").read_text(), profile_frame(_frame(), "Exited", ingest=source)
    )
    assert Params.model_validate(yaml.safe_load(rendered)).fairness.segments == []


def test_init_dataset_dry_run_prunes_each_kind_whose_columns_the_data_lacks(tmp_path):
    """``features.differences`` enabled: ``churn init-dataset --dry-run`` keeps the entry whose
    columns the data has, removes (and names) the one it lacks, as for the other kinds."""
    from typer.testing import CliRunner

    from pipelines.cli.commands import app

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    text = re.sub(
        r"\n  differences: \{\}[^\n]*",
        "\n  differences:\n    kept: [Balance, Plan]\n    gone: [TotalCharges, MonthlyCharges]",
        (ROOT / "params.yaml").read_text(),
    )
    assert raw["features"]["differences"] == {} and "kept: [Balance" in text
    (tmp_path / "params.yaml").write_text(text)
    frame = _frame().assign(Plan=lambda f: f["Balance"] // 10)  # a number, not a code
    frame.to_csv(tmp_path / "clients.csv", index=False)
    data = str(tmp_path / "clients.csv")
    args = ["-C", str(tmp_path), "init-dataset", data, "--label", "Exited"]
    result = CliRunner().invoke(app, [*args, "--dry-run"])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "features.differences.gone (uses ['TotalCharges', 'MonthlyCharges'])" in out
    assert "features.differences.kept" not in out
    assert "--dry-run: params.yaml unchanged" in out
    assert (tmp_path / "params.yaml").read_text() == text
    profile = profile_frame(frame, "Exited", ingest=IngestParams(kind="file", path=data))
    rendered, removed = render_params(text, profile)
    params = Params.model_validate(yaml.safe_load(rendered))
    assert params.features.differences["kept"].reads() == ("Balance", "Plan")
    assert "gone" not in params.features.differences
    assert any(note.startswith("features.differences.gone") for note in removed)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    levels=st.lists(st.text(min_size=1, max_size=10), min_size=1, max_size=8, unique=True),
    name=st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=8),
)
def test_any_text_level_or_column_name_reads_back_as_itself(tmp_path_factory, levels, name):
    """Whatever the text (YAML indicators, booleans, numbers as text, control characters,
    unicode), the written params.yaml loads through the project's own loader to the very levels
    and column name the frame holds."""
    from churn.config.params import load_params

    n = 40
    plan = ([lv for lv in levels for _ in range(3)] + ["zz-text"] * n)[:n]
    frame = pd.DataFrame(
        {
            name if name not in ("Churn", "tenure") else "x" + name: plan,
            "tenure": range(n),
            "Churn": ["Yes" if i % 4 == 0 else "No" for i in range(n)],
        }
    )
    frame = frame.sample(frac=1, random_state=0).reset_index(drop=True)
    column = frame.columns[0]
    profile = profile_frame(frame, "Churn", ingest=IngestParams(kind="file", path="c.csv"))
    assert column in profile.dataset.categorical, profile.columns  # text: categorical
    rendered, _ = render_params((ROOT / "params.yaml").read_text(), profile)
    path = tmp_path_factory.mktemp("params") / "params.yaml"
    path.write_text(rendered, encoding="utf-8")
    loaded = load_params(path).dataset
    assert loaded.categorical[column] == profile.dataset.categorical[column]
    assert set(loaded.categorical[column]) == set(frame[column])


def test_an_integer_id_is_recorded_as_one_and_a_text_id_is_not(tmp_path):
    """The id's type as the file has it: ``id_type: integer`` written (and read back) for a
    column of integers such as the bank file's ``CustomerId`` 15634602; nothing for text."""
    frame = _frame()
    frame["CustomerId"] = np.arange(15634602, 15634602 + len(frame))
    source = IngestParams(kind="file", path="data/clients.csv")
    profile = profile_frame(frame, "Exited", ingest=source)
    assert profile.dataset.id_column == "CustomerId" and profile.dataset.id_type == "integer"
    rendered, _ = render_params((ROOT / "params.yaml").read_text(), profile)
    assert re.search(r"^  id_type: integer +# integers in the file", rendered, re.M), rendered
    assert Params.model_validate(yaml.safe_load(rendered)).dataset.id_type == "integer"
    text_id = profile_frame(_frame(), "Exited", ingest=source)
    assert text_id.dataset.id_type == "string"
    assert "id_type" not in render_params((ROOT / "params.yaml").read_text(), text_id)[0]
