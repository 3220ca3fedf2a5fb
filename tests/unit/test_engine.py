"""The engine interface: a plug-in engine is found by name in the library's folder, a missing one
is said, not guessed, and deleting the Dask plug-in's package leaves a project that imports,
keeps its import contracts and refuses ``engine.kind: dask`` by name."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from churn import engine
from churn.config.params import EngineParams, Params, load_params

ROOT = Path(__file__).resolve().parents[2]


def test_the_plug_ins_are_the_library_packages_with_a_plugin_module() -> None:
    assert engine.PLUGINS == {"dask": "churn.dask.plugin"}


def test_a_plug_in_engine_is_imported_by_name_and_implements_the_interface() -> None:
    pytest.importorskip("distributed", reason="the optional dask group is not installed")
    found = engine.plugin("dask")
    assert type(found).__module__ == "churn.dask.plugin"
    # Every operation of the interface, as the stages, the flow, serving and monitoring call it.
    operations = [
        name
        for name, value in vars(engine.Engine).items()
        if callable(value) and not name.startswith("_")
    ]
    assert set(operations) >= {"session", "ingest", "validate", "split", "map_parts"}
    assert all(callable(getattr(found, name)) for name in operations)


def test_an_unknown_engine_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"'spark' is not a plug-in engine here.*\['dask'\]"):
        engine.plugin("spark")


def test_params_refuse_an_unknown_engine_kind_naming_the_known_ones() -> None:
    with pytest.raises(ValidationError, match=r"engine.kind 'spark'.*\['pandas', 'dask'\]"):
        EngineParams(kind="spark")
    assert EngineParams(kind="dask").kind == "dask"


def test_an_engine_whose_libraries_are_missing_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the dask packages the run stops on a message naming the module, not a traceback."""
    for name in [m for m in sys.modules if m == "dask" or m.startswith(("dask.", "churn.dask"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "dask", None)  # what an absent package gives: import fails
    with pytest.raises(ValueError, match=r"needs 'dask'.*--extra dask.*engine.kind: pandas"):
        engine.plugin("dask")


def test_the_pandas_session_holds_nothing_open() -> None:
    with engine.session(None, EngineParams()) as held:  # type: ignore[arg-type]
        assert held is None


# What the removal copy takes: the code, its import contracts and the configuration.
_COPIED = ("src", "serving", "monitoring", "pipelines", "tools", "params.yaml")


def _run(program: Path, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``program`` in ``project`` with the copy's packages ahead of the installed ones."""
    path = os.pathsep.join([str(project / "src"), str(project)])
    return subprocess.run(
        [str(program), *args],
        cwd=project,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_deleting_the_dask_package_leaves_a_project_without_the_engine(tmp_path: Path) -> None:
    """The copy without ``src/churn/dask/`` (and nothing else edited: the table is read from the
    folder) imports the library, serving, monitoring and the flows, keeps every import contract
    and refuses ``engine.kind: dask`` on a message naming the missing plug-in."""
    project = tmp_path / "project"
    project.mkdir()
    for name in _COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, project / name)
    # pyproject without the dask dependency group (the import contracts are read from it).
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert tomllib.loads(pyproject)["project"]["optional-dependencies"]["dask"]
    start = pyproject.index("\ndask = [")
    end = pyproject.index("]\n", start) + 2
    (project / "pyproject.toml").write_text(pyproject[:start] + "\n" + pyproject[end:])
    assert (
        "dask"
        not in tomllib.loads((project / "pyproject.toml").read_text())["project"][
            "optional-dependencies"
        ]
    )
    shutil.rmtree(project / "src" / "churn" / "dask")

    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["engine"]["kind"] = "dask"
    raw["split"] = {**raw.get("split", {}), "method": "hash"}
    (project / "params-dask.yaml").write_text(yaml.safe_dump(raw))

    python = Path(sys.executable)
    # The copy's packages first on the path, and dask itself hidden: what an environment without
    # the group gives.
    check = f"""
import sys
sys.path[:0] = [{str(project / "src")!r}, {str(project)!r}]
sys.modules["dask"] = None
sys.modules["distributed"] = None
import churn, churn.engine, churn.data.stages, churn.training.stages, churn.release.promotion
import serving.app, serving.batch, monitoring.job, monitoring.at_scale
import pipelines.training, pipelines.monitoring, pipelines.cli
assert churn.__file__.startswith({str(project)!r}), churn.__file__
assert churn.engine.PLUGINS == {{}}, churn.engine.PLUGINS
from churn.config.params import load_params
load_params({str(project / "params.yaml")!r})  # the project's own params still load
try:
    load_params({str(project / "params-dask.yaml")!r})
except ValueError as exc:
    print("REFUSED:", exc)
try:
    churn.engine.plugin("dask")
except ValueError as exc:
    print("PLUGIN:", exc)
"""
    done = _run(python, project, "-c", check)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "REFUSED:" in done.stdout and "engine.kind 'dask' is not an engine here" in done.stdout
    assert "the known ones are ['pandas']" in done.stdout
    assert "PLUGIN: engine.kind 'dask' is not a plug-in engine here (plug-ins: []" in done.stdout

    lint = _run(python.parent / "lint-imports", project, "--no-cache")
    assert lint.returncode == 0, lint.stdout[-3000:] + lint.stderr[-2000:]
    assert "0 broken" in lint.stdout


def test_params_yaml_keeps_its_engine_keys() -> None:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    params: Params = load_params(ROOT / "params.yaml")
    assert set(raw["engine"]) <= set(EngineParams.model_fields)
    assert params.engine.kind == raw["engine"]["kind"]
