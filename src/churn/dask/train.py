"""Training on a Dask cluster: the same feature pipeline, XGBoost on every row, the same artefact.

What runs where (docs/scaling.md):

- **Feature statistics**: the scikit-learn feature pipeline is fitted on a seeded sample of the
  training split (its structure and levels), then its statistics are replaced by exact Dask
  aggregates over every training row: the fill medians (Dask's quantile) and the scaler's mean
  and variance of the filled, derived columns.
- **Encoding**: the fitted pipeline is applied to each partition (``map_partitions``).
- **Which candidates**: each as its module declares (``churn.models``, ``dask``): XGBoost on
  the cluster (``xgboost.dask``), the baseline (and any candidate declaring ``sample``) in one
  process on the sample; a candidate that declares neither is not trained here, and that is
  said by name (a WARNING, and the run's summary).
- **XGBoost**: ``xgboost.dask.train`` on a ``DaskQuantileDMatrix`` of the training split (the
  validation split's matrix shares its quantiles), for the configured values and each trial of
  ``train.search``; trials are ranked on the validation split's ROC AUC as on pandas.
- **Calibration, threshold, evaluation**: from scores computed on the cluster and collected as
  arrays (never frames): the calibrator is fitted on every validation score, the threshold on
  every validation row, the metrics on every test row.
- **In one process, on a seeded sample** of ``engine.sample_rows`` rows per split: the
  logistic-regression baseline, the fallback rules, the serving check and the gate's champion
  comparison (``FeatureSet.frames`` holds these samples; ``FeatureSet.rows`` the full counts).

The result is the pandas engine's artefact: ``Pipeline(features, CalibratedClassifierCV(
FrozenEstimator(XGBClassifier)))``, with the booster trained here inside the ``XGBClassifier``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from churn import models
from churn.config.layout import SPLITS, DataLayout, parts_of
from churn.config.params import BASELINE, DatasetConfig, Params, TrainParams
from churn.config.settings import Settings
from churn.dask.cluster import fails_on_lost_worker
from churn.data.split import label_vector
from churn.features.pipeline import (
    DERIVE,
    FILL,
    build_feature_pipeline,
    encoded_feature_names,
    feature_steps,
)
from churn.models.candidates import xgboost as xgboost_kind
from churn.scoring.fallback_rules import fit_rules, with_test_auc
from churn.scoring.threshold import choose_threshold
from churn.training import comparison, evaluation
from churn.training.stages import Evaluation, FeatureSet
from churn.training.train import (
    FittedCandidate,
    TrainedModels,
    Trial,
    assemble,
    calibrate,
    monotone_constraints,
    search,
    search_grid,
    select,
    validation_metrics,
)

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client

log = logging.getLogger(__name__)


@dataclass
class DaskFeatures:
    """The splits on the cluster, encoded lazily, and the in-process sample ``FeatureSet``."""

    sample: FeatureSet  # frames, X and y of a seeded sample per split; rows = the full counts
    X: dict[str, dd.DataFrame]  # encoded float32 columns, one partition per split part
    y: dict[str, dd.Series]


@dataclass
class Splits:
    """The train / valid / test splits as Dask frames, and their row counts."""

    frames: dict[str, dd.DataFrame]
    rows: dict[str, int]


def read_splits(settings: Settings) -> Splits:
    """The splits as Dask frames (a file or a directory of parts each)."""
    import dask.dataframe as dd

    layout = DataLayout(settings.data_dir)
    return Splits(
        frames={name: dd.read_parquet(str(layout.split(name))) for name in SPLITS},
        rows={name: _row_count(layout.split(name)) for name in SPLITS},
    )


def _sample_rows(frame: dd.DataFrame, rows: int, n_rows: int, seed: int) -> dd.DataFrame:
    """A seeded sample of about ``rows`` rows (all of them when the split is smaller)."""
    frac = rows / max(n_rows, 1)
    return frame if frac >= 1.0 else frame.sample(frac=frac, random_state=seed)


def _row_count(path: Path) -> int:
    """Rows of a split from its Parquet footers (no data read)."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(part).metadata.num_rows for part in parts_of(path))


def _prepare(part: pd.DataFrame, steps: Pipeline, columns: list[str]) -> pd.DataFrame:
    """The fill and derive steps on one partition: the numbers the scaler standardises."""
    return steps.transform(part)[columns].astype("float64")


