"""The candidates table: found by module, declarations checked, params.yaml validated by it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from churn import models
from churn.config.params import Params
from churn.models import candidates
from pipelines.cli.commands import app

ROOT = Path(__file__).resolve().parents[3]


def _params(**train: object) -> Params:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["train"].update(train)
    return Params.model_validate(raw)


@pytest.fixture
def extra_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder the candidates package also reads (as if its modules were added there); the
    table is read again without it afterwards."""
    monkeypatch.setattr(candidates, "__path__", [*candidates.__path__, str(tmp_path)])
    models.kinds.cache_clear()
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("churn.models.candidates.")]:
        if not (Path(candidates.__file__).parent / f"{name.rsplit('.', 1)[1]}.py").exists():
            del sys.modules[name]
    models.kinds.cache_clear()


def test_the_table_is_the_modules_of_the_candidates_package() -> None:
    shipped = sorted(p.stem for p in Path(candidates.__file__).parent.glob("[!_]*.py"))
    assert sorted(models.kinds()) == shipped == ["logistic", "random_forest", "xgboost"]
    assert models.kind("xgboost").title == "XGBoost"
    assert models.kind("logistic").key == "baseline"  # params.yaml's train.baseline


def test_a_module_added_to_the_package_is_a_candidate(extra_modules: Path) -> None:
    (extra_modules / "extra_trees.py").write_text(
        (ROOT / "src/churn/models/candidates/random_forest.py")
        .read_text()
        .replace('name="random_forest"', 'name="extra_trees"')
        .replace('param_prefix="rf"', 'param_prefix="et"')
        .replace("_forest.RandomForestClassifier", "_forest.ExtraTreesClassifier")
    )
    assert "extra_trees" in models.kinds()
    assert "sklearn.ensemble._forest.ExtraTreesClassifier" in models.trusted_types()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("X = 1\n", "declares no candidate"),
        (
            "from churn.models.candidates.xgboost import KIND as _K\n"
            "import dataclasses\n"
            "KIND = dataclasses.replace(_K, name='broken', explainer=None)\n",
            "explainer is None: say why in no_explainer",
        ),
        (
            "from churn.models.candidates.xgboost import KIND as _K\n"
            "import dataclasses\n"
            "KIND = dataclasses.replace(_K, name='broken', block='xgboost2')\n",
            "declares param_prefix 'xgb', which candidate '(xgboost|broken)' declares already",
        ),
        (
            "from churn.models.candidates.xgboost import KIND as _K\n"
            "import dataclasses\n"
            "KIND = dataclasses.replace(_K, name='other')\n",
            "name 'other' is not its module's name 'broken'",
        ),
    ],
    ids=["no-kind", "explainer-unsaid", "duplicate-prefix", "name-not-module"],
)
def test_a_malformed_or_duplicate_declaration_fails_loudly(
    extra_modules: Path, text: str, message: str
) -> None:
    (extra_modules / "broken.py").write_text(text)
    with pytest.raises(models.DeclarationError, match=message):
        models.kinds()


def test_each_block_is_validated_by_its_module_and_named() -> None:
    with pytest.raises(ValueError, match=r"train\.xgboost\.max_depth: Input should be greater"):
        models.check_params(_params(xgboost={"max_depth": 0}))
    with pytest.raises(ValueError, match=r"train\.baseline\.penalty: Extra inputs"):
        models.check_params(_params(baseline={"penalty": "l1"}))
    assert models.values(_params().train, "random_forest")["max_samples"] == 50_000


def test_an_unknown_candidate_or_key_lists_the_known_candidates() -> None:
    known = "known candidates: logistic, random_forest, xgboost"
    with pytest.raises(ValueError, match=rf"train\.candidates names \['hist_gb'\].*{known}"):
        models.check_params(_params(candidates=["logistic", "hist_gb"]))
    with pytest.raises(ValueError, match=rf"train\.select\.prefer names \['lightgbm'\].*{known}"):
        models.check_params(_params(select={"prefer": ["lightgbm"]}))
    with pytest.raises(ValueError, match=r"train\.xgbost is neither a train setting"):
        models.check_params(_params(xgbost={"n_estimators": 3}))


def test_the_dask_engine_refuses_a_candidate_by_name() -> None:
    refused = models.refused_on("dask", ["logistic", "random_forest", "xgboost"])
    assert list(refused) == ["random_forest"]
    assert refused["random_forest"].startswith(
        "random_forest is not trained on the dask engine: scikit-learn's forest has no"
    )
    params = _params(candidates=["logistic", "random_forest"])
    dask = Params.model_validate(
        {**params.model_dump(by_alias=True), "engine": {"kind": "dask"}, "split": {}}
    )
    with pytest.raises(ValueError, match="no challenger the dask engine trains"):
        models.check_params(dask)


def test_the_cli_names_a_bad_candidate_block_before_any_stage(tmp_path: Path) -> None:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["train"]["random_forest"]["max_features"] = 3
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["-C", str(tmp_path), "validate"])
    assert result.exit_code == 2
    assert "train.random_forest.max_features" in result.output
    assert not (tmp_path / "data").exists()
