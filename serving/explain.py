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
from pydantic import ValidationError

from churn.config.params import DatasetConfig
from churn.models import explainer_for
from churn.scoring import Columns
from churn.scoring.explain import (
    DEFAULT_TOP_K,
    MAX_TOP_K,
    Explainer,
    NotExplainable,
)
from serving.model import ServedModel
from serving.schemas import UNIT_DOC, ExplainQuery

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_TOP_K", "MAX_TOP_K", "UNIT_DOC", "explain_rows", "options", "query_of"]


def options(body: dict[str, Any], query: ExplainQuery | None) -> int | None:
    """``top_k`` when the request asks for explanations (body ``explain``/``explain_top_k``,
    or query ``?explain=true&top_k=``), else None."""
    wanted = bool(body.get("explain", False))
    top_k: int | None = body.get("explain_top_k")
    if query is not None:
        wanted = wanted or query.explain
        if top_k is None and "top_k" in query.model_fields_set:  # the body's wins
            top_k = query.top_k
    return (top_k or DEFAULT_TOP_K) if wanted else None


def query_of(request: Request) -> ExplainQuery | None:
    """The query string validated by ``ExplainQuery`` (as FastAPI validates a declared query
    model); None without a query string.

    Raises:
        RequestValidationError: a value is not a boolean or an integer in range (422, ``loc``
            names the query parameter).
    """
    if not request.scope["query_string"]:
        return None
    try:
        return ExplainQuery.model_validate(dict(request.query_params))
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        raise RequestValidationError([{**e, "loc": ("query", *e["loc"])} for e in errors]) from None


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
        except Exception as exc:  # a broken explainer costs the reasons, never the scores
            log.exception("building the explainer of v%s failed", model.version)
            built = f"the explanation failed ({type(exc).__name__}); the score is unaffected"
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
