"""Where a training row's event features come from: nowhere (the default), or the feature store.

``params.yaml``'s ``feature_store.enabled`` switches the optional feature store on; its package
(``churn.feature_store``, Feast) is found by name and imported only then, like a plug-in engine
(``churn.engine``). Every caller goes through :func:`feature_store`, so deleting the package, its
dependency group and its tests removes the store and leaves nothing that imports it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Protocol

from churn.config.feature_store import StoreVersion
from churn.config.params import Params
from churn.config.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

STORE_MODULE = "churn.feature_store.store"

__all__ = ["STORE_MODULE", "FeatureStore", "StoreVersion", "feature_store"]


class FeatureStore(Protocol):
    """What the feature store plug-in does for training."""

    def build(self, settings: Settings, params: Params) -> StoreVersion:
        """Aggregate the events, generate the repository and register it; its version."""
        ...

    def historical(self, settings: Settings, params: Params, rows: pd.DataFrame) -> pd.DataFrame:
        """``rows`` (the entity id and ``event_timestamp``, each row's label time) with the
        store's features as of each row's time (a point-in-time join), in ``rows``' order."""
        ...


def feature_store(params: Params) -> FeatureStore | None:
    """The feature store when ``feature_store.enabled``, else None.

    Raises:
        ValueError: the store is on but its libraries are not installed (the message says which
            and how to install them).
    """
    if not params.feature_store.enabled:
        return None
    try:
        module = importlib.import_module(STORE_MODULE)
    except ModuleNotFoundError as exc:
        raise ValueError(
            f"feature_store.enabled needs {exc.name!r}, which is not installed here: install its "
            "dependency group (uv sync --extra feast; make install takes every group) or set "
            "feature_store.enabled: false in params.yaml"
        ) from exc
    found: FeatureStore = module.STORE
    return found
