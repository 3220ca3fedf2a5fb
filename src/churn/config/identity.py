"""The project's identity: its names, read from ``pyproject.toml`` (``[project] name`` and the
``[tool.churn.identity]`` block), the one place a fork renames them.

Standard library only, so that the workflows can run this file with the runner's own Python
(``python3 src/churn/config/identity.py >> "$GITHUB_OUTPUT"``) before anything is installed.

In a checkout (the editable install, the tests) the file read is the checkout's
``pyproject.toml``; an installed wheel carries a copy beside this module (``force-include`` in
``pyproject.toml``), so the serving image reads the names it was built with.
"""

from __future__ import annotations

import functools
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

BLOCK = "[tool.churn.identity]"
# The names the block declares; what else a rename changes is derived from them (Identity).
DECLARED = ("title", "model_name", "training_name", "monitoring_name")


class IdentityError(ValueError):
    """The identity block is missing or incomplete: which file, which key, what to do."""


@dataclass(frozen=True)
class Identity:
    """Every name a rename changes.

    Attributes:
        project: the distribution's name (``[project] name``): the compose project, the images.
        title: what people read: the API's title, the CLI's and ``make``'s help, Grafana's folder.
        model_name: the registered model in MLflow's registry (``CHURN_MODEL_NAME`` overrides it).
        training_name: the training flow (Prefect) and its MLflow experiment.
        monitoring_name: the monitoring flow (Prefect) and its MLflow experiment.
    """

    project: str
    title: str
    model_name: str
    training_name: str
    monitoring_name: str

    @property
    def image(self) -> str:
        """The serving image's name (``ghcr.io/<owner>/<image>`` in CD): the project's."""
        return self.project

    @property
    def pipeline_image(self) -> str:
        """The pipeline image's name: the project's with ``-pipeline``."""
        return f"{self.project}-pipeline"

    @property
    def api_title(self) -> str:
        """The prediction service's title (OpenAPI, ``/docs``)."""
        return f"{self.title} prediction service"

    def as_dict(self) -> dict[str, str]:
        """Every name, derived ones included, by key (what ``identity.py`` prints)."""
        names = {key: getattr(self, key) for key in ("project", *DECLARED)}
        names.update(image=self.image, pipeline_image=self.pipeline_image)
        names["api_title"] = self.api_title
        return names


def candidates() -> tuple[Path, Path]:
    """Where the block is looked for: the copy an installed wheel carries, then the checkout's."""
    here = Path(__file__).resolve()
    return here.with_name("pyproject.toml"), here.parents[3] / "pyproject.toml"


def read_identity(path: Path) -> Identity:
    """The identity declared in the ``pyproject.toml`` at ``path``.

    Raises:
        IdentityError: the file has no ``[project] name`` or the block lacks a name, or a name
            is not a non-empty string.
    """
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    block = data.get("tool", {}).get("churn", {}).get("identity")
    if not isinstance(block, dict):
        raise IdentityError(f"{path} has no {BLOCK} table; declare {', '.join(DECLARED)} there")
    names: dict[str, object] = {"project": data.get("project", {}).get("name")}
    unknown = sorted(set(block) - set(DECLARED))
    if unknown:
        raise IdentityError(f"{BLOCK} in {path}: unknown key(s) {unknown}; it declares {DECLARED}")
    for key in DECLARED:
        names[key] = block.get(key)
    for key, value in names.items():
        if not isinstance(value, str) or not value.strip():
            where = "[project] name" if key == "project" else f"{BLOCK} {key}"
            raise IdentityError(f"{where} in {path} must be a non-empty string (got {value!r})")
    return Identity(**names)  # type: ignore[arg-type]


@functools.cache
def identity() -> Identity:
    """This installation's identity (read once per process).

    Raises:
        IdentityError: no ``pyproject.toml`` carrying the block was found.
    """
    for path in candidates():
        if path.is_file():
            return read_identity(path)
    raise IdentityError(
        f"the project's identity ({BLOCK} of pyproject.toml) was not found at "
        f"{' or '.join(str(p) for p in candidates())}; install the project from its checkout "
        "(the wheel carries a copy)"
    )


def main(argv: list[str]) -> int:
    """``identity.py [KEY ...]``: those names, one a line, or every name as ``key=value`` lines."""
    names = identity().as_dict()
    keys = argv
    if keys:
        missing = [k for k in keys if k not in names]
        if missing:
            print(f"unknown name(s) {missing}; known: {sorted(names)}", file=sys.stderr)
            return 2
        print("\n".join(names[k] for k in keys))
        return 0
    print("\n".join(f"{k}={v}" for k, v in names.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
