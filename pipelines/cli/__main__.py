"""``python -m pipelines.cli``: the ``churn`` command line, run in this process (never handed to
the warm process: what tests, benchmarks and the services' subprocesses run)."""

from pipelines.cli import run_app

run_app()
