"""What real files need: separators, encodings, decimal marks, several files, labels as data, no
id column, and the clear errors when a file cannot be what the configuration says."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from churn.config.params import ROW_KEY, IngestParams, Params, label_text
from churn.data.contract import row_keys
from churn.data.ingest import IngestError, detect_csv_format, read_source
from churn.data.split import label_vector
from churn.data.validate import ContractError, validate_frame

ROOT = Path(__file__).resolve().parents[3]


def _raw_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def _file(tmp_path: Path, text: str, name: str = "c.csv", encoding: str = "utf-8") -> IngestParams:
    (tmp_path / name).write_bytes(text.encode(encoding))
    return IngestParams(kind="file", path=name)


@pytest.mark.parametrize(
    ("text", "sep", "decimal"),
    [
        ("a,b,c\n1,2.5,x\n2,3.5,y\n", ",", "."),
        ("a;b;c\n1;2,5;x\n2;3,5;y\n", ";", ","),
        ("a\tb\tc\n1\t2.5\tx\n2\t3.5\ty\n", "\t", "."),
        ("a|b|c\n1|2.5|x\n2|3.5|y\n", "|", "."),
    ],
)
def test_the_separator_and_decimal_mark_are_detected(tmp_path, text, sep, decimal):
    fmt = detect_csv_format(text.encode())
    assert (fmt.sep, fmt.decimal) == (sep, decimal)
    source = _file(tmp_path, text)
    frame = read_source(source.model_copy(update={"decimal": decimal}), base_dir=tmp_path)
    assert list(frame.columns) == ["a", "b", "c"]
    assert frame["b"].tolist() == [2.5, 3.5]


def test_a_latin1_file_is_detected_and_read_with_the_configured_encoding(tmp_path):
    text = "name;plan\nJosé;1\nRenée;2\n"
    assert detect_csv_format(text.encode("cp1252")).encoding == "cp1252"
    source = _file(tmp_path, text, encoding="cp1252")
    with pytest.raises(IngestError, match=r"is not utf-8 text.*set ingest.encoding"):
        read_source(source, base_dir=tmp_path)
    frame = read_source(source.model_copy(update={"encoding": "cp1252"}), base_dir=tmp_path)
    assert frame["name"].tolist() == ["José", "Renée"]


def test_a_file_that_parses_to_one_column_names_its_probable_separator(tmp_path):
    source = _file(tmp_path, "a;b;c\n1;2;3\n4;5;6\n").model_copy(update={"sep": ","})
    with pytest.raises(IngestError, match=r"parses to one column.*set ingest.sep: ';'"):
        read_source(source, base_dir=tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "is empty"), ("  \n", "is empty"), ("a,b,Churn\n", "holds only a header")],
)
def test_an_empty_or_header_only_file_says_so(tmp_path, text, message):
    with pytest.raises(IngestError, match=message):
        read_source(_file(tmp_path, text), base_dir=tmp_path)


def test_several_files_and_globs_are_read_in_order_into_one_frame(tmp_path):
    (tmp_path / "part-1.csv").write_text("a,b\n1,x\n")
    (tmp_path / "part-2.csv").write_text("a,b\n2,y\n")
    (tmp_path / "extra.csv").write_text("a,b\n3,z\n")
    source = IngestParams(kind="file", path=["part-*.csv", "extra.csv"])
    assert read_source(source, base_dir=tmp_path)["a"].tolist() == [1, 2, 3]


def test_files_of_different_shapes_are_refused_naming_the_file(tmp_path):
    (tmp_path / "a.csv").write_text("a,b\n1,x\n")
    (tmp_path / "b.csv").write_text("a,c\n2,y\n")
    source = IngestParams(kind="file", path=["a.csv", "b.csv"])
    with pytest.raises(IngestError, match=r"b.csv does not have the columns of .*a.csv"):
        read_source(source, base_dir=tmp_path)


def test_a_glob_that_matches_nothing_is_named(tmp_path):
    with pytest.raises(IngestError, match=r"'nope-\*.csv' matches no file"):
        read_source(IngestParams(kind="file", path="nope-*.csv"), base_dir=tmp_path)


@pytest.mark.parametrize(
    ("configured", "held"),
    [
        ("True", True),
        (True, True),
        (True, "True"),
        ("true", np.True_),
        (1, "1"),
        ("1", 1),
        (1, np.int64(1)),
        ("VRAI", "VRAI"),
    ],
)
def test_labels_are_compared_as_data_not_as_yaml_types(configured, held):
    assert label_text(configured) == label_text(held)


def test_a_true_false_label_configured_as_text_keeps_every_row(raw, params):
    raw = raw.assign(Churn=raw["Churn"] == "Yes")  # pandas reads True/False as booleans
    labels = {"positive_label": "True", "negative_label": "False"}
    dataset = params.dataset.model_copy(update=labels)
    result = validate_frame(raw, dataset)
    assert result.report.n_quarantined == 0
    assert label_vector(result.valid, dataset).tolist() == raw["Churn"].astype(int).tolist()


def test_yaml_true_stays_a_boolean_label():
    raw = _raw_params()
    raw["dataset"].update(positive_label=True, negative_label=False)
    assert Params.model_validate(raw).dataset.positive_label is True


def test_a_label_with_one_value_lists_what_it_found(raw, params):
    with pytest.raises(ContractError, match=r"'Churn' holds 1 distinct value\(s\): 'No'"):
        validate_frame(raw.assign(Churn="No"), params.dataset)


def test_labels_that_do_not_match_the_config_list_the_values_found(raw, params):
    raw = raw.assign(Churn=raw["Churn"].map({"Yes": "Oui", "No": "Non"}))
    with pytest.raises(ContractError, match=r"holds 'Non' \(\d+ rows\), 'Oui'.*set them to two"):
        validate_frame(raw, params.dataset)


def test_a_data_set_without_ids_gets_stable_row_keys(raw, params):
    raw = raw.drop(columns=["customerID"])
    raw = pd.concat([raw, raw.iloc[[1]]], ignore_index=True)  # an exact duplicate row
    dataset = params.dataset.model_copy(update={"id_column": None, "pii_columns": []})
    result = validate_frame(raw, dataset)
    keys = result.valid[ROW_KEY]
    assert result.report.n_quarantined == 0 and keys.is_unique
    assert keys.iloc[1].endswith("-0") and keys.iloc[-1] == keys.iloc[1][:-2] + "-1"
    # The key of a row does not depend on its position in the file.
    shuffled = raw.iloc[::-1].reset_index(drop=True)
    columns = [dataset.label_column, *dataset.feature_columns]
    assert set(row_keys(shuffled, columns)) == set(row_keys(raw, columns))


def test_ignored_columns_are_left_out_of_the_validated_rows(raw, params):
    dataset = params.dataset.model_copy(update={"ignore_columns": ["gender_copy"]})
    result = validate_frame(raw.assign(gender_copy=raw["gender"]), dataset)
    assert "gender_copy" not in result.valid.columns


def test_id_column_must_be_given_but_may_be_null():
    raw = _raw_params()
    del raw["dataset"]["id_column"]
    with pytest.raises(ValidationError, match=r"dataset\.id_column"):
        Params.model_validate(raw)
    raw["dataset"]["id_column"] = None
    raw["dataset"]["pii_columns"] = []
    assert Params.model_validate(raw).dataset.key_column == ROW_KEY


def test_a_monotone_entry_on_an_unknown_column_names_the_key_and_the_fix():
    raw = _raw_params()
    raw["train"]["monotone"] = {"Plan": {"gold": 1}}
    with pytest.raises(ValidationError, match=r"train\.monotone\.Plan.*remove the entry"):
        Params.model_validate(raw)


def test_a_monotone_entry_on_an_unknown_level_lists_the_known_ones():
    raw = _raw_params()
    raw["train"]["monotone"] = {"Contract": {"Three year": -1}}
    with pytest.raises(ValidationError, match=r"levels \['Three year'\].*Month-to-month"):
        Params.model_validate(raw)


@pytest.mark.parametrize(("key", "value"), [("sep", ";;"), ("encoding", "utf-9")])
def test_csv_options_are_checked(key, value):
    with pytest.raises(ValidationError, match=f"ingest.{key}"):
        IngestParams(kind="file", path="x.csv", **{key: value})


def test_the_service_contract_needs_no_id_when_the_data_set_has_none(params):
    from serving.docs import example_record
    from serving.schemas import RequestParser

    dataset = params.dataset.model_copy(update={"id_column": None, "pii_columns": []})
    record = example_record(dataset)
    assert set(record) == set(dataset.feature_columns)
    parser = RequestParser(dataset, max_records=10)
    body = json.dumps({"records": [record]})
    assert parser.parse(body.encode()) == [record]
    assert "customerID" not in parser.openapi_schemas()["CustomerRecord"]["properties"]
