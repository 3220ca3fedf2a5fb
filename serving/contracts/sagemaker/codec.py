"""SageMaker's ``/invocations`` bodies: JSON or CSV in, JSON or CSV out (the package says which)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from fastapi import Request, Response

from churn.config.params import DatasetConfig
from serving.contracts.common import (
    JSON,
    Context,
    ContractError,
    authorize,
    decode_json,
    dotted,
    header_key,
    is_json,
    json_response,
    media_type,
    predict,
    validate,
)
from serving.deps import API_KEY_HEADER
from serving.schemas import DECISION, PREDICTIONS, PROBABILITY

CSV = "text/csv"
ATTRIBUTES_HEADER = "x-amzn-sagemaker-custom-attributes"


async def invocation(context: Context, request: Request) -> Response:
    """The answer to one ``POST /invocations``.

    Raises:
        ContractError: the request is refused (the status and the reason).
    """
    authorize(context.state, header_key(request) or attribute_key(request))
    accept = _accepted(request.headers.get("accept"))
    content_type = request.headers.get("content-type")
    raw = await request.body()
    if is_json(content_type):
        body = _json_body(context, decode_json(raw))
    elif media_type(content_type) == CSV:
        records = csv_records(context.state.dataset, raw)
        body = validate(context.parser, {"records": records}, _csv_where)
    else:
        given = repr(media_type(content_type)) if content_type else "none"
        raise ContractError(
            415, f"send the records as {JSON} or {CSV} in Content-Type (got {given})"
        )
    answered = await predict(context, request, body)
    if accept == CSV:
        rows = io.StringIO()
        writer = csv.writer(rows, lineterminator="\n")
        for p in answered[PREDICTIONS]:
            writer.writerow([repr(p[PROBABILITY]), str(p[DECISION]).lower()])
        return Response(rows.getvalue(), media_type=CSV)
    return json_response(answered)


def attribute_key(request: Request) -> str | None:
    """The key in SageMaker's custom attributes (``X-API-Key=<key>``, among pairs separated by
    ``,`` or ``;``), or None."""
    attributes = request.headers.get(ATTRIBUTES_HEADER)
    if not attributes:
        return None
    for pair in attributes.replace(";", ",").split(","):
        name, sep, value = pair.partition("=")
        if sep and name.strip().lower() == API_KEY_HEADER.lower():
            return value.strip()
    return None


def _accepted(accept: str | None) -> str:
    """JSON or CSV, from ``Accept`` (JSON when absent or ``*/*``).

    Raises:
        ContractError: 406 for any other type.
    """
    for item in (accept or "*/*").split(","):
        media = media_type(item)
        if media in ("*/*", "application/*") or is_json(media):
            return JSON
        if media in (CSV, "text/*"):
            return CSV
    raise ContractError(406, f"Accept must be {JSON} or {CSV} (got {accept!r})")


def _json_body(context: Context, data: Any) -> dict[str, Any]:
    """``/predict``'s body from a JSON one: as it is, or with the records under ``instances``."""
    if isinstance(data, dict) and "instances" in data and "records" not in data:
        body = {**data, "records": data["instances"]}
        del body["instances"]
        return validate(context.parser, body, dotted("instances"))
    return validate(context.parser, data, dotted("records"))


def csv_columns(dataset: DatasetConfig) -> list[str]:
    """A header-less CSV line's columns: the features in the request contract's order
    (numeric, then categorical, as ``params.yaml`` lists them); a line with one more cell
    carries the id first."""
    return list(dataset.feature_columns)


def csv_records(dataset: DatasetConfig, raw: bytes) -> list[dict[str, Any]]:
    """The records of a CSV body, each cell as the JSON value it stands for (a number where
    the column is numeric and the cell parses as one; otherwise the text, which validation
    then refuses naming the column).

    Raises:
        ContractError: 400 when the body is not UTF-8 text, has no line, or a line has the
            wrong number of cells.
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ContractError(400, "the CSV body is not UTF-8 text") from None
    lines = [row for row in csv.reader(io.StringIO(text)) if row and any(c.strip() for c in row)]
    if not lines:
        raise ContractError(400, "the CSV body has no line: send one customer per line")
    features = csv_columns(dataset)
    named = {c.strip() for c in lines[0]}
    if set(features) <= named:  # a header: the columns by name
        header = [c.strip() for c in lines[0]]
        rows = lines[1:]
        if not rows:
            raise ContractError(400, "the CSV body has a header but no customer line")
        return [_typed(dataset, dict(zip(header, row, strict=False))) for row in rows]
    with_id = [dataset.id_column, *features] if dataset.id_column else None
    records = []
    for number, row in enumerate(lines, 1):
        if len(row) == len(features):
            columns = features
        elif with_id is not None and len(row) == len(with_id):
            columns = with_id
        else:
            expected = str(len(features))
            if with_id is not None:
                expected += f" (or {len(with_id)} with the id first)"
            raise ContractError(
                400,
                f"CSV line {number} has {len(row)} cells, not {expected}: the columns are "
                f"{','.join(features)}",
            )
        records.append(_typed(dataset, dict(zip(columns, row, strict=True))))
    return records


def _typed(dataset: DatasetConfig, cells: dict[str, str]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for name, cell in cells.items():
        value = cell.strip()
        if name in dataset.numeric:
            record[name] = None if value == "" else _number(value)
        elif name in dataset.categorical:
            levels = dataset.categorical[name]
            integers = all(isinstance(level, int) for level in levels)
            record[name] = _number(value) if integers and value.lstrip("-").isdigit() else value
        elif name == dataset.id_column:
            record[name] = value or None
    return record


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _csv_where(loc: Sequence[Any]) -> str:
    """``("records", 2, "tenure")`` -> ``CSV record 3, column tenure`` (a header is no record)."""
    parts = list(loc)
    if len(parts) >= 3 and parts[0] == "records" and isinstance(parts[1], int):
        return f"CSV record {parts[1] + 1}, column {parts[2]}"
    if parts and parts[0] == "records":
        return "the CSV body"
    return ".".join(map(str, parts)) or "the CSV body"