def _encode(part: pd.DataFrame, pipeline: Pipeline, names: list[str]) -> pd.DataFrame:
    """The fitted feature pipeline on one partition (the pandas engine's ``featurize``)."""
    values = np.asarray(pipeline.transform(part), dtype="float32")
    return pd.DataFrame(values, columns=names, index=part.index)


def _labels(part: pd.DataFrame, dataset: DatasetConfig) -> pd.Series:
    return label_vector(part, dataset).astype("int8")


def featurize(splits: Splits, params: Params) -> DaskFeatures:
    """Fit the feature pipeline (sample for structure, Dask aggregates for the statistics) and
    encode every split per partition. Two passes over the training split: the samples with the
    fill medians, then the scaler's moments."""
    from dask.base import compute

    dataset, engine = params.dataset, params.engine
    frames, counts = splits.frames, splits.rows
    log.info("dask featurize: split rows %s; samples of <= %d rows", counts, engine.sample_rows)
    train = frames["train"]
    medians = [c for c, s in dataset.numeric.items() if s.fill_value is None]
    *sampled, median_values = compute(
        *(
            _sample_rows(frames[n], engine.sample_rows, counts[n], params.split.seed + i)
            for i, n in enumerate(SPLITS)
        ),
        [train[c].quantile(0.5) for c in medians],
    )
    samples = {n: f.reset_index(drop=True) for n, f in zip(SPLITS, sampled, strict=True)}
    pipeline = build_feature_pipeline(dataset, params.features).fit(samples["train"])
    # Exact statistics over every training row replace the sample's: the steps by name, and
    # feature_steps refuses a step this engine does not know (its statistics would stay the
    # sample's without a word).
    named = feature_steps(pipeline)
    named.fill.values_.update({c: float(v) for c, v in zip(medians, median_values, strict=True)})
    scaler = named.encode.named_transformers_["num"]
    scaled = list(scaler.feature_names_in_)
    steps = Pipeline([(FILL, named.fill), (DERIVE, named.derive)])
    meta = _prepare(samples["train"].head(0), steps, scaled)
    prepared = train.map_partitions(_prepare, steps, scaled, meta=meta)
    mean, var = compute(prepared.mean(), prepared.var(ddof=0))
    scaler.mean_ = mean.to_numpy(dtype="float64")
    scaler.var_ = var.to_numpy(dtype="float64")
    scale = np.sqrt(scaler.var_)
    scaler.scale_ = np.where(scale < 10 * np.finfo(np.float64).eps, 1.0, scale)
    scaler.n_samples_seen_ = counts["train"]

    names = encoded_feature_names(pipeline)
    x_meta = pd.DataFrame({n: pd.Series(dtype="float32") for n in names})
    X = {n: frames[n].map_partitions(_encode, pipeline, names, meta=x_meta) for n in SPLITS}
    y = {
        n: frames[n].map_partitions(_labels, dataset, meta=pd.Series(dtype="int8")) for n in SPLITS
    }
    sample = FeatureSet(
        pipeline=pipeline,
        frames=samples,
        X={n: np.asarray(pipeline.transform(f), dtype="float32") for n, f in samples.items()},
        y={n: label_vector(f, dataset).to_numpy() for n, f in samples.items()},
        feature_names=names,
        rows=counts,
    )
    return DaskFeatures(sample=sample, X=X, y=y)


def booster_params(
    values: dict[str, Any], seed: int, monotone: tuple[int, ...]
) -> tuple[dict[str, Any], int]:
    """XGBoost's native parameters and rounds for the ``XGBClassifier`` values the xgboost
    candidate's ``fit`` uses (``n_estimators`` is the number of rounds)."""
    native = {k: v for k, v in values.items() if k != "n_estimators"}
    native |= {
        "objective": "binary:logistic",
        "eval_metric": "auc",
        "tree_method": "hist",
        "seed": seed,
    }
    if any(monotone):
        native["monotone_constraints"] = "(" + ",".join(str(m) for m in monotone) + ")"
    return native, int(values["n_estimators"])


def as_classifier(booster: Any, values: dict[str, Any], params: TrainParams) -> Any:
    """An ``XGBClassifier`` around a booster trained on the cluster: the pandas engine's model
    (the xgboost candidate's own constructor), so the service, the fast scorer and the
    importances read it alike."""
    booster.feature_names = None  # the pandas engine trains on arrays: features f0, f1...
    model = xgboost_kind.classifier(values, params.seed, params.n_jobs, ())
    model.load_model(bytearray(booster.save_raw("json")))
    return model


