"""The Open Inference Protocol's tensors: a request's inputs as ``/predict`` records, a response's
outputs from ``/predict``'s predictions, the model's metadata (the package says the layout)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import orjson

from churn.config.identity import identity
from churn.config.params import DatasetConfig
from serving.contracts.common import ContractError
from serving.schemas import DECISION, EXPLANATION, PREDICTIONS, PROBABILITY, UNSEEN, VERSION

DATATYPES = frozenset(
    {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}
    | {"FP16", "FP32", "FP64", "BYTES"}
)
# The outputs: the two every answer has, then the optional ones (a BYTES element per record,
# present when /predict's predictions carry the field).
OUTPUTS = {PROBABILITY: "FP64", DECISION: "BOOL"}
OPTIONAL_OUTPUTS = (VERSION, UNSEEN, EXPLANATION)


def column_datatypes(dataset: DatasetConfig) -> dict[str, str]:
    """Each input's datatype: the id (optional), then the features in the contract's order."""
    types: dict[str, str] = {}
    if dataset.id_column:
        types[dataset.id_column] = "INT64" if dataset.id_type == "integer" else "BYTES"
    for name, spec in dataset.numeric.items():
        types[name] = "INT64" if spec.integer else "FP64"
    for name, levels in dataset.categorical.items():
        integers = all(isinstance(level, int) and not isinstance(level, bool) for level in levels)
        types[name] = "INT64" if integers else "BYTES"
    return types


def metadata(dataset: DatasetConfig, name: str, version: str | None) -> dict[str, Any]:
    """The model metadata response: one ``[-1]`` input per column, the outputs."""
    inputs = [
        {"name": column, "datatype": datatype, "shape": [-1]}
        for column, datatype in column_datatypes(dataset).items()
    ]
    outputs = [{"name": n, "datatype": t, "shape": [-1]} for n, t in OUTPUTS.items()]
    outputs += [{"name": n, "datatype": "BYTES", "shape": [-1]} for n in OPTIONAL_OUTPUTS]
    return {
        "name": name,
        "versions": [version] if version else [],
        "platform": identity().project,  # the serving image's own runtime
        "inputs": inputs,
        "outputs": outputs,
    }


def records(data: Any) -> tuple[list[dict[str, Any]], Any, list[str] | None, str | None]:
    """``(records, parameters, requested output names or None, request id or None)`` of an
    inference request: one input per column, each of shape ``[n]`` (or ``[n, 1]``), the
    ``i``-th element of every input making the ``i``-th record.

    Raises:
        ContractError: 400 naming the tensor or field that breaks the protocol.
    """
    if not isinstance(data, dict):
        raise ContractError(400, 'the body must be an inference request: {"inputs": [...]}')
    inputs = data.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ContractError(400, "inputs: must be a non-empty list of tensors")
    columns: dict[str, list[Any]] = {}
    rows: int | None = None
    for i, tensor in enumerate(inputs):
        name, flat = _tensor(i, tensor)
        if name in columns:
            raise ContractError(400, f"input '{name}' is given twice")
        if rows is not None and len(flat) != rows:
            raise ContractError(
                400, f"input '{name}' has {len(flat)} elements, the inputs before it {rows}"
            )
        rows = len(flat)
        columns[name] = flat
    n = rows or 0
    found = [{c: v[i] for c, v in columns.items()} for i in range(n)]
    request_id = data.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ContractError(400, "id: must be a string")
    return found, data.get("parameters"), _requested(data.get("outputs")), request_id


def _tensor(i: int, tensor: Any) -> tuple[str, list[Any]]:
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        raise ContractError(400, f"inputs[{i}]: must be a tensor with a name")
    name = tensor["name"]
    for key in ("shape", "datatype", "data"):
        if key not in tensor:
            raise ContractError(400, f"input '{name}': {key} is required")
    datatype, shape = tensor["datatype"], tensor["shape"]
    if datatype not in DATATYPES:
        raise ContractError(
            400, f"input '{name}': datatype {datatype!r} is not one of the protocol's"
        )
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= 2
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        or math.prod(shape) != shape[0]
    ):
        raise ContractError(
            400,
            f"input '{name}': shape must be [n] or [n, 1] (one element per record), not {shape}",
        )
    flat = _flatten(tensor["data"])
    if len(flat) != shape[0]:
        raise ContractError(
            400, f"input '{name}': shape {shape} holds {shape[0]} elements, data has {len(flat)}"
        )
    return name, flat


def _flatten(data: Any) -> list[Any]:
    """Row-major data as one list (the protocol allows nested lists)."""
    if not isinstance(data, list):
        return [data]
    flat: list[Any] = []
    for item in data:
        flat.extend(_flatten(item) if isinstance(item, list) else [item])
    return flat


def _requested(outputs: Any) -> list[str] | None:
    if outputs is None:
        return None
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise ContractError(400, 'outputs: must be a list of {"name": ...}')
    names = [o["name"] for o in outputs]
    known = [*OUTPUTS, *OPTIONAL_OUTPUTS]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ContractError(
            400, f"outputs: {unknown[0]!r} is not an output of this model ({', '.join(known)})"
        )
    return names


def where(loc: Sequence[Any]) -> str:
    """A validation error's place in the request: ``input 'tenure' element 3``."""
    parts = list(loc)
    if len(parts) >= 3 and parts[0] == "records" and isinstance(parts[1], int):
        return f"input '{parts[2]}' element {parts[1]}"
    if parts and parts[0] == "records":
        return "inputs"
    return "parameters." + ".".join(map(str, parts)) if parts else "the body"


def outputs(answered: dict[str, Any], requested: list[str] | None) -> list[dict[str, Any]]:
    """The response's output tensors from ``/predict``'s answer: ``churn_probability`` (FP64)
    and ``churn`` (BOOL), then each optional field the predictions carry as BYTES (the version
    as text, the others as JSON text), one element per record; only ``requested`` when given."""
    predictions = answered[PREDICTIONS]
    n = len(predictions)
    tensors = [
        {"name": name, "datatype": datatype, "shape": [n], "data": [p[name] for p in predictions]}
        for name, datatype in OUTPUTS.items()
    ]
    for name in OPTIONAL_OUTPUTS:
        if predictions and name in predictions[0]:
            data = [
                p[name] if name == VERSION else orjson.dumps(p[name]).decode() for p in predictions
            ]
            tensors.append({"name": name, "datatype": "BYTES", "shape": [n], "data": data})
    if requested is not None:
        tensors = [t for t in tensors if t["name"] in requested]
    return tensors
