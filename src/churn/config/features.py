"""``params.yaml``'s ``features`` block: one entry model per derived-feature kind, and the columns
each entry reads.

A derived-feature kind is two declarations, one per layer, keyed by the entry model declared here:

- **here** (``churn.config``): what an entry says (its model, one field of ``FeatureParams``, named
  after the key in ``params.yaml``) and which columns it reads with the role they must have
  (``ROLE``). Params validation, ``churn init-dataset``'s pruning (``churn.data.params_file``: an
  entry whose columns the data set lacks is removed) and explanations (a derived feature is
  mapped back to the fields it reads) use only this, so it lives below ``churn.data``, which the
  import-linter contract puts below ``churn.features``;
- **in** ``churn.features.kinds``: its arithmetic on a frame and on one record (what training and
  the serving replay compute). A kind declared here without arithmetic there is an error naming
  it the first time a pipeline is built or replayed, and ``tests/unit/features/test_kinds.py``
  takes every kind of this table through both.

Adding a kind: its entry model and its field in ``FeatureParams`` here, its arithmetic there.
"""

from __future__ import annotations

import typing
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, RootModel, model_validator

Level = str | int

# The role a column must have in the dataset block to be read by a kind: ``numeric`` (a number,
# filled before it is read) or ``feature`` (any feature column, numeric or categorical).
Role = Literal["numeric", "feature"]


class FeatureEntry(Protocol):
    """What every entry model declares: the role of the columns it reads, and those columns."""

    ROLE: ClassVar[Role]
    # One entry as params.yaml writes it (on the template's columns): the docs' example, and what
    # the tests take every kind of this table through.
    EXAMPLE: ClassVar[Any]

    def reads(self) -> tuple[str, ...]:
        """The dataset columns the feature is computed from, in the order it reads them."""
        ...


class RatioFeature(RootModel[tuple[str, str]]):
    """``name: [numerator, denominator]``: ``numerator / max(denominator, 1)``.

    A denominator below one (tenure 0: nothing billed yet) counts as one, so the ratio is finite.
    """

    model_config = ConfigDict(frozen=True)
    ROLE: ClassVar[Role] = "numeric"
    EXAMPLE: ClassVar[Any] = ["TotalCharges", "tenure"]

    def reads(self) -> tuple[str, ...]:
        return self.root


class CountFeature(BaseModel):
    """``name: {columns: [...], absent: [...]}``: per row, how many of ``columns`` hold a value
    that is not one of ``absent`` (a missing value counts as present)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    ROLE: ClassVar[Role] = "feature"
    EXAMPLE: ClassVar[Any] = {
        "columns": ["PhoneService", "InternetService", "TechSupport"],
        "absent": ["No", "No phone service", "No internet service"],
    }

    columns: list[str]
    absent: list[Level]

    def reads(self) -> tuple[str, ...]:
        return tuple(self.columns)


class DifferenceFeature(RootModel[tuple[str, str]]):
    """``name: [a, b]``: ``a - b`` of two numeric columns (each filled before it is read)."""

    model_config = ConfigDict(frozen=True)
    ROLE: ClassVar[Role] = "numeric"
    EXAMPLE: ClassVar[Any] = ["TotalCharges", "MonthlyCharges"]  # billed before this month

    def reads(self) -> tuple[str, ...]:
        return self.root


class FeatureParams(BaseModel):
    """The derived features, by kind: each field is one kind (its key in ``params.yaml``), each
    entry one feature (its name: the column the model sees). ``kinds()`` is the table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ratios: dict[str, RatioFeature] = {}
    counts: dict[str, CountFeature] = {}
    differences: dict[str, DifferenceFeature] = {}

    @classmethod
    def kinds(cls) -> dict[str, type[FeatureEntry]]:
        """Every kind: its key in ``params.yaml`` and its entry model, in the block's order."""
        return {
            kind: typing.get_args(field.annotation)[1] for kind, field in cls.model_fields.items()
        }

    def entries(self) -> list[tuple[str, str, FeatureEntry]]:
        """``(kind, name, entry)`` of every configured feature, kind by kind, in file order (the
        order of the derived columns in the encoded matrix)."""
        return [
            (kind, name, entry)
            for kind in self.kinds()
            for name, entry in getattr(self, kind).items()
        ]

    def names(self) -> list[str]:
        """The derived features' names, in the order of ``entries``."""
        return [name for _, name, _ in self.entries()]

    @model_validator(mode="after")
    def _names_are_unique(self) -> FeatureParams:
        seen: dict[str, str] = {}
        for kind, name, _ in self.entries():
            if name in seen:
                raise ValueError(
                    f"features.{kind}.{name}: the name is also features.{seen[name]}.{name}; "
                    "a derived feature's name is its column: rename one"
                )
            seen[name] = kind
        return self


def missing_columns(
    entry: FeatureEntry, numeric: typing.Collection[str], features: typing.Collection[str]
) -> list[str]:
    """The columns ``entry`` reads that the dataset block lacks in the role the kind needs."""
    have = numeric if entry.ROLE == "numeric" else features
    return [c for c in entry.reads() if c not in have]


def column_problem(
    kind: str,
    name: str,
    entry: FeatureEntry,
    numeric: typing.Collection[str],
    features: typing.Collection[str],
) -> str | None:
    """Why ``features.<kind>.<name>`` cannot be computed on this dataset block, or None."""
    missing = missing_columns(entry, numeric, features)
    if not missing:
        return None
    role = "numeric column" if entry.ROLE == "numeric" else "feature column"
    return (
        f"features.{kind}.{name} uses {', '.join(map(repr, missing))}, not a {role} of the "
        "dataset block; fix the name or remove the entry (features: {})"
    )
