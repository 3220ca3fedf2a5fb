"""The fitted pipeline replayed with numpy on raw columns: the fast scorer serving uses."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.pipeline import Pipeline

from churn.features.kinds import Derived, UnknownKind, as_float
from churn.features.pipeline import UnknownStep, feature_steps, model_steps
from churn.scoring.columns import (
    ROW_BY_ROW,
    SMALL,
    Columns,
    level_codes,
    level_index,
    numeric_column,
)
from churn.scoring.trees import NotSupported, NumpyForest, NumpyTrees, expit_one

# Up to this many rows the compiled tree walk (churn/scoring/walk.py) beats XGBoost's own
# predict several times over (timed on the default model, one thread); from about 128 rows the
# booster wins.
TREE_ROWS = 32


class NotCompilable(Exception):
    """The pipeline holds a step the numpy replay does not know; the plain pipeline is used."""


class CompiledScorer:
    """The same fitted pipeline, replayed with numpy on raw columns (no pandas per request).

    What it knows: the artefact's steps by name (``churn.features.pipeline.model_steps`` and
    ``feature_steps``): ``fill``, ``derive`` and ``encode`` (a ``ColumnTransformer`` of
    ``StandardScaler`` and ``OneHotEncoder(handle_unknown="ignore")``), then the model. The
    feature steps are not re-implemented: it uses the fitted fill values, each derived
    feature's own arithmetic (``churn.features.kinds``, in its frame and its one-record form),
    and reads the encoder's fitted statistics and categories. The model: with ``raw_score`` (the
    model kind's compiled replay, declared in ``churn.models``) and a binary
    ``CalibratedClassifierCV`` (sigmoid or isotonic), its raw score and the calibrators: ``kind``
    is ``compiled``; otherwise the model's own ``predict_proba`` on the replayed matrix, with its
    OpenMP and BLAS threads bounded by ``threads`` per call: ``kind`` is ``predict_proba``. Any
    other step, or a derived-feature kind without arithmetic, raises :class:`NotCompilable`
    naming it.

    ``churn.scoring.check`` compares it with the real pipeline, at training (the test split)
    and at load (probe rows), before it is used.
    """

    def __init__(
        self, pipeline: Pipeline, raw_score: RawScore | None = None, threads: int = 1
    ) -> None:
        try:
            features, model = model_steps(pipeline)
            steps = feature_steps(features)
            self._derived: list[Derived] = steps.derive.plan()
        except (UnknownStep, UnknownKind) as e:
            raise NotCompilable(str(e)) from e
        self.pipeline = pipeline
        self._fill: dict[str, float] = dict(steps.fill.values_)
        encode = steps.encode
        self._blocks = self._encoder_blocks(encode)
        self.n_features = sum(width for _, _, width, _ in self._blocks)
        predict = _model_predict(model, raw_score, threads)
        self._predict, self.model_path, self._dtype, self._predict_one, replayed = predict
        # What scores, named as /version, /ready and /metrics show it: the compiled replay of
        # the model too, or the replayed features and then the model's own predict_proba.
        self.kind = "compiled" if replayed else "predict_proba"
        self.reason = ""  # why the model is not replayed (set by whoever chose the scorer)
        self._scale_plan: list[tuple[int, str, float, float]] = []
        self._onehot_plan: list[tuple[int, str, dict[Any, int]]] = []
        self._categories: dict[str, dict[Any, int]] = {}
        offset = 0
        for kind, cols, width, state in self._blocks:
            if kind == "scale":
                mean, scale = state
                for j, c in enumerate(cols):
                    self._scale_plan.append((offset + j, c, float(mean[j]), float(scale[j])))
            else:
                start = offset
                for c, cats in zip(cols, state, strict=True):
                    self._categories[c] = level_index(cats)
                    self._onehot_plan.append((start, c, self._categories[c]))
                    start += len(cats)
            offset += width
        # Scaled columns that no step turns into numbers (the few-row path converts them).
        made = {*self._fill, *(d.name for d in self._derived)}
        self._raw_numbers = sorted({c for _, c, _, _ in self._scale_plan} - made)
        # The columns an encoded row is made of.
        self._encoded = [c for _, c, _, _ in self._scale_plan] + [
            c for _, c, _ in self._onehot_plan
        ]

    @staticmethod
    def _encoder_blocks(encode: Any) -> list[tuple[str, list[str], int, Any]]:
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        blocks: list[tuple[str, list[str], int, Any]] = []
        for _, transformer, cols in encode.transformers_:
            if transformer == "drop" or len(cols) == 0:
                continue
            if isinstance(transformer, StandardScaler):
                mean = transformer.mean_ if transformer.with_mean else np.zeros(len(cols))
                scale = transformer.scale_ if transformer.with_std else np.ones(len(cols))
                blocks.append(("scale", list(cols), len(cols), (mean, scale)))
            elif (
                isinstance(transformer, OneHotEncoder)
                and transformer.drop is None
                and transformer.handle_unknown == "ignore"
            ):
                cats = [list(c) for c in transformer.categories_]
                blocks.append(("onehot", list(cols), sum(map(len, cats)), cats))
            else:
                raise NotCompilable(f"unsupported encoder {type(transformer).__name__}")
        return blocks

    def encode(self, columns: Columns, n: int) -> np.ndarray:
        """The encoded matrix the model sees: float32 for the tree models (they compare in
        float32), float64 for the others (as the pipeline's transform hands them over)."""
        if n == 1:
            return self._encode_one(columns)[None, :]
        if n <= ROW_BY_ROW:
            return self._encode_rows(columns, n)
        values: dict[str, Any] = dict(columns)
        if n > SMALL:
            # Large level columns become pandas categoricals once (as Parquet files arrive): the
            # count features and the one-hot codes then test each distinct value, not each row.
            for c in self._categories:
                v = values[c]
                if not (isinstance(v, pd.Series) and isinstance(v.dtype, pd.CategoricalDtype)):
                    values[c] = pd.Series(pd.Categorical(np.asarray(v, dtype=object)))
        for c, fill in self._fill.items():
            col = numeric_column(values[c])
            missing = np.isnan(col)
            values[c] = np.where(missing, fill, col) if missing.any() else col
        values.update({d.name: d.frame(values, n) for d in self._derived})
        X = np.zeros((n, self.n_features), dtype=self._dtype)
        offset = 0
        for kind, cols, width, state in self._blocks:
            if kind == "scale":
                mean, scale = state
                for j, c in enumerate(cols):
                    X[:, offset + j] = (numeric_column(values[c]) - mean[j]) / scale[j]
            else:
                start = offset
                for c, cats in zip(cols, state, strict=True):
                    code = level_codes(values[c], self._categories[c], n)
                    seen = np.flatnonzero(code >= 0)
                    X[seen, start + code[seen]] = 1.0
                    start += len(cats)
            offset += width
        return X

    def _encode_rows(self, columns: Columns, n: int) -> np.ndarray:
        """``encode`` for a few rows in plain Python lists (the same steps, the same arithmetic)."""
        values: dict[str, Any] = dict(columns)
        for c, fill in self._fill.items():
            values[c] = [fill if v is None or v != v else float(v) for v in values[c]]
        values.update({d.name: d.frame(values, n).tolist() for d in self._derived})
        for c in self._raw_numbers:
            values[c] = numeric_column(values[c]).tolist()
        X = np.empty((n, self.n_features), dtype=self._dtype)
        for i in range(n):
            X[i] = self._row({c: values[c][i] for c in self._encoded})
        return X

    def _encode_one(self, columns: Columns) -> np.ndarray:
        """``encode`` of one record as a 1-D row: the same steps and arithmetic on Python values
        (the fill values, each derived feature's ``record`` form), the same bits as the
        matrix paths (``tests/unit/scoring/test_scoring.py``), without numpy calls on one-element
        arrays
        (for one record their fixed cost is the time)."""
        values = {c: v[0] for c, v in columns.items()}
        for c, fill in self._fill.items():
            v = values[c]
            values[c] = fill if v is None or v != v else float(v)
        values.update({d.name: d.record(values) for d in self._derived})
        for c in self._raw_numbers:  # as numeric_column converts a column of this one value
            v = values[c]
            number = type(v) is float or type(v) is int or v is None
            values[c] = as_float(v) if number else float(numeric_column([v])[0])
        return np.array(self._row(values), dtype=self._dtype)

    def _row(self, values: Mapping[str, Any]) -> list[float]:
        """One record's encoded row from its values by name (numbers filled and derived)."""
        row = [0.0] * self.n_features
        for pos, c, mean, scale in self._scale_plan:
            row[pos] = (values[c] - mean) / scale
        for start, c, index in self._onehot_plan:
            k = index.get(values[c])
            if k is not None:
                row[start + k] = 1.0
        return row

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Churn probabilities of already encoded rows (see ``encode``)."""
        return np.asarray(self._predict(X))

    def score(self, columns: Columns, n: int) -> np.ndarray:
        if n == 1:
            return np.array([self.score_one(columns)])
        return self._predict(self.encode(columns, n))

    def score_one(self, columns: Columns) -> float:
        """``score`` of one record, as a float (the same value): in Python floats around the
        tree walk when the model has that path, without one-element arrays."""
        if self._predict_one is not None:
            return self._predict_one(self._encode_one(columns))
        return float(self._predict(self.encode(columns, 1))[0])


OneRow = Callable[[np.ndarray], float]


def _model_predict(
    model: Any, raw_score: RawScore | None, threads: int
) -> tuple[Callable[[np.ndarray], np.ndarray], str, type[np.floating[Any]], OneRow | None, bool]:
    """The fastest exact ``X -> P(churn)`` for the final estimator, what it uses, the matrix's
    dtype it needs, the same for one encoded row in Python floats when every part has one
    (the compiled tree walk with sigmoid calibration) else None, and whether the model itself
    is replayed.

    A binary ``CalibratedClassifierCV`` around a model whose kind declares ``raw_score`` is
    taken apart: the fitted model's raw score (``raw_score``: e.g. the compiled tree walk of
    XGBoost, the numpy walk of a forest, a linear score) and the calibrators, combined as
    ``CalibratedClassifierCV.predict_proba`` combines them (the mean over its classifiers).
    Isotonic calibration gets the model's own raw output and the calibrator's own ``predict``:
    a piecewise-linear map can be steep, so only its exact input is safe. Anything else is the
    model's own ``predict_proba`` on the replayed matrix, its threads bounded to ``threads``
    (an OpenMP model left to itself spreads one row over every core: 100 ms instead of 2).

    The one-row function does the same operations in the same order on floats (the same value
    to the last bit, ``tests/unit/scoring/test_scoring.py``): for a single record the dozen numpy
    calls
    on one-element arrays around the tree walk cost more than the arithmetic.
    """
    from sklearn.calibration import CalibratedClassifierCV, _SigmoidCalibration
    from sklearn.isotonic import IsotonicRegression

    bounded = Bounded(threads)

    def generic(X: np.ndarray) -> np.ndarray:
        with bounded():
            return np.asarray(model.predict_proba(X)[:, 1], dtype=np.float64)

    fallback = (generic, f"{type(model).__name__}.predict_proba", np.float64, None, False)
    if raw_score is None:
        return fallback
    if not isinstance(model, CalibratedClassifierCV) or len(model.classes_) != 2:
        return fallback
    parts: list[tuple[Callable[[np.ndarray], np.ndarray], Any]] = []
    one_parts: list[tuple[OneRow, float, float]] = []
    methods, kinds, dtypes = set(), set(), set()
    for cc in model.calibrated_classifiers_:
        inner = getattr(cc.estimator, "estimator", cc.estimator)  # FrozenEstimator wraps
        if len(cc.calibrators) != 1:
            return fallback
        calibrator = cc.calibrators[0]
        if isinstance(calibrator, _SigmoidCalibration):
            methods.add("sigmoid")
        elif isinstance(calibrator, IsotonicRegression):
            methods.add("isotonic")
        else:
            return fallback
        raw = raw_score(inner, sigmoid=isinstance(calibrator, _SigmoidCalibration))
        if raw is None:
            return fallback
        kinds.add(raw[1])
        dtypes.add(raw[2])
        parts.append((raw[0], calibrator))
        if raw[3] is not None and isinstance(calibrator, _SigmoidCalibration):
            one_parts.append((raw[3], float(calibrator.a_), float(calibrator.b_)))
    if len(dtypes) != 1:
        return fallback

    def calibrated(X: np.ndarray) -> np.ndarray:
        out = np.zeros(0)
        for i, (raw, calibrator) in enumerate(parts):
            score = raw(X)
            if isinstance(calibrator, _SigmoidCalibration):
                q = expit(-(calibrator.a_ * score + calibrator.b_))
            else:
                q = np.asarray(calibrator.predict(score), dtype=np.float64)
            out = q if i == 0 else out + q
        if len(parts) > 1:  # the mean, as CalibratedClassifierCV takes it
            out /= len(parts)
        return np.asarray(out, dtype=np.float64)

    def calibrated_one(x: np.ndarray) -> float:
        total = 0.0
        for i, (raw_one, a, b) in enumerate(one_parts):
            q = expit_one(-(a * raw_one(x) + b))
            total = q if i == 0 else total + q
        if len(one_parts) > 1:
            total /= len(one_parts)
        return total

    path = f"{'/'.join(sorted(kinds))}, {'/'.join(sorted(methods))} calibration"
    one = calibrated_one if len(one_parts) == len(parts) else None
    return calibrated, path, dtypes.pop(), one, True


class Bounded:
    """A context that bounds the OpenMP and BLAS threads of what runs inside it to ``threads``.

    The controller is made at the first use, when the model's libraries are loaded (it limits
    the thread pools loaded when it is made); entering it costs about 0.03 ms.
    """

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._controller: Any = None

    def __call__(self) -> Any:
        if self._controller is None:
            from threadpoolctl import ThreadpoolController

            self._controller = ThreadpoolController()
        return self._controller.limit(limits=self.threads)


RawPath = tuple[Callable[[np.ndarray], np.ndarray], str, type[np.floating[Any]], OneRow | None]
# A model kind's compiled replay (declared in ``churn.models``): ``(fitted model, sigmoid) ->
# (X -> the score its calibrator was fitted on, the name of that path, the dtype the model
# computes in, one row's score as a float or None)``, or None when this fitted model has no
# replay after all (then its own ``predict_proba`` serves).
RawScore = Callable[..., RawPath | None]


def xgboost_raw_score(inner: Any, *, sigmoid: bool) -> RawPath:
    """XGBoost's margin: the compiled tree walk for up to ``TREE_ROWS`` rows with sigmoid
    calibration, else the booster (float32, as XGBoost compares)."""
    try:
        iterations = (0, int(inner.best_iteration) + 1)
    except AttributeError:
        iterations = (0, 0)
    booster = inner.get_booster()
    trees: NumpyTrees | None = None
    if sigmoid:
        try:
            trees = NumpyTrees(booster, iterations)
        except NotSupported:
            trees = None

    def xgb(X: np.ndarray) -> np.ndarray:
        if trees is not None and X.shape[0] <= TREE_ROWS:
            return trees.predict_proba(X)
        p = booster.inplace_predict(X, iteration_range=iterations, validate_features=False)
        return np.asarray(p, dtype=np.float64) if sigmoid else np.asarray(p)

    one = trees.proba_one if trees is not None else None
    return xgb, "XGBoost booster", np.float32, one


def forest_raw_score(inner: Any, *, sigmoid: bool) -> RawPath:
    """A random forest's churn share: the numpy walk of its trees for up to ``TREE_ROWS`` rows
    with sigmoid calibration, else its own ``predict_proba``."""
    forest: NumpyForest | None = None
    if sigmoid:
        try:
            forest = NumpyForest(inner)
        except NotSupported:
            forest = None

    def rf(X: np.ndarray) -> np.ndarray:
        if forest is not None and X.shape[0] <= TREE_ROWS and not np.isnan(X).any():
            return forest.predict_proba(X)
        return np.asarray(inner.predict_proba(X)[:, 1], dtype=np.float64)

    return rf, "random-forest trees", np.float32, None


def linear_raw_score(inner: Any, *, sigmoid: bool) -> RawPath | None:
    """A binary linear model's score (``X @ coef + intercept``); None for a multi-row ``coef_``."""
    if getattr(inner, "coef_", np.zeros((2, 0))).shape[0] != 1:
        return None
    coef = np.asarray(inner.coef_[0], dtype=np.float64)
    intercept = float(inner.intercept_[0])

    def linear(X: np.ndarray) -> np.ndarray:
        if not sigmoid:
            return np.asarray(inner.decision_function(X), dtype=np.float64)
        return np.asarray(X @ coef + intercept, dtype=np.float64)

    return linear, "logistic-regression coefficients", np.float64, None
