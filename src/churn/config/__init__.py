"""Configuration: the typed settings (``CHURN_*``, ``.env``), ``params.yaml``'s models, the data
layout under ``data/``, and ``DataError`` (a problem the user fixes in the data or the params)."""
