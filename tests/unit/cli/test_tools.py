"""The clone's tools (pipelines/cli/tools.py): the simulator and the benchmarks refuse bad input
by name."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_bench_scale_names_an_unknown_engine(cli, plain):
    result = cli("bench", "scale", "--engines", "pandas,spark")
    assert result.exit_code == 2
    assert "unknown engine(s) ['spark']; choose from pandas, dask" in plain(result.output)


def test_the_simulator_refuses_an_unknown_drift_and_names_the_choices(cli):
    result = cli("simulate", "--drift", "sideways")
    assert result.exit_code == 2
    assert "'sideways' is not one of" in result.output and "competitor" in result.output


def test_the_simulator_says_in_one_line_when_no_service_answers(cli, tmp_path):
    from tools.fork import free_port

    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = cli("-C", str(tmp_path), "simulate", "--url", url, "--rows", "5")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: no prediction service answers at {url}: start one with `make serve` (another "
        "terminal), or pass the running one's --url (make simulate PORT=...)"
    ]


def test_the_simulator_is_bounded(cli):
    assert cli("simulate", "--rows", "0").exit_code == 2  # at least one customer


def test_the_simulator_says_it_only_knows_the_default_data(cli, tmp_path):
    """After `make init-dataset` on other data, `make simulate` says so before sending anything
    (it generated Telco-like customers, and the service answered a raw 422)."""
    from tools.fork import free_port

    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    data = tmp_path / "calls.csv"
    rows = [f"{int(i % 4 == 0)},{i * 7 % 90},{i % 3 + 1}" for i in range(40)]
    data.write_text("Churn,Call Failure,Tariff Plan\n" + "\n".join(rows))
    assert cli("-C", str(tmp_path), "init-dataset", str(data), "--label", "Churn").exit_code == 0
    url = f"http://127.0.0.1:{free_port()}"  # never reached: the check comes first
    result = cli("-C", str(tmp_path), "simulate", "--url", url, "--rows", "5")
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert text.startswith("error: the simulator only generates the default data"), text
    assert "('calls')" in text and "'Call Failure'" in text and "'Tariff Plan'" in text
    assert "no prediction service answers" not in text
