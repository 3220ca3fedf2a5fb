"""The project's identity is declared once (pyproject.toml's ``[project] name`` and
``[tool.churn.identity]``): the code reads it, the places that cannot read it agree with it, and
no test or tool-read file keeps a copy that a rename would leave stale."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from churn.config.identity import DECLARED, Identity, IdentityError, identity, read_identity
from churn.config.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
BLOCK = PYPROJECT["tool"]["churn"]["identity"]
SCRIPT = ROOT / "src" / "churn" / "config" / "identity.py"
# The files tools read that cannot read the block (YAML, JSON, shell, Make, Docker): a name of the
# project's in them is a copy a rename leaves behind. docker-compose.yml's `name` and the Helm
# chart's `name` (with its folder, deploy/helm/<project>) are the copies kept (neither compose nor
# helm can read pyproject.toml); test_compose_names_the_project and
# test_the_chart_is_named_as_the_project check them.
TOOL_FILES = [
    ROOT / "docker-compose.yml",
    ROOT / "Dockerfile",
    ROOT / "Makefile",
    ROOT / ".ci" / "run",
    ROOT / "mkdocs.yml",
    *sorted((ROOT / ".github" / "workflows").glob("*.yml")),
    *sorted(p for p in (ROOT / "deploy").rglob("*") if p.is_file()),
]


def test_the_code_reads_the_names_the_block_declares() -> None:
    names = identity()
    assert names.project == PYPROJECT["project"]["name"]
    assert {key: getattr(names, key) for key in DECLARED} == BLOCK
    assert names.image == names.project and names.pipeline_image == f"{names.project}-pipeline"


def test_the_settings_default_to_the_blocks_names_and_the_environment_overrides_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings()
    assert settings.model_name == BLOCK["model_name"]
    assert settings.experiment_name == BLOCK["training_name"]
    assert settings.monitoring_experiment_name == BLOCK["monitoring_name"]
    monkeypatch.setenv("CHURN_MODEL_NAME", "other-model")
    assert Settings().model_name == "other-model"


def test_the_flows_and_the_api_are_named_from_the_block() -> None:
    from pipelines.monitoring import monitoring_flow
    from pipelines.training import training_flow
    from serving.app import create_app

    assert training_flow.name == BLOCK["training_name"]
    assert monitoring_flow.name == BLOCK["monitoring_name"]
    assert create_app().title == f"{BLOCK['title']} prediction service"


def _pyproject(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text(text)
    return path


def test_a_missing_block_names_the_file_and_the_table(tmp_path: Path) -> None:
    path = _pyproject(tmp_path, '[project]\nname = "x"\n')
    with pytest.raises(IdentityError, match=r"has no \[tool\.churn\.identity\] table") as caught:
        read_identity(path)
    assert str(path) in str(caught.value)


def test_a_missing_or_empty_name_is_named_by_its_key(tmp_path: Path) -> None:
    block = "\n".join(f'{key} = "x"' for key in DECLARED if key != "model_name")
    path = _pyproject(tmp_path, f'[project]\nname = "x"\n[tool.churn.identity]\n{block}\n')
    with pytest.raises(IdentityError, match=r"\[tool\.churn\.identity\] model_name in .* None"):
        read_identity(path)
    path = _pyproject(tmp_path, f'[project]\nname = " "\n[tool.churn.identity]\n{block}\n')
    with pytest.raises(IdentityError, match=r"\[project\] name in "):
        read_identity(path)


def test_an_unknown_key_in_the_block_is_refused(tmp_path: Path) -> None:
    block = "\n".join(f'{key} = "x"' for key in DECLARED)
    path = _pyproject(
        tmp_path, f'[project]\nname = "x"\n[tool.churn.identity]\n{block}\nimage = "y"\n'
    )
    with pytest.raises(IdentityError, match=r"unknown key\(s\) \['image'\]"):
        read_identity(path)


def test_the_script_the_workflows_run_needs_only_the_standard_library() -> None:
    """CD runs it with the runner's Python before anything is installed: -I -S, no site-packages."""
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(SCRIPT)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    printed = dict(line.split("=", 1) for line in done.stdout.splitlines())
    assert printed == identity().as_dict()
    one = subprocess.run(
        [sys.executable, "-I", "-S", str(SCRIPT), "pipeline_image"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert one.stdout.strip() == identity().pipeline_image


def test_the_release_workflow_takes_every_image_name_from_the_block() -> None:
    path = ROOT / ".github" / "workflows" / "cd.yml"
    text = path.read_text()
    job = yaml.safe_load(text)["jobs"]["image"]
    reads = [s for s in job["steps"] if s.get("id") == "identity"]
    assert reads and "src/churn/config/identity.py" in reads[0]["run"], f"{path.name}: no step"
    # Every output of the identity step it uses is one the script prints or the step derives.
    known = set(identity().as_dict()) | {"serving", "pipeline"}
    used = set(re.findall(r"steps\.identity\.outputs\.(\w+)", text))
    assert used and used <= known, f"{path.name} reads {sorted(used - known)}, not printed"
    for line in text.splitlines():
        if "ghcr.io/" in line and ("tags:" in line or "images:" in line or "IMAGE:" in line):
            raise AssertionError(f"{path.name}: an image named in place: {line.strip()}")


def test_compose_names_the_project_as_pyproject_does() -> None:
    path = ROOT / "docker-compose.yml"
    compose = yaml.safe_load(path.read_text())
    assert compose["name"] == identity().project, (
        f"{path.name}: name is {compose['name']!r}, pyproject.toml's [project] name is "
        f"{identity().project!r}; make them equal"
    )
    # Grafana's folder is the compose project's name, handed over by compose.
    grafana = compose["services"]["grafana"]["environment"]
    assert grafana["PROJECT_NAME"] == "${COMPOSE_PROJECT_NAME}"
    provider = ROOT / "deploy" / "grafana" / "provisioning" / "dashboards" / "churn.yml"
    assert yaml.safe_load(provider.read_text())["providers"][0]["folder"] == "${PROJECT_NAME}"


def test_the_chart_is_named_as_the_project() -> None:
    """The chart's folder and name are pyproject.toml's [project] name: a rename moves both."""
    charts = sorted(p.parent for p in (ROOT / "deploy" / "helm").glob("*/Chart.yaml"))
    assert [p.name for p in charts] == [identity().project], (
        f"deploy/helm holds {[p.name for p in charts]}; rename the chart's folder to "
        f"{identity().project!r} (pyproject.toml's [project] name)"
    )
    chart = yaml.safe_load((charts[0] / "Chart.yaml").read_text())
    assert chart["name"] == identity().project, (
        f"{charts[0].name}/Chart.yaml: name is {chart['name']!r}; make it {identity().project!r}"
    )


def _copies(names: Identity, files: list[Path], root: Path = ROOT) -> list[str]:
    """``file:line: 'value' (key)`` for each name of ``names`` written into ``files``."""
    values: dict[str, str] = {}
    for key in ("project", "title", "training_name", "monitoring_name"):
        value = getattr(names, key)
        values[value] = f"{values[value]}, {key}" if value in values else key
    found = []
    for path in files:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if path.name in ("docker-compose.yml", "Chart.yaml") and line.startswith("name:"):
                continue  # the kept copies, checked above
            for value, key in values.items():
                if re.search(rf"(?<![\w-]){re.escape(value)}(?![\w-])", line):
                    found.append(f"{path.relative_to(root)}:{number}: {value!r} ({key})")
    return found


def test_no_file_a_tool_reads_keeps_a_copy_of_the_projects_names() -> None:
    copies = _copies(identity(), TOOL_FILES)
    assert not copies, "read these from the identity block instead:\n" + "\n".join(copies)


def test_the_copy_finder_finds_a_stale_name(tmp_path: Path) -> None:
    """The check above can fail: a file holding a name of the project's is reported by line."""
    names = Identity("acme-retention", "Acme", "retention", "ret-training", "ret-monitoring")
    stale = tmp_path / "deploy" / "dashboard.yml"
    stale.parent.mkdir()
    stale.write_text("a: 1\nfolder: acme-retention\ntitle: Acme-retention\n")
    assert _copies(names, [stale], root=tmp_path) == [
        "deploy/dashboard.yml:2: 'acme-retention' (project)"
    ]


# Ways a test could name the registered model or the distribution in place of reading the block.
_MODEL = re.escape(identity().model_name)
HARD_CODED = [
    re.compile(rf"models:/{_MODEL}\b"),
    re.compile(rf"name='{_MODEL}'"),
    re.compile(rf"""\b(?:MODEL|model_name|name)\s*=\s*["']{_MODEL}["']"""),
    re.compile(
        rf"""(?:model_version|registered_model|current_champion|aliased_\w+|rollback|history|"""
        rf"""get_model_version_by_alias|get_model_version)\((?:client,\s*)?["']{_MODEL}["']"""
    ),
    re.compile(rf"""["']{re.escape(identity().project)}["']"""),
]


def test_no_test_names_the_model_or_the_project_in_place_of_the_block() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if any(pattern.search(line) for pattern in HARD_CODED)
    ]
    assert not found, "read the name from churn.config.identity instead:\n" + "\n".join(found)
