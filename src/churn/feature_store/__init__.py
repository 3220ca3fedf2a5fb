"""The feature store (``feature_store: {enabled: true}``), a plug-in: Feast over the activity
events. ``aggregates`` turns the events into rolling counts and recency per customer and snapshot,
``definitions`` generates Feast's ``feature_store.yaml``, entity and feature views from
``params.yaml``, ``store`` builds the store and answers point-in-time queries (its ``STORE``
implements ``churn.feature_source.FeatureStore``). Optional: it needs the ``feast`` dependency
group; deleting this package removes the store (docs/feature-store.md)."""

# The plug-in's own library, imported with it: without it ``churn.feature_source.feature_store``
# stops the run on a message that names it, before any stage starts.
import feast  # noqa: F401
