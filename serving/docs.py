"""The API's own documentation: ``/docs`` and ``/redoc`` served offline, with real examples.

The pages' scripts and styles come from the pinned ``fastapi-offline`` package (Swagger UI and
ReDoc's release bundles, MIT) and are served by the service itself under
``/static-offline-docs``: the pages work on a machine with no internet, as the service does.

The examples are added to the OpenAPI document when it is asked for, not when the app is built:

* the request is one customer as a client sends it, in the data's column order, with values
  that agree with each other (a generated customer when the dataset config is the template's,
  otherwise one derived from the config: see :func:`example_record`);
* the response is what the served model answers for that request right now (its version, the
  score and the decision at its threshold), so it is never the generic ``"string"``;
* the ``Explanation`` schema's example is that customer's explanation by the served model
  (what ``?explain=true`` adds to each prediction).
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from churn.config.params import DatasetConfig
from serving.schemas import predict_response, predictions
from serving.state import ServingState

log = logging.getLogger(__name__)

EXAMPLE_REQUEST_ID = "3f1c2a9e8b7d4c6e"
# The generator's customers are drawn from this seed until one has every feature filled in
# (a customer in their first month has no TotalCharges yet: a valid but less telling example).
_EXAMPLE_SEED = 7


def create_documented_app(**kwargs: Any) -> FastAPI:
    """A FastAPI app whose ``/docs`` and ``/redoc`` load their assets from the service."""
    return FastAPIOffline(**kwargs)


def example_record(dataset: DatasetConfig) -> dict[str, Any]:
    """One valid customer for the docs, in the data's column order, with consistent values.

    When the dataset config's columns are the template's (the default generated data), the
    customer is a generated one: tenure, monthly and total charges and the services agree as in
    real rows. For another data set the values come from the config alone (each numeric column
    at a quarter of its range, each categorical column's first level): valid, but the config
    cannot say how columns relate.
    """
    from churn.data import generator

    columns = [*([dataset.id_column] if dataset.id_column else []), *dataset.feature_columns]
    if set(columns) <= set(generator.COLUMNS):
        frame = generator.generate_customers(20, _EXAMPLE_SEED)
        for name, spec in dataset.numeric.items():
            frame[name] = frame[name].replace(" ", None).astype(float)
            if spec.integer:
                frame[name] = frame[name].astype("Int64")
        complete = frame[frame[dataset.feature_columns].notna().all(axis=1)]
        row = complete.iloc[0]
        ordered = [c for c in generator.COLUMNS if c in columns]
        return {c: _plain(row[c]) for c in ordered}
    record: dict[str, Any] = {dataset.id_column: "7590-VHVEG"} if dataset.id_column else {}
    for name in dataset.feature_columns:
        if name in dataset.numeric:
            spec = dataset.numeric[name]
            lo = spec.min if spec.min is not None else 0.0
            hi = spec.max if spec.max is not None else lo + 100.0
            value = lo + (hi - lo) / 4
            record[name] = int(value) if spec.integer else round(value, 2)
        else:
            record[name] = dataset.categorical[name][0]
    return record


def _plain(value: Any) -> Any:
    """A JSON-ready Python value from a pandas/numpy scalar."""
    return value.item() if hasattr(value, "item") else value


def document_examples(app: FastAPI, state: ServingState) -> None:
    """Add the request and response examples of ``POST /predict`` to the OpenAPI document.

    They go on the operation's media types (where Swagger UI's "Try it out" takes its body
    from), so keys keep the data's column order: pydantic sorts the keys of a schema's
    ``examples``.
    """
    generate = app.openapi
    cached: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        document = copy.deepcopy(generate())
        if "record" not in cached:
            cached["record"] = example_record(state.dataset)
        record = cached["record"]
        operation = document["paths"]["/predict"]["post"]
        body = operation["requestBody"]["content"]["application/json"]
        body["example"] = {"records": [record]}
        answer = _example_answer(state, record)
        if answer is not None:
            ok = operation["responses"]["200"]["content"]["application/json"]
            ok["example"] = answer
        explained = _example_explanation(state, record)
        schema = document.get("components", {}).get("schemas", {}).get("Explanation")
        if explained is not None and schema is not None:
            schema["examples"] = [explained]
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _example_answer(state: ServingState, record: dict[str, Any]) -> dict[str, Any] | None:
    """What the served model answers for ``record`` now; None before the first model loaded."""
    model = state.model
    if model is None:
        return None
    columns = {c: [record[c]] for c in state.dataset.feature_columns}
    try:
        proba = float(model.scorer.score(columns, 1)[0])
    except Exception:  # the docs must open even when the model cannot score this record
        log.exception("v%s could not score the docs' example", model.version)
        return None
    scored = predictions([round(proba, 4)], [bool(proba >= model.threshold)])
    return predict_response(model.version, EXAMPLE_REQUEST_ID, scored)


def _example_explanation(state: ServingState, record: dict[str, Any]) -> dict[str, Any] | None:
    """The served model's explanation of ``record`` (top 3 each way); None before a model."""
    from serving.explain import explain_rows

    model = state.model
    if model is None:
        return None
    columns = {c: [record[c]] for c in state.dataset.feature_columns}
    return explain_rows(model, state.dataset, columns, 1, 3)[0]
