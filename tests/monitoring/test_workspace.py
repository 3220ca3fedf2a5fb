"""The Evidently workspace keeps one snapshot per monitoring run, in one project, with figures."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from evidently.ui.workspace import Workspace

from monitoring import workspace
from tools.fork import free_port


def test_runs_are_stored_in_order_in_one_project_with_their_figures(tmp_path: Path) -> None:
    start = datetime(2026, 1, 5, 9, tzinfo=UTC)
    added = []
    for i, (auc, version) in enumerate([(None, "1"), (0.81, "1"), (0.74, "2")]):
        figures = workspace.run_figures(
            drifted_share=0.1 * i,
            window_rows=1000 + i,
            labelled_rows=0 if auc is None else 400,
            mean_score=0.2 + i / 100,
            roc_auc=auc,
            recall=None if auc is None else auc - 0.1,
            model_version=version,
        )
        # added newest first: the store orders by the runs' own time, not by insertion
        at = start + timedelta(hours=2 - i)
        added.append((at, figures))
        workspace.add_run(
            tmp_path, figures, at=at, action="none", model_version=version, mlflow_run_id=str(i)
        )
    ws = Workspace(str(tmp_path))
    projects = ws.list_projects()
    assert [p.name for p in projects] == [workspace.PROJECT_NAME]
    panels = ws.get_dashboard(projects[0].id).panels
    assert {p.title for p in panels} == {t for t, _ in workspace.FIGURES.values()}
    stored = workspace.runs(tmp_path)
    assert stored == [f for _, f in sorted(added, key=lambda a: a[0])]
    assert "roc_auc" not in stored[-1] and stored[0]["roc_auc"] == 0.74
    assert stored[0]["model_version"] == 2.0 and stored[0]["window_rows"] == 1002


def test_each_lineage_has_its_own_project(tmp_path: Path) -> None:
    at = datetime(2026, 1, 5, 9, tzinfo=UTC)
    figures = workspace.run_figures(
        drifted_share=0.0,
        window_rows=10,
        labelled_rows=0,
        mean_score=0.3,
        roc_auc=None,
        recall=None,
        model_version="1",
    )
    workspace.add_run(tmp_path, figures, at=at, action="none", model_version="1", mlflow_run_id="a")
    other = {**figures, "window_rows": 99.0}
    workspace.add_run(
        tmp_path,
        other,
        at=at,
        action="none",
        model_version="1",
        mlflow_run_id="b",
        model_name="iranian",
    )
    names = sorted(p.name for p in Workspace(str(tmp_path)).list_projects())
    assert names == sorted([workspace.PROJECT_NAME, "iranian monitoring"])
    assert workspace.runs(tmp_path) == [figures]
    assert workspace.runs(tmp_path, "iranian") == [other]


@pytest.mark.browser
def test_the_empty_service_panels_say_what_to_set(tmp_path: Path, offline_page) -> None:
    """Without CHURN_SERVICE_URL the latency and cost panels have no line: the dashboard says
    why and what to set, in the Evidently UI itself."""
    figures = workspace.run_figures(
        drifted_share=0.0,
        window_rows=10,
        labelled_rows=0,
        mean_score=0.3,
        roc_auc=None,
        recall=None,
        model_version="1",
    )
    at = datetime(2026, 1, 5, 9, tzinfo=UTC)
    workspace.add_run(tmp_path, figures, at=at, action="none", model_version="1", mlflow_run_id="a")
    port = free_port()
    evidently = str(Path(sys.executable).parent / "evidently")
    command = [evidently, "ui", "--workspace", str(tmp_path), "--port", str(port)]
    ui = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "the Evidently UI did not start in 60 s"
                time.sleep(0.5)
        pid = Workspace(str(tmp_path)).search_project(workspace.PROJECT_NAME)[0].id
        offline_page.goto(f"{url}/projects/{pid}")
        note = offline_page.get_by_text("CHURN_SERVICE_URL=http://127.0.0.1:8000", exact=False)
        note.first.wait_for(timeout=30_000)
        assert note.count() == 2  # latency and cost
        assert "latency" not in " ".join(figures) and "cpu_per_1000" not in figures
        assert offline_page.get_by_text("make simulate writes them", exact=False).count() == 1
    finally:
        ui.terminate()
        ui.wait(30)
