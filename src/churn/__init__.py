"""The churn library: the model's lifecycle, one package per step, read top-down.

``config`` (settings, ``params.yaml``, paths, the data error) -> ``data`` (sources, contract,
validation, split, DVC versions, ``init-dataset``) -> ``features`` (the feature pipeline) ->
``scoring`` (the fast serving scorer, the threshold, explanations, the fallback rules) ->
``models`` (the candidates table: one module per model, what each declares, which scorer and
explainer serve a fitted model) -> ``training`` (candidates, evaluation, comparison, the
training stages) -> ``release`` (MLflow tracking, the registry, the gate, checks, live
challengers). Beside them, the contracts that cross
package borders: ``champion`` (the champion record), ``prediction_store`` (the prediction log and
labels), ``engine`` (where the stages run) and ``feature_source`` (the feature store, if any).
``dask`` is the optional Dask engine and ``feature_store`` the optional feature store (Feast):
plug-ins.

A package imports only the ones before it (``[tool.importlinter]`` in ``pyproject.toml``).
"""
