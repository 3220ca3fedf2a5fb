"""``/predict`` with ``explain``: the options (body or query), and each served model's explainer.

Only a request that asks for an explanation comes here; without it ``/predict`` does what it
did before (see ``serving/routers/predict.py``). The explainer of a served model
(``churn.scoring.explain``) is built on its first explained request and kept while the model is
served;
a model kind without one (a random forest, the prior-rate rule) gets a ``note`` in each record's
explanation, and the request still succeeds.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError

from churn.config.params import DatasetConfig
from churn.models import explainer_for
from churn.scoring import Columns
from churn.scoring.explain import (
    DEFAULT_TOP_K,
    MAX_TOP_K,
    UNIT_NOTE,
    Explainer,
    NotExplainable,
)
from serving.model import ServedModel

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_TOP_K", "MAX_TOP_K", "UNIT_DOC", "explain_rows", "options"]

UNIT_DOC = (
    f"per record, the fields pushing the score up and down with their contributions in "
    f"{UNIT_NOTE} (XGBoost: exact TreeSHAP; logistic regression: coefficient x (value - mean); "
    f"fallback rules: their points)."
)
# What pydantic (and so FastAPI) reads as a boolean: the schema says boolean, so an empty
# ``?explain=`` is a 422 like any other non-boolean (the API fuzz test sends it).
_TRUE = {"true", "t", "1", "yes", "y", "on"}
_FALSE = {"false", "f", "0", "no", "n", "off"}


def options(body: dict[str, Any], request: Request) -> int | None:
    """``top_k`` when the request asks for explanations (body ``explain``/``explain_top_k``,
    or query ``?explain=true&top_k=``), else None.

    Raises:
        RequestValidationError: a query value is not a boolean or an integer in range (422,
            ``loc`` names the query parameter).
    """
    wanted = bool(body.get("explain", False))
    top_k: int | None = body.get("explain_top_k")
    if request.scope["query_string"]:
        query = request.query_params
        if "explain" in query:
            flag = query["explain"].strip().lower()
            if flag not in _TRUE | _FALSE:
                raise _query_error("explain", "Input should be a valid boolean (true or false)")
            wanted = wanted or flag in _TRUE
        if "top_k" in query:  # checked also when the body's explain_top_k wins
            try:
                asked: int | None = int(query["top_k"])
            except ValueError:
                asked = None
            if asked is None or not 1 <= asked <= MAX_TOP_K:
                raise _query_error("top_k", f"Input should be an integer from 1 to {MAX_TOP_K}")
            top_k = asked if top_k is None else top_k
    return (top_k or DEFAULT_TOP_K) if wanted else None


def _query_error(name: str, msg: str) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": ("query", name), "msg": msg}])


class Explainers:
    """The explainer of each served model, built once (models are swapped whole: a new model
    gets a new explainer; a model no longer referenced drops its own)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_model: dict[int, tuple[weakref.ref[ServedModel], Explainer | str]] = {}

    def get(self, model: ServedModel, dataset: DatasetConfig) -> Explainer | str:
        """The model's explainer, or the note saying why it has none."""
        entry = self._by_model.get(id(model))
        if entry is not None and entry[0]() is model:
            return entry[1]
        try:
            built: Explainer | str = explainer_for(model.scorer, dataset)
        except NotExplainable as exc:
            built = str(exc)
            log.info("v%s cannot be explained: %s", model.version, built)
        with self._lock:
            self._by_model = {k: v for k, v in self._by_model.items() if v[0]() is not None}
            self._by_model[id(model)] = (weakref.ref(model), built)
        return built


EXPLAINERS = Explainers()


def explain_rows(
    model: ServedModel, dataset: DatasetConfig, columns: Columns, n: int, top_k: int
) -> list[dict[str, Any]]:
    """Each row's explanation by ``model`` (the model that answered), or a note per row.

    Never raises: an explainer that fails is logged (ERROR) and the note says so.
    """
    explainer = EXPLAINERS.get(model, dataset)
    if not isinstance(explainer, str):
        try:
            explanations = explainer.explain(columns, n)
            return [explanations.record(i, top_k) for i in range(n)]
        except Exception as exc:
            log.exception(
                "explaining v%s failed; the scores are answered without reasons", model.version
            )
            explainer = f"the explanation failed ({type(exc).__name__}); the score is unaffected"
    empty: dict[str, Any] = dict.fromkeys(("method", "unit", "base", "margin"))
    return [{**empty, "up": [], "down": [], "note": explainer} for _ in range(n)]