def _proba(part: pd.DataFrame, model: Any) -> pd.Series:
    return pd.Series(model.predict_proba(part.to_numpy())[:, 1], index=part.index, dtype="float64")


def _scores(X: dd.DataFrame, model: Any) -> dd.Series:
    return X.map_partitions(_proba, model, meta=pd.Series(dtype="float64"))


def scores(X: dd.DataFrame, model: Any) -> np.ndarray:
    """``model.predict_proba(X)[:, 1]`` computed per partition; only the scores come back."""
    return np.asarray(_scores(X, model).compute(), dtype="float64")


def train(
    client: Client,
    features: DaskFeatures,
    params: Params,
    progress: Callable[[int, int], None] | None = None,
) -> TrainedModels:
    """Every candidate of ``train.candidates`` as its module declares for this engine
    (``churn.models``, ``dask``): ``xgboost.dask`` on the cluster, ``sample`` in one process on
    the sample; the others are refused by name (a WARNING; ``TrainedModels.refused``). The
    selection is the pandas engine's (``train.select``)."""
    cfg = params.train
    refused = models.refused_on("dask", cfg.candidates)
    for reason in refused.values():
        log.warning("%s", reason)
    fitted: dict[str, FittedCandidate] = {}
    for name in cfg.candidates:
        if name in refused:
            continue
        kind = models.kind(name)
        if kind.dask == "xgboost.dask":
            with fails_on_lost_worker(
                client,
                f"xgboost.dask training of {name!r}",
                "xgboost.dask cannot train without one of its workers, so the run stopped "
                "before registering anything; rerun it when the cluster has its workers back",
            ):
                fitted[name] = _on_cluster(
                    client, features, kind, cfg, params.engine.collective_timeout_s, progress
                )
        else:
            fitted[name] = _on_sample(features, kind, cfg)
    selected = select(fitted, cfg.select.metric, cfg.select.tolerance, cfg.select.prefer)
    return TrainedModels(
        candidates=fitted, selected=selected, metric=cfg.select.metric, refused=refused
    )


def _on_cluster(
    client: Client,
    features: DaskFeatures,
    kind: models.ModelKind,
    cfg: TrainParams,
    timeout_s: int,
    progress: Callable[[int, int], None] | None,
) -> FittedCandidate:
    """An XGBoost candidate with ``xgboost.dask`` (its configured values, then its seeded
    search trials, best on valid), calibrated on every validation score.

    ``timeout_s`` bounds each collective operation: without it, the workers left wait for a dead
    one for as long as XGBoost's default allows, holding their threads, and the run hangs.
    """
    import time

    from xgboost import dask as dxgb
    from xgboost.collective import Config as CollectiveConfig

    started = time.perf_counter()
    monotone = monotone_constraints(features.sample.feature_names, cfg.monotone)
    dtrain = dxgb.DaskQuantileDMatrix(client, features.X["train"], features.y["train"])
    y_valid = np.asarray(features.y["valid"].compute())
    candidates = search_grid(kind, cfg)
    best: tuple[float, Any, dict[str, Any]] | None = None
    trials: list[Trial] = []
    for i, values in enumerate(candidates):
        native, rounds = booster_params(values, cfg.seed, monotone)
        out = dxgb.train(
            client,
            native,
            dtrain,
            num_boost_round=rounds,
            verbose_eval=False,
            coll_cfg=CollectiveConfig(timeout=timeout_s),
        )
        raw = np.asarray(dxgb.inplace_predict(client, out["booster"], features.X["valid"]))
        auc = float(roc_auc_score(y_valid, raw))
        trials.append(Trial(params=values, valid_roc_auc=auc, candidate=kind.name))
        n = len(candidates)
        log.info("xgboost.dask trial %d/%d: valid ROC AUC %.4f %s", i + 1, n, auc, values)
        if best is None or auc > best[0]:
            best = (auc, out["booster"], values)
        if progress:
            progress(i + 1, len(candidates))
    assert best is not None
    _, booster, values = best
    model = as_classifier(booster, values, cfg)
    sample = features.sample
    # The calibrator's structure from the validation sample, its fit from every validation score.
    calibrated = calibrate(model, sample.X["valid"], sample.y["valid"], cfg.calibration)
    valid_raw = scores(features.X["valid"], model)
    calibrator = calibrated.calibrated_classifiers_[0].calibrators[0].fit(valid_raw, y_valid)
    valid_proba = np.asarray(calibrator.predict(valid_raw), dtype="float64")
    return FittedCandidate(
        name=kind.name,
        model=calibrated,
        params=values,
        trials=trials,
        fit_seconds=time.perf_counter() - started,
        valid=validation_metrics(y_valid, valid_proba, cfg.costs),
    )


