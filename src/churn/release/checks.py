"""Checks of a registered version before it may become champion (``churn check-challenger``).

The continuous-training job trains with ``--no-promote``: the gate decides and records its
decision, and the champion stays. These checks then run on the version, each a named
:class:`~churn.release.registry.CheckOutcome` read from figures, and are recorded on it; ``churn
promote`` refuses a version whose checks failed.

- ``gate_decision``: the gate's recorded decision is a promotion.
- ``id_invariance``: changing the customer id changes no score.
- ``monotone:<column>``: every ``train.monotone`` direction holds on real rows (the generic form
  of "month-to-month never scores lower than two-year").
- ``scorer_parity``: the model as it is served scores what the pipeline scores.
- ``smoke_predict``: a real service on the version answers ``/predict`` with the pipeline's
  scores (the job starts it; see ``pipelines/challenger.py``).

The rows are the version's own test split, read back by its DVC md5 (the cache, else the
remote), so the checks see the data it was trained on whatever the workspace holds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from churn.champion import ChampionInfo, ServingCheck
from churn.config.params import DatasetConfig, Params
from churn.config.settings import Settings
from churn.data import versioning
from churn.release import registry, tracking
from churn.release.registry import CheckOutcome, RecordedDecision
from churn.scoring import TOLERANCE, check_serving

# Monotone directions are exact properties of the model; this only absorbs float rounding.
MONOTONE_SLACK = 1e-9
# A level no data set has: one-hot encoded as "no level" (the encoder ignores unknown levels).
UNSEEN_LEVEL = "<a level the model never saw>"
SMOKE_ROWS = 50


class Classifier(Protocol):
    """Anything with scikit-learn's ``predict_proba`` over raw rows (the logged pipeline)."""

    def predict_proba(self, X: pd.DataFrame) -> Any: ...


