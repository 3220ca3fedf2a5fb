"""Which scorer serves a model, checked against the pipeline: at training and at load."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from churn.champion import ServingCheck
from churn.config.params import DatasetConfig
from churn.scoring.columns import ROW_BY_ROW, SMALL, Columns
from churn.scoring.reference import PipelineScorer, Scorer
from churn.scoring.replay import TREE_ROWS, CompiledScorer, NotCompilable, RawScore

log = logging.getLogger(__name__)

# The largest difference from ``pipeline.predict_proba`` the compiled replay may show.
TOLERANCE = 1e-5
# The one-row and few-row passes of the training check score at most this many test rows each
# (one call per row or per few rows); the vectorised pass scores them all.
SMALL_PASS_ROWS = 10_000
# Probe sizes: one row, the few-row encoding, the tree walk's largest batch, the booster, and
# the pandas categorical path.
_PROBE_SIZES = (1, ROW_BY_ROW, TREE_ROWS, TREE_ROWS + 1, SMALL + 1)


def probe_columns(dataset: DatasetConfig, n: int = 64, seed: int = 0) -> dict[str, list[Any]]:
    """Varied rows over the whole contract (levels, ranges, nulls, one unseen level)."""
    rng = np.random.default_rng(seed)
    cols: dict[str, list[Any]] = {}
    for name, spec in dataset.numeric.items():
        lo = spec.min if spec.min is not None else -1e3
        hi = spec.max if spec.max is not None else 1e3
        values: list[Any] = list(rng.uniform(lo, hi, n))
        if spec.integer:
            values = [round(v) for v in values]
        values[0] = lo
        if spec.nullable and n > 1:
            values[1] = None
        cols[name] = values
    for name, levels in dataset.categorical.items():
        picked = [levels[i] for i in rng.integers(0, len(levels), n)]
        if n > 2:
            picked[2] = 99 if isinstance(levels[0], int) else "an unseen level"
        cols[name] = picked
    return cols


def compile_pipeline(
    pipeline: Pipeline, dataset: DatasetConfig, raw_score: RawScore | None = None
) -> Scorer:
    """The numpy replay when it matches the pipeline on probe rows, else the pipeline itself.

    ``raw_score`` is the model kind's compiled replay (``churn.models`` chooses it): with it the
    replay scores the model too (``kind`` ``compiled``), without it the replayed features go to
    the model's own ``predict_proba`` (``kind`` ``predict_proba``). The returned
    :class:`PipelineScorer` carries the ``reason`` the replay is not used; serving reports it
    (``/ready`` degraded, a warning, ``/metrics``).
    """
    try:
        compiled = CompiledScorer(pipeline, raw_score)
    except NotCompilable as exc:
        return PipelineScorer(pipeline, dataset, reason=f"not compilable: {exc}")
    reference = PipelineScorer(pipeline, dataset)
    try:
        gap = _probe_gap(compiled, reference, dataset)
    except NonFiniteScores as exc:  # served by the pipeline, whose NaN every request refuses
        log.error("%s", exc)
        return PipelineScorer(pipeline, dataset, reason=str(exc))
    except Exception as exc:
        log.exception("the numpy replay failed on probe rows")
        return PipelineScorer(pipeline, dataset, reason=_failed(exc))
    if gap > TOLERANCE:
        return PipelineScorer(pipeline, dataset, reason=_differs(gap, "probe rows"))
    return compiled


def check_serving(
    pipeline: Pipeline,
    dataset: DatasetConfig,
    test_frame: pd.DataFrame,
    raw_score: RawScore | None = None,
    why_not_compiled: str = "",
) -> ServingCheck:
    """Check the serving scorer against ``pipeline.predict_proba`` on the test split.

    The test rows are scored by the compiled replay one at a time, a few at a time, in the tree
    walk's batches and all at once (each path serving uses), then the probe rows that serving
    checks at load. The result is recorded on the model version; a model the replay cannot
    serve within :data:`TOLERANCE` is served by the slower pipeline, and that is logged here as
    a warning. Any NaN or infinite score, from the replay or from the pipeline itself, fails the
    check (a ``pipeline`` result naming the rows): a NaN compares false with any tolerance.

    Args:
        pipeline: the fitted pipeline training registers (features and model).
        dataset: the dataset config (the raw columns serving receives).
        test_frame: the test split as training holds it.
        raw_score: the model kind's compiled replay (``churn.models``); None: the model's own
            ``predict_proba`` after the replayed features.
        why_not_compiled: why there is no ``raw_score`` (recorded as the check's reason).
    """
    rows = len(test_frame)
    try:
        compiled = CompiledScorer(pipeline, raw_score)
    except NotCompilable as exc:
        return _slow(rows, None, f"not compilable: {exc}")
    want = np.asarray(pipeline.predict_proba(test_frame)[:, 1], dtype=np.float64)
    bad = _non_finite(want)
    if bad:
        return _slow(rows, None, _nan_reason("the pipeline itself", bad, len(want), "test"))
    # As the API hands them over: Python lists of numbers (NaN for a missing one) and levels.
    columns = {c: test_frame[c].tolist() for c in dataset.feature_columns}
    gap = 0.0
    try:
        for size, limit in (
            (1, SMALL_PASS_ROWS),
            (ROW_BY_ROW, SMALL_PASS_ROWS),
            (TREE_ROWS, rows),
            (max(rows, 1), rows),
        ):
            for start, stop in _chunks(min(rows, limit), size):
                chunk = {c: v[start:stop] for c, v in columns.items()}
                got = compiled.score(chunk, stop - start)
                gap = max(gap, _max_gap(got, want[start:stop], "test"))
        gap = max(gap, _probe_gap(compiled, PipelineScorer(pipeline, dataset), dataset))
    except NonFiniteScores as exc:
        return _slow(rows, None, str(exc))
    except Exception as exc:
        log.exception("the numpy replay failed on the test split")
        return _slow(rows, None, _failed(exc))
    if gap > TOLERANCE:
        return _slow(rows, gap, _differs(gap, "the test split"))
    ms = one_row_ms(compiled, columns)
    reason = "" if compiled.kind == "compiled" else why_not_compiled
    log.info(
        "serving scorer: %s, max |difference| %.2g on %d test rows, one row %.3f ms%s",
        compiled.kind,
        gap,
        rows,
        ms,
        f" ({reason})" if reason else "",
    )
    return ServingCheck(
        scorer=compiled.kind, max_abs_diff=gap, rows=rows, reason=reason, one_row_ms=ms
    )


def one_row_ms(scorer: Scorer, columns: Columns, repeats: int = 200) -> float:
    """The median milliseconds ``scorer`` takes to score the first row of ``columns``."""
    import time

    row = {c: list(v[:1]) for c, v in columns.items()}
    scorer.score(row, 1)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        scorer.score(row, 1)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


class NonFiniteScores(ValueError):
    """The replay or the pipeline returned a NaN or infinite score; the message says which."""


def _non_finite(scores: np.ndarray) -> int:
    return int(np.count_nonzero(~np.isfinite(scores)))


def _nan_reason(who: str, bad: int, rows: int, where: str) -> str:
    return (
        f"{who} returned NaN or infinite scores on {bad} of {rows} {where} rows: such a "
        "score is never served (each request it reaches falls back to the rules)"
    )


def _max_gap(got: np.ndarray, want: np.ndarray, where: str) -> float:
    """The largest ``|got - want|``.

    Raises:
        NonFiniteScores: either side has a NaN or infinite score (``max`` and ``>`` would
            take a NaN gap for a pass).
    """
    for who, scores in (("the pipeline itself", want), ("the replay", got)):
        bad = _non_finite(np.asarray(scores, dtype=np.float64))
        if bad:
            raise NonFiniteScores(_nan_reason(who, bad, len(scores), where))
    return float(np.max(np.abs(got - want))) if len(got) else 0.0


def _probe_gap(
    compiled: CompiledScorer, reference: PipelineScorer, dataset: DatasetConfig
) -> float:
    gap = 0.0
    for n in _PROBE_SIZES:
        probe: Columns = probe_columns(dataset, n=n, seed=n)
        got, want = compiled.score(probe, n), reference.score(probe, n)
        gap = max(gap, _max_gap(got, want, "probe"))
    return gap


def _chunks(rows: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, rows, size):
        yield start, min(start + size, rows)


def _slow(rows: int, gap: float | None, reason: str) -> ServingCheck:
    log.warning("serving will use the slower pipeline scorer: %s", reason)
    return ServingCheck(scorer="pipeline", max_abs_diff=gap, rows=rows, reason=reason)


def _failed(exc: Exception) -> str:
    return f"the replay failed: {type(exc).__name__}: {str(exc)[:300]}"


def _differs(gap: float, rows: str) -> str:
    return f"the replay differs from the pipeline by {gap:.2g} on {rows} (tolerance {TOLERANCE:g})"