def _on_sample(features: DaskFeatures, kind: models.ModelKind, cfg: TrainParams) -> FittedCandidate:
    """A candidate fitted in one process on the seeded sample (``engine.sample_rows`` rows per
    split), searched and calibrated as on the pandas engine."""
    import time

    from threadpoolctl import threadpool_limits

    sample = features.sample
    started = time.perf_counter()
    monotone = monotone_constraints(sample.feature_names, cfg.monotone)
    with threadpool_limits(limits=cfg.n_jobs, user_api="openmp"):
        model, trials = search(
            kind,
            sample.X["train"],
            sample.y["train"],
            sample.X["valid"],
            sample.y["valid"],
            cfg,
            monotone,
        )
    chosen = (
        max(trials, key=lambda t: t.valid_roc_auc).params
        if trials
        else models.values(cfg, kind.name)
    )
    calibrated = calibrate(model, sample.X["valid"], sample.y["valid"], cfg.calibration)
    return FittedCandidate(
        name=kind.name,
        model=calibrated,
        params=chosen,
        trials=trials,
        fit_seconds=time.perf_counter() - started,
        valid=validation_metrics(
            sample.y["valid"], calibrated.predict_proba(sample.X["valid"])[:, 1], cfg.costs
        ),
    )


def evaluate(features: DaskFeatures, trained: TrainedModels, params: Params) -> Evaluation:
    """The pandas engine's ``evaluate_models`` from scores computed on the cluster (one pass over
    valid and test for every trained candidate): thresholds on every validation row, metrics on
    every test row; the fallback rules on the sample."""
    from dask.base import compute

    sample, costs = features.sample, params.train.costs
    names = list(trained.candidates)
    computed = [
        np.asarray(a)
        for a in compute(
            features.y["valid"],
            features.y["test"],
            *(
                _scores(features.X[split], trained.candidates[name].model)
                for name in names
                for split in ("valid", "test")
            ),
        )
    ]
    y_valid, y_test = computed[0], computed[1]
    valid = {name: computed[2 + 2 * i] for i, name in enumerate(names)}
    test = {name: computed[3 + 2 * i] for i, name in enumerate(names)}
    thresholds = {name: choose_threshold(y_valid, valid[name], costs) for name in names}
    rules = fit_rules(
        sample.frames["train"],
        sample.y["train"],
        sample.frames["valid"],
        sample.y["valid"],
        params.dataset,
        costs,
    )
    model = assemble(sample.pipeline, trained.model)
    baseline = assemble(sample.pipeline, trained.baseline)
    threshold, base_threshold = thresholds[trained.selected], thresholds[BASELINE]
    proba, base_proba = test[trained.selected], test[BASELINE]
    metrics = evaluation.classification_metrics(y_test, proba, threshold)
    rows, per_candidate = [], {}
    for name in names:
        candidate = trained.candidates[name]
        found = evaluation.classification_metrics(y_test, test[name], thresholds[name])
        pipeline = assemble(sample.pipeline, candidate.model)
        speed = comparison.one_row_ms(pipeline, params.dataset, sample.frames["test"])
        rows.append(comparison.row(candidate, trained.selected, found, thresholds[name], speed))
        per_candidate[name] = {
            **candidate.valid,
            **found,
            "fit_seconds": candidate.fit_seconds,
            "predict_ms_one_row": speed[0],
            "size_kb": rows[-1]["size_kb"],
        }
    found_importances, importance_kind = evaluation.importances(
        trained.chosen.estimator, sample.feature_names
    )
    return Evaluation(
        model=model,
        baseline=baseline,
        threshold=threshold,
        metrics=metrics,
        baseline_metrics=evaluation.classification_metrics(
            y_test, base_proba, base_threshold, prefix="baseline_test_"
        ),
        rules=with_test_auc(rules, sample.frames["test"], sample.y["test"]),
        figures=evaluation.diagnostic_plots(
            y_test, proba, threshold, base_proba, found_importances, importance_kind
        ),
        selected=trained.selected,
        selection_metric=trained.metric,
        comparison=comparison.table(rows),
        candidates=per_candidate,
    )