def churn_scores(model: Classifier, frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(model.predict_proba(frame)[:, 1], dtype="float64")


def gate_decision(recorded: RecordedDecision) -> CheckOutcome:
    """The gate's recorded decision on the version is a promotion."""
    if recorded.gate_approved:
        return CheckOutcome("gate_decision", True, f"{recorded.decision}: {recorded.reason}")
    reason = recorded.reason or "no decision was recorded (registered by hand?)"
    return CheckOutcome("gate_decision", False, f"{recorded.decision}: {reason}")


def id_invariance(model: Classifier, frame: pd.DataFrame, dataset: DatasetConfig) -> CheckOutcome:
    """Changing every customer id (or row key, without ids) changes no score."""
    renamed = frame.assign(**{dataset.key_column: [f"check-{i:06d}" for i in range(len(frame))]})
    gap = float(np.max(np.abs(churn_scores(model, frame) - churn_scores(model, renamed))))
    return CheckOutcome(
        "id_invariance",
        gap == 0.0,
        f"largest score change {gap:.3g} over {len(frame)} rows with new ids",
    )


def monotone_directions(
    model: Classifier, frame: pd.DataFrame, monotone: Mapping[str, Mapping[str, int]]
) -> list[CheckOutcome]:
    """Each ``train.monotone`` direction holds on every row, one outcome per column.

    Every row is scored once per level it is set to, all else equal. A level constrained +1
    must score at least as high as every level constrained -1 of the same column. A column
    whose constraints all have one sign is compared with a level the model never saw, which the
    one-hot encoder turns into "no level": a +1 level never scores lower than that, a -1 level
    never higher.
    """
    outcomes = []
    for column, levels in monotone.items():
        up = [level for level, sign in levels.items() if sign > 0]
        down = [level for level, sign in levels.items() if sign < 0]
        if not up and not down:
            continue
        pairs = [(u, d) for u in up for d in down] or (
            [(u, UNSEEN_LEVEL) for u in up] + [(UNSEEN_LEVEL, d) for d in down]
        )
        scores = {
            level: churn_scores(model, frame.assign(**{column: level}))
            for level in {level for pair in pairs for level in pair}
        }
        failures = []
        details = []
        for high, low in pairs:
            gap = scores[high] - scores[low]
            wrong = int(np.sum(gap < -MONOTONE_SLACK))
            details.append(
                f"{high} >= {low} on {len(frame) - wrong}/{len(frame)} rows "
                f"(mean gap {float(np.mean(gap)):+.4f}, worst {float(np.min(gap)):+.4f})"
            )
            if wrong:
                failures.append(f"{high} scores lower than {low} on {wrong} rows")
        outcomes.append(
            CheckOutcome(
                f"monotone:{column}",
                not failures,
                "; ".join(failures) if failures else "; ".join(details),
            )
        )
    return outcomes


def scorer_parity(check: ServingCheck) -> CheckOutcome:
    """The serving scorer against the pipeline (``churn.scoring.check_serving``'s verdict).

    Fails when the numpy replay cannot serve the model: the service would then answer with
    the plain pipeline (correct, far slower) and report itself degraded. A model whose kind
    declares no compiled replay passes (the replayed features, then its own ``predict_proba``,
    equal the pipeline); the detail names that scorer and its one-row time.
    """
    diff = "n/a" if check.max_abs_diff is None else f"{check.max_abs_diff:.3g}"
    detail = f"serving scorer {check.scorer}: largest difference {diff} over {check.rows} rows"
    if check.one_row_ms is not None:
        detail += f", one row {check.one_row_ms:.3f} ms"
    return CheckOutcome(
        "scorer_parity", check.replayed, detail + (f"; {check.reason}" if check.reason else "")
    )


def request_records(frame: pd.DataFrame, dataset: DatasetConfig) -> list[dict[str, Any]]:
    """Rows as ``/predict`` receives them: the id (if any) and the feature columns, JSON values."""
    columns = [*([dataset.id_column] if dataset.id_column else []), *dataset.feature_columns]
    return list(json.loads(frame[columns].to_json(orient="records")))


def smoke_predict(
    served: Mapping[str, Any],
    status: int,
    body: Any,
    *,
    version: str,
    alias: str,
    expected: np.ndarray,
) -> CheckOutcome:
    """A real service's answers for the version: who it serves (``/version``) and ``/predict``.

    Args:
        served: the service's ``/version`` body.
        status: ``/predict``'s status code; ``body`` its JSON body.
        version: the version the service must serve, from the registry (not the cache or rules).
        alias: the alias it was asked to serve.
        expected: the pipeline's churn probabilities for the records sent, in order.
    """

    def failed(why: str) -> CheckOutcome:
        return CheckOutcome("smoke_predict", False, why)

    who = (served.get("version"), served.get("alias"), served.get("source"))
    if who != (version, alias, "registry"):
        return failed(
            f"the service serves version {who[0]} as {who[1]!r} from {who[2]!r} "
            f"({served.get('degraded_reason') or 'no reason given'}); expected v{version} "
            f"as {alias!r} from the registry"
        )
    if status != 200:
        return failed(f"/predict answered {status}: {str(body)[:300]}")
    if not isinstance(body, dict):
        return failed(f"/predict answered a {type(body).__name__}, not a JSON object")
    predictions = body.get("predictions") or []
    if body.get("model_version") != version or len(predictions) != len(expected):
        return failed(
            f"/predict answered {len(predictions)} scores from version "
            f"{body.get('model_version')}; expected {len(expected)} from v{version}"
        )
    got = np.array([p["churn_probability"] for p in predictions], dtype="float64")
    gap = float(np.max(np.abs(got - expected))) if len(got) else 0.0
    return CheckOutcome(
        "smoke_predict",
        gap <= TOLERANCE,
        f"/predict on {len(got)} rows (scorer {served.get('scorer', '?')}): largest difference "
        f"from the pipeline {gap:.3g} (tolerance {TOLERANCE:g})",
    )


@dataclass
class Candidate:
    """A registered version loaded for its checks: the pipeline, its record and its test rows."""

    version: str
    record: ChampionInfo
    recorded: RecordedDecision
    model: Any
    test: pd.DataFrame


# The checks on a partitioned test split read its first parts up to this many rows.
_CHECK_ROWS = 200_000


def load_candidate(settings: Settings, version: str) -> Candidate:
    """The version's pipeline, and its own test split read back by DVC md5.

    Raises:
        LookupError: the version does not exist or has no champion record.
        churn.data.versioning.VersioningError: the test split is neither cached nor on the remote.
    """
    import mlflow

    client = tracking.connect(settings)
    mv = registry.model_version(client, settings.model_name, version)
    record = ChampionInfo.from_version(mv)
    # A partitioned split (the dask engine): its first parts, up to _CHECK_ROWS rows.
    parts, test = versioning.versioned_paths(settings.project_dir, record.split_md5("test")), []
    for path in parts:
        test.append(pd.read_parquet(path))
        if sum(len(f) for f in test) >= _CHECK_ROWS:
            break
    model = mlflow.sklearn.load_model(f"models:/{settings.model_name}/{mv.version}")
    return Candidate(
        version=str(mv.version),
        record=record,
        recorded=RecordedDecision.from_version(mv),
        model=model,
        test=pd.concat(test, ignore_index=True) if len(test) > 1 else test[0],
    )


def same_lineage(record: ChampionInfo, dataset: DatasetConfig) -> CheckOutcome:
    """The candidate was trained on the data set params.yaml declares (its schema's fingerprint).

    A version of another schema cannot be checked, nor served, with this data set's contract:
    the check fails (closed) rather than run the others on columns the model does not know.
    """
    from churn.data.lineage import fingerprint, schema_of

    ours = fingerprint(schema_of(dataset))
    if record.lineage is None:
        return CheckOutcome("lineage", True, "no lineage recorded (a version before issue #25)")
    if record.lineage.fingerprint != ours:
        return CheckOutcome(
            "lineage",
            False,
            f"trained on schema {record.lineage.fingerprint} ({record.lineage.name!r}), "
            f"params.yaml's dataset block is {ours}: not the same data set",
        )
    return CheckOutcome("lineage", True, f"schema {ours} ({record.lineage.name!r})")


def offline_checks(settings: Settings, params: Params, candidate: Candidate) -> list[CheckOutcome]:
    """Every check that needs no running service, on the candidate's test rows."""

    frame = candidate.test
    lineage = same_lineage(candidate.record, params.dataset)
    if not lineage.passed:
        return [gate_decision(candidate.recorded), lineage]
    outcomes = [
        gate_decision(candidate.recorded),
        lineage,
        id_invariance(candidate.model, frame, params.dataset),
        *monotone_directions(candidate.model, frame, params.train.monotone),
    ]
    outcomes.append(scorer_parity(check_serving(candidate.model, params.dataset, frame)))
    return outcomes


def summarise(outcomes: Sequence[CheckOutcome]) -> str:
    """One line: how many passed, and the names of those that failed."""
    failed = [o.name for o in outcomes if not o.passed]
    if not failed:
        return f"all {len(outcomes)} checks passed"
    return f"{len(failed)} of {len(outcomes)} checks failed: {', '.join(failed)}"
