"""A data set's lineage: its schema's identity, recorded on every version trained on it.

A model is compared with, and swapped for, only a model of the same lineage: another data set's
champion is never the yardstick of a first model, and a service never swaps to a model whose
request schema it does not serve (:class:`churn.champion.Lineage`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from churn.champion import Lineage, SplitIdentity
from churn.config.params import DatasetConfig, Params, label_text


def schema_of(dataset: DatasetConfig) -> dict[str, Any]:
    """What a lineage is identified by: roles, columns and their kinds (not levels or ranges)."""
    columns: dict[str, str] = {}
    for name, spec in dataset.numeric.items():
        columns[name] = "integer" if spec.integer else "numeric"
    for name in dataset.categorical:
        columns[name] = "categorical"
    return {
        "id": dataset.id_column,
        "label": dataset.label_column,
        "positive": label_text(dataset.positive_label),
        "time": dataset.time_column,
        "columns": columns,
    }


def fingerprint(schema: dict[str, Any]) -> str:
    """12 hex digits of the SHA-256 of the schema's canonical JSON."""
    text = json.dumps(schema, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def lineage_of(dataset: DatasetConfig, name: str) -> Lineage:
    """The lineage of ``dataset`` whose versions are registered as ``name``."""
    schema = schema_of(dataset)
    return Lineage(name=name, fingerprint=fingerprint(schema), schema=schema)


def split_identity(params: Params) -> SplitIdentity:
    """How this run's rows are split (``split`` block, ``auto`` resolved by the engine)."""
    return SplitIdentity(
        method=params.split_method,
        seed=params.split.seed,
        valid_size=params.split.valid_size,
        test_size=params.split.test_size,
        key=params.dataset.key_column,
        time_column=params.dataset.time_column,
    )
