"""``python -m pipelines.cli``: the ``churn`` command line, in this interpreter."""

from pipelines.cli import main

main()
