"""The candidates table: every ``KIND`` of ``churn.models.candidates``, found by module."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from typing import Any

from pydantic import BaseModel, ValidationError

from churn.config.params import BASELINE, Params, TrainParams
from churn.models import candidates
from churn.models.kind import ModelKind


class DeclarationError(Exception):
    """A candidate module's declaration is missing, malformed or clashes with another's."""


@cache
def kinds() -> dict[str, ModelKind]:
    """Every declared candidate by name, in module-name order.

    Raises:
        DeclarationError: a module without one ``KIND``, a malformed declaration, or two
            declaring the same name, block, parameter prefix or estimator type.
    """
    found: dict[str, ModelKind] = {}
    for info in sorted(pkgutil.iter_modules(candidates.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{candidates.__name__}.{info.name}")
        where = f"{candidates.__name__}.{info.name}"
        declared = getattr(module, "KIND", None)
        if not isinstance(declared, ModelKind):
            raise DeclarationError(
                f"{where} declares no candidate: a module of churn/models/candidates/ exposes "
                f"one KIND = ModelKind(...) (found {type(declared).__name__})"
            )
        problems = declared.problems(info.name)
        if problems:
            raise DeclarationError(f"{where}.KIND is malformed: " + "; ".join(problems))
        for other in found.values():
            for attr in ("key", "param_prefix", "estimator"):
                if getattr(other, attr) == getattr(declared, attr):
                    raise DeclarationError(
                        f"{where}.KIND declares {attr} {getattr(declared, attr)!r}, which "
                        f"candidate {other.name!r} declares already: each must be its own"
                    )
        found[declared.name] = declared
    if BASELINE not in found:
        raise DeclarationError(f"no module declares the baseline candidate {BASELINE!r}")
    return found


def kind(name: str) -> ModelKind:
    """The declared candidate ``name``.

    Raises:
        KeyError: naming the known candidates.
    """
    table = kinds()
    if name not in table:
        raise KeyError(f"unknown candidate {name!r}; known candidates: {', '.join(table)}")
    return table[name]


def title(name: str) -> str:
    """What tables and the model card call candidate ``name`` (the name when undeclared)."""
    found = kinds().get(name)
    return found.title if found is not None else name


def qualified_name(obj: Any) -> str:
    """``module.QualName`` of an object's type (what ``ModelKind.estimator`` declares)."""
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def inner_models(model: Any) -> list[Any]:
    """The fitted estimators inside a pipeline's last step (through its calibration)."""
    steps = getattr(model, "steps", None)
    if steps:
        return inner_models(steps[-1][1])
    calibrated = getattr(model, "calibrated_classifiers_", None)
    if calibrated is not None:
        return [getattr(cc.estimator, "estimator", cc.estimator) for cc in calibrated]
    return [model]


def kind_of(model: Any) -> ModelKind | None:
    """The declared candidate a fitted model (or pipeline) is, by its estimator's type; None
    when no module declares that type or its parts are of different kinds."""
    by_type = {k.estimator: k for k in kinds().values()}
    found = {by_type.get(qualified_name(m)) for m in inner_models(model)}
    return found.pop() if len(found) == 1 else None


def undeclared(model: Any) -> str:
    """Why ``kind_of(model)`` is None, for messages."""
    names = sorted({qualified_name(m) for m in inner_models(model)})
    return (
        f"no module of churn/models/candidates/ declares {' / '.join(names)} "
        f"(declared: {', '.join(k.estimator for k in kinds().values())})"
    )


def block(train: TrainParams, candidate: ModelKind) -> BaseModel:
    """The candidate's block of ``train`` (``train.<key>``), validated by its parameters model
    (its defaults when the block is absent)."""
    raw = (train.model_extra or {}).get(candidate.key) or {}
    try:
        return candidate.params.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(_located(exc, f"train.{candidate.key}")) from None


def values(train: TrainParams, name: str) -> dict[str, Any]:
    """The configured values of candidate ``name`` (its block, defaults filled in)."""
    return block(train, kind(name)).model_dump()


def check_params(params: Params) -> None:
    """Every candidate-dependent part of ``params.yaml`` against the table: the names in
    ``train.candidates`` and ``train.select.prefer``, each candidate block under ``train`` by
    its declared parameters model, and the engine's reach. Called where commands load
    ``params.yaml`` (the CLI, the training flow), before any stage.

    Raises:
        ValueError: naming the key, what is wrong, and the known candidates.
    """
    table = kinds()
    known = ", ".join(table)
    train = params.train
    for where, names in (
        ("train.candidates", train.candidates),
        ("train.select.prefer", train.select.prefer),
    ):
        unknown = [n for n in names if n not in table]
        if unknown:
            raise ValueError(
                f"{where} names {unknown}, which no module of churn/models/candidates/ "
                f"declares; known candidates: {known}"
            )
    blocks = {k.key: k for k in table.values()}
    for key in train.model_extra or {}:
        if key not in blocks:
            raise ValueError(
                f"train.{key} is neither a train setting nor a candidate's block; the candidate "
                f"blocks are {', '.join(f'train.{b}' for b in blocks)} (known candidates: "
                f"{known})"
            )
    for candidate in table.values():
        block(train, candidate)
    if params.engine.kind == "dask":
        trained = [n for n in train.challengers if table[n].dask is not None]
        if not trained:
            refused = "; ".join(
                f"{n} is not trained on the dask engine: {table[n].no_dask}"
                for n in train.challengers
            )
            raise ValueError(
                f"train.candidates has no challenger the dask engine trains ({refused}); add "
                "one that it trains ("
                + ", ".join(k.name for k in table.values() if k.dask and k.name != BASELINE)
                + ") or set engine.kind: pandas"
            )


def refused_on(engine: str, names: list[str]) -> dict[str, str]:
    """The candidates of ``names`` that ``engine`` does not train, with why."""
    return {
        n: f"{n} is not trained on the {engine} engine: {kind(n).no_dask}"
        for n in names
        if engine not in kind(n).engines
    }


def trusted_types() -> list[str]:
    """Every type skops may load for a declared candidate (their union, sorted)."""
    return sorted({t for k in kinds().values() for t in k.trusted_types})


def libraries() -> tuple[str, ...]:
    """The distributions the declared candidates' fitted models depend on (sorted, unique)."""
    return tuple(sorted({lib for k in kinds().values() for lib in k.libraries}))


def modules() -> tuple[str, ...]:
    """What the declared candidates import (the warm process's preload)."""
    return tuple(sorted({m for k in kinds().values() for m in k.modules}))


def _located(exc: ValidationError, prefix: str) -> str:
    lines = [f"{prefix} is invalid:"]
    for error in exc.errors():
        where = ".".join(str(p) for p in (prefix, *error["loc"]))
        lines.append(f"  {where}: {error['msg']}")
    return "\n".join(lines)
