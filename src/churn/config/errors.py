"""The data problems a user fixes in their data or in ``params.yaml``, as one exception family.

The CLI prints these as one message, never behind a traceback (``pipelines/cli/context.py``).
"""

from __future__ import annotations


class DataError(ValueError):
    """The data, what ``params.yaml`` says about it, or a setting naming it (a prediction-log URL)
    is wrong: the message says what to do."""


def data_error_of(exc: BaseException | None) -> DataError | None:
    """The ``DataError`` behind ``exc`` (itself, its cause or its context), if any."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, DataError):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None
