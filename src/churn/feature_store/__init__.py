"""The feature store (``feature_store: {enabled: true}``), a plug-in: Feast over the activity
events. ``aggregates`` turns the events into rolling counts and recency per customer and snapshot,
``definitions`` generates Feast's ``feature_store.yaml``, entity and feature views from
``params.yaml``, ``store`` builds the store and answers point-in-time queries (its ``STORE``
implements ``churn.feature_source.FeatureStore``). Optional: it needs the ``feast`` dependency
group; deleting this package removes the store (docs/feature-store.md)."""

import os

# prometheus_client first: it picks where metric values live when it is imported, and
# feast.metrics (which importing Feast's FeatureStore brings in) exports
# PROMETHEUS_MULTIPROC_DIR to a temporary folder of its own before importing it. Left in the
# environment, that folder switched every later prometheus_client import in the process, and
# every process it started (a prediction service among them), to multiprocess mode: their
# counters added up across processes. So Feast's metrics module is imported here, once, and the
# environment put back as it was.
import prometheus_client  # noqa: F401

_SAVED = {
    name: os.environ.get(name)
    for name in ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR")
}
try:
    # The plug-in's own library, imported with it: without it
    # ``churn.feature_source.feature_store`` stops the run on a message that names it.
    import feast
    import feast.metrics  # noqa: F401
finally:
    for _name, _value in _SAVED.items():
        if _value is None:
            os.environ.pop(_name, None)
        else:
            os.environ[_name] = _value
