"""Wall time per stage of a flow run, for the summary the flow prints, and which failures a
stage tries again."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class StageTimer:
    """Calls a stage and keeps its wall time in ``seconds`` under the stage's name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds[name] = time.perf_counter() - start


def unless_data_error(task: Any, task_run: Any, state: Any) -> bool:
    """A task's ``retry_condition_fn``: retry what may pass next time (a file still being
    written, the network), never a data problem (``DataError``), which fails the same way again
    and would only print its message once per try."""
    from churn.config.errors import data_error_of

    try:
        state.result()
    except Exception as exc:
        return data_error_of(exc) is None
    return True
