"""Training that would repeat itself is skipped: the fingerprint of what a model depends on.

A model is a function of its data files, its parameters, the training code and the libraries
that fit it: all seeded. When a registered version carries the same fingerprint, training it
again gives the same model, which the gate would refuse ("does not beat champion") after the
whole fit. ``churn train`` (and the training flow) look the fingerprint up after the data stages
and stop there, naming the version; ``--retrain`` trains anyway.

The fingerprint hashes:

- the data version (the DVC md5 of every stage output, ``versioning.locked_data_files``);
- ``params.yaml`` as validated (every block but ``monitor``, which never reaches training);
- the source of the ``churn`` package (every ``.py`` file: features, training, evaluation);
- the versions of the libraries that fit and serialise the model.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from churn import models
from churn.config.params import Params

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

TAG = "training_fingerprint"
# The libraries every fit depends on; each candidate's own come from its module
# (``churn.models``: ``libraries``).
_LIBRARIES = ("scikit-learn", "numpy", "pandas", "mlflow")


def fingerprint(params: Params, data_files: dict[str, str]) -> str:
    """A short, stable id of everything the trained model depends on."""
    parts = {
        "data": sorted(data_files.items()),
        "params": params.model_dump(mode="json", by_alias=True, exclude={"monitor"}),
        # each candidate's values as its module validates them (its defaults filled in)
        "candidates": {n: models.values(params.train, n) for n in params.train.candidates},
        "code": code_digest(),
        "libraries": library_versions(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


@cache
def code_digest() -> str:
    """The hash of the ``churn`` package's source files (path and content): every package,
    the candidates' modules (``churn/models/candidates/``) included."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@cache
def library_versions() -> dict[str, str]:
    versions = {}
    for name in dict.fromkeys((*_LIBRARIES, *models.libraries())):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def find_trained(client: MlflowClient, model_name: str, print_: str) -> ModelVersion | None:
    """The newest registered version of ``model_name`` trained with fingerprint ``print_``."""
    from mlflow.exceptions import MlflowException

    try:
        found = client.search_model_versions(f"name='{model_name}' and tags.{TAG}='{print_}'")
    except MlflowException:  # no such registered model yet
        return None
    return max(found, key=lambda v: int(v.version), default=None)
