"""The data problems a user fixes in their data or in ``params.yaml``, as one exception family.

The CLI prints these as one message, never behind a traceback (``pipelines/cli/context.py``).
"""

from __future__ import annotations


class DataError(ValueError):
    """The data, what ``params.yaml`` says about it, or a setting naming it (a prediction-log URL)
    is wrong: the message says what to do."""
