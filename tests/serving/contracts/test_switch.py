"""How the contracts are switched on: the table, the setting, the port, the image's ``serve``
command (SageMaker's), and a contract package deleted with its row."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from churn.config.settings import get_settings
from serving.contracts import CONTRACTS, selected
from tests.serving.conftest import ROOT
from tools.fork import free_port

PATHS = {
    "sagemaker": "/invocations",
    "vertex": "/vertex/predict",
    "oip": "/v2/models/{model_name}/infer",
}


def test_the_setting_selects_from_the_table_and_refuses_other_names() -> None:
    assert selected("") == [] and selected(" ,") == []
    assert selected("OIP, sagemaker") == ["sagemaker", "oip"]  # any case; the table's order
    with pytest.raises(ValueError, match=r"'kserve'.*choose among sagemaker, vertex, oip"):
        selected("sagemaker,kserve")
    assert set(CONTRACTS) == set(PATHS)


def test_the_port_is_the_platforms_first(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AIP_HTTP_PORT", "SAGEMAKER_BIND_TO_PORT", "CHURN_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert get_settings().port == 8000
    monkeypatch.setenv("CHURN_PORT", "9002")
    assert get_settings().port == 9002
    monkeypatch.setenv("AIP_HTTP_PORT", "9001")
    assert get_settings().port == 9001


def test_an_unknown_contract_stops_churn_serve_with_the_reason(tmp_path: Path) -> None:
    env = {**os.environ, "CHURN_SERVING_CONTRACTS": "sagemaker,triton"}
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "-C", str(ROOT), "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "'triton'" in done.stdout + done.stderr


# For each copy of serving/ (one per deleted contract): import it, build the app with the other
# contracts, try the deleted one. One process for all: the libraries are imported once.
_APPS_OF_COPIES = """
import json, sys
from churn.config.settings import get_settings
project, found = sys.argv[1], {}
for folder, deleted, others in json.loads(sys.argv[2]):
    for name in [m for m in sys.modules if m == "serving" or m.startswith("serving.")]:
        del sys.modules[name]
    sys.path.insert(0, folder)
    import serving
    from serving.app import create_app
    def app(contracts):
        return create_app(get_settings(serving_contracts=contracts, project_dir=project))
    try:
        app(deleted)
        refused = None
    except ValueError as exc:
        refused = str(exc)
    paths = sorted(app(others).openapi()["paths"])
    found[deleted] = {"from": serving.__file__, "paths": paths, "refused": refused}
    sys.path.remove(folder)
print(json.dumps(found))
"""


def test_deleting_a_contract_package_and_its_row_leaves_a_working_service(
    tmp_path: Path,
) -> None:
    """For each contract, a copy of ``serving/`` without its package and its table row: the
    others are served, and the deleted name is refused like any unknown one."""
    copies = []
    for deleted in PATHS:
        copy = tmp_path / deleted / "serving"
        shutil.copytree(ROOT / "serving", copy, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.rmtree(copy / "contracts" / deleted)
        table = copy / "contracts" / "__init__.py"
        rows = table.read_text().splitlines(keepends=True)
        kept = [line for line in rows if not line.lstrip().startswith(f'"{deleted}": ')]
        assert len(kept) == len(rows) - 1
        table.write_text("".join(kept))
        others = ",".join(name for name in PATHS if name != deleted)
        copies.append((str(copy.parent), deleted, others))
    command = [sys.executable, "-c", _APPS_OF_COPIES, str(ROOT), json.dumps(copies)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    for deleted in PATHS:
        app = found[deleted]
        assert app["from"] == str(tmp_path / deleted / "serving" / "__init__.py")
        assert {PATHS[name] for name in PATHS if name != deleted} <= set(app["paths"])
        assert "/predict" in app["paths"] and PATHS[deleted] not in app["paths"]
        assert app["refused"] is not None and f"'{deleted}'" in app["refused"], app


@pytest.mark.integration
def test_the_images_serve_command_is_sagemakers(tmp_path: Path) -> None:
    """``docker run IMAGE serve``: ``deploy/serve`` runs ``churn serve`` on every interface
    with SageMaker's contract on, on the port setting (8080 unless set)."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "params.yaml", project / "params.yaml")
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CHURN_", "MLFLOW_", "AIP_"))},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "CHURN_PROJECT_DIR": str(project),
        "CHURN_PORT": str(port),
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
        "CHURN_REGISTRY_TIMEOUT_SECONDS": "2",
    }
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(ROOT / "deploy" / "serve")], env=env, stdout=log, stderr=log, cwd=project
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(url + "/ping", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        assert httpx.get(url + "/v2/health/live").status_code == 404  # only SageMaker's
        assert "0.0.0.0" in (tmp_path / "serve.log").read_text()
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    script = (ROOT / "deploy" / "serve").read_text()
    assert 'CHURN_PORT="${CHURN_PORT:-8080}"' in script
