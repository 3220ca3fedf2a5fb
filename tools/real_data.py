"""Bring your own data, measured: ``churn init-dataset`` on a real file, then the training flow,
with no hand-edited configuration, in a throw-away fork; and a plain XGBoost on the same split.
The candidates' comparison table (``churn.training.comparison``) is printed with each file's
figures.

``make bench-real-data`` (``churn bench real-data``) prints the figures that
docs/bring-your-own-data.md quotes; the real-data tests (tests/integration/test_real_data.py)
run the same steps and assert on them.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sklearn.metrics import roc_auc_score
from xgboost import XGBClassifier

from churn.config.layout import DataLayout
from churn.config.params import Params, load_params
from churn.config.settings import get_settings
from churn.data import stages as data_stages
from churn.training.stages import featurize
from pipelines.training import training_flow
from tools.fork import CHURN, ROOT, fork_project

# The shared real files (read ../shared/data/README.md): path, label column.
SHARED = ROOT.parent / "shared" / "data"
REAL_FILES: dict[str, tuple[Path, str]] = {
    "telco": (SHARED / "telco_customer_churn.csv", "Churn"),
    "iranian": (SHARED / "iranian_customer_churn.csv", "Churn"),
}
# The plain model of the data README's reference figures: XGBoost, 300 trees, depth 4, lr 0.05.
PLAIN_XGBOOST: dict[str, Any] = {"n_estimators": 300, "max_depth": 4, "learning_rate": 0.05}


@dataclass
class RealDataResult:
    """What one file gave: the generated configuration, the champion, the plain model."""

    file: Path
    command: str
    init_output: str
    params: Params
    rows: dict[str, int]  # raw, validated, and per split (train, valid, test)
    champion_test_roc_auc: float
    baseline_test_roc_auc: float
    plain_xgboost_test_roc_auc: float
    promoted: bool
    reason: str
    seconds: float
    selected: str = ""
    comparison: str = ""  # the candidates side by side (churn.training.comparison.markdown)


def init_dataset(project: Path, files: list[Path], label: str, *extra: str) -> str:
    """Run ``churn -C project init-dataset FILES --label LABEL`` as a user does; its output.

    Raises:
        RuntimeError: with the command's own message when it fails.
    """
    args = [*CHURN, "-C", str(project), "init-dataset", *map(str, files), "--label", label, *extra]
    done = subprocess.run(args, capture_output=True, text=True, check=False, env=_wide())  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f"init-dataset failed ({done.returncode}): {done.stderr or done.stdout}")
    return done.stdout


def plain_xgboost_auc(project: Path, params: Params, seed: int = 42) -> float:
    """Test ROC AUC of a plain XGBoost (``PLAIN_XGBOOST``, no search, no calibration, no
    constraints) on the project's own splits and feature encoding."""
    splits = data_stages.load_splits(get_settings(project_dir=project))
    features = featurize(splits, params)
    model = XGBClassifier(**PLAIN_XGBOOST, random_state=seed, n_jobs=params.train.n_jobs)
    model.fit(features.X["train"], features.y["train"])
    return float(roc_auc_score(features.y["test"], model.predict_proba(features.X["test"])[:, 1]))


def run(file: Path, label: str, dest: Path, n_trials: int | None = None) -> RealDataResult:
    """Fork the template, init-dataset on ``file``, train, and measure the plain model.

    Args:
        n_trials: ``train.search.n_trials`` of the fork (default: the template's).
    """
    started = time.perf_counter()
    overrides = {"train": {"search": {"n_trials": n_trials}}} if n_trials is not None else None
    project = fork_project(dest, overrides)
    output = init_dataset(project, [file], label)
    params = load_params(project / "params.yaml")
    summary = training_flow(str(project), push=False)
    layout = DataLayout(get_settings(project_dir=project).data_dir)
    report = json.loads(layout.validation_report.read_text())
    splits = data_stages.load_splits(get_settings(project_dir=project))
    return RealDataResult(
        file=file,
        command=f"churn init-dataset {file} --label {label}",
        init_output=output,
        params=params,
        rows={"raw": report["n_rows"], "validated": report["n_valid"]}
        | {name: len(frame) for name, frame in splits.items()},
        champion_test_roc_auc=summary.test_roc_auc,
        baseline_test_roc_auc=summary.baseline_test_roc_auc,
        plain_xgboost_test_roc_auc=plain_xgboost_auc(project, params),
        promoted=summary.promoted,
        reason=summary.reason,
        seconds=time.perf_counter() - started,
        selected=summary.selected,
        comparison=summary.comparison,
    )


def format_result(result: RealDataResult) -> str:
    ds = result.params.dataset
    gap = result.champion_test_roc_auc - result.plain_xgboost_test_roc_auc
    lines = [
        f"== {result.file.name}",
        f"command: {result.command}",
        "rows: " + ", ".join(f"{k} {v}" for k, v in result.rows.items()),
        f"label: {ds.label_column} = {ds.positive_label!r}; id: {ds.id_column or 'none'}",
        f"numeric ({len(ds.numeric)}): {', '.join(ds.numeric)}",
        f"categorical ({len(ds.categorical)}): {', '.join(ds.categorical)}",
        f"pii: {ds.pii_columns or 'none'}; ignored: {ds.ignore_columns or 'none'}",
        f"champion test ROC AUC  {result.champion_test_roc_auc:.4f}"
        f" ({'promoted' if result.promoted else 'not promoted: ' + result.reason})",
        f"baseline test ROC AUC  {result.baseline_test_roc_auc:.4f} (logistic regression)",
        f"plain XGBoost          {result.plain_xgboost_test_roc_auc:.4f} "
        f"(same split; {PLAIN_XGBOOST})",
        f"champion - plain       {gap:+.4f}",
        f"seconds                {result.seconds:.0f} (fork, init-dataset, training flow)",
    ]
    if result.comparison:
        lines += [
            f"candidates (selected: {result.selected}; test split, each at its cost threshold):",
            result.comparison.rstrip(),
        ]
    return "\n".join(lines)


def main(names: list[str] | None = None, n_trials: int | None = None) -> list[RealDataResult]:
    """Run each shared real file that exists (all by default) and print its figures."""
    results = []
    for name in names or list(REAL_FILES):
        file, label = REAL_FILES[name]
        if not file.is_file():
            print(f"== {name}: {file} is absent (read ../shared/data/README.md); skipped")
            continue
        with tempfile.TemporaryDirectory(prefix=f"real-{name}-") as tmp:
            result = run(file, label, Path(tmp) / "project", n_trials)
        print(result.init_output)
        print(format_result(result), flush=True)
        results.append(result)
    return results


def _wide() -> dict[str, str]:
    """The environment with a wide terminal, so the printed table keeps one line per column."""
    return {**os.environ, "COLUMNS": "160"}
