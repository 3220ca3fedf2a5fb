"""The data commands (pipelines/cli/data.py): init-dataset writes params that load, or names what
is wrong."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_init_dataset_writes_params_that_load_and_prints_one_line_per_column(cli, plain, tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    data = tmp_path / "data" / "clients.csv"
    data.parent.mkdir()
    rows = [f"{i};{'Oui' if i % 4 == 0 else 'Non'};{i % 3 + 1};{i * 1.5:.1f}" for i in range(40)]
    data.write_text("n;Resilie;Forfait;Montant\n" + "\n".join(r.replace(".", ",") for r in rows))
    result = cli("-C", str(tmp_path), "init-dataset", str(data), "--label", "Resilie")
    assert result.exit_code == 0, result.output
    text = plain(result.output)
    assert re.search(r"Resilie\s+label\s+text\s+'Oui' = churn\s+minority: 10/40 \(25.0%\)", text)
    assert re.search(r"Forfait\s+categorical\s+integer\s+1, 2, 3", text)
    assert re.search(r"n\s+ignored\s+integer\s+0\.\.39\s+a row number", text)
    from churn.config.params import load_params

    params = load_params(tmp_path / "params.yaml")
    assert params.ingest.path == "data/clients.csv" and params.ingest.sep == ";"
    assert params.ingest.decimal == "," and params.dataset.positive_label == "Oui"
    assert params.dataset.id_column is None and list(params.dataset.numeric) == ["Montant"]
    # The data set's own lineage, from the file's name: its registered model.
    assert params.dataset.name == "clients" and "lineage 'clients'" in text
    from churn.config.settings import get_settings

    assert get_settings(project_dir=tmp_path).model_name == "clients"
    result = cli(
        "-C", str(tmp_path), "init-dataset", str(data), "--label", "Resilie", "--name", "x y"
    )
    assert result.exit_code == 2 and "--name 'x y'" in result.output
    result = cli(
        "-C", str(tmp_path), "init-dataset", str(data), "--label", "Resilie", "--name", "fr"
    )
    assert result.exit_code == 0 and load_params(tmp_path / "params.yaml").dataset.name == "fr"


def test_init_dataset_dry_run_leaves_params_unchanged_and_errors_name_the_values(cli, tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    before = (tmp_path / "params.yaml").read_text()
    data = tmp_path / "c.csv"
    data.write_text("a,b,Churn\n" + "\n".join(f"{i},{i % 2},{i % 3}" for i in range(30)))
    result = cli("-C", str(tmp_path), "init-dataset", str(data), "--label", "Churn")
    assert result.exit_code == 2
    assert "holds 3 distinct value(s)" in result.output and "Traceback" not in result.output
    result = cli("-C", str(tmp_path), "init-dataset", str(data), "--label", "b")
    assert result.exit_code == 2 and "equally often: pass --positive" in result.output
    args = ["init-dataset", str(data), "--label", "b", "--positive", "1", "--dry-run"]
    result = cli("-C", str(tmp_path), *args)
    assert result.exit_code == 0, result.output
    assert "dataset:" in result.output and "--dry-run: params.yaml unchanged" in result.output
    assert (tmp_path / "params.yaml").read_text() == before


def test_init_dataset_piped_prints_one_plain_line_per_column(cli, tmp_path):
    """Piped into a file or ``less``, the table keeps a row per column however long the names
    and levels are (rich wraps cells at 80 characters when it sees no terminal)."""
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    long = "Distinct Called Numbers In The Last Billing Month"
    plans = ["Unlimited Family Bundle", "Prepaid Weekend Saver", "Corporate Fleet Premium"]
    rows = [f"{int(i % 4 == 0)},{i * 37 % 1000},{plans[i % 3]}" for i in range(60)]
    data = tmp_path / "calls.csv"
    data.write_text(f"Churn,{long},Plan Name Of The Subscription\n" + "\n".join(rows))
    result = cli("-C", str(tmp_path), "init-dataset", str(data), "--label", "Churn", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "\x1b[" not in result.output and not re.search(r"[\u2500-\u257f]", result.output)
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("column"))
    table = lines[header : header + 4]  # the header and the three columns, a line each
    assert table[0].split() == ["column", "role", "type", "levels", "or", "range", "why"]
    assert [line.split("  ")[0] for line in table[1:]] == [
        "Churn",
        long,
        "Plan Name Of The Subscription",
    ], lines[header : header + 8]
    assert lines[header + 4].startswith("60 rows"), lines[header : header + 8]
    assert "Corporate Fleet Premium" in table[3] and table[3].rstrip().endswith("3 levels")
