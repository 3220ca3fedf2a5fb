"""The training fingerprint: what it must and must not depend on."""

from __future__ import annotations

from churn.config.params import load_params
from churn.training import cache as training_cache

FILES = {"data/splits/train.parquet": "a1", "data/splits/test.parquet": "b2"}


def test_the_fingerprint_is_stable_and_moves_with_data_params_and_code(monkeypatch):
    params = load_params("params.yaml")
    first = training_cache.fingerprint(params, FILES)
    assert training_cache.fingerprint(params, dict(reversed(FILES.items()))) == first

    other_data = training_cache.fingerprint(params, {**FILES, "data/splits/test.parquet": "c3"})
    deeper = params.model_copy(
        update={"train": params.train.model_copy(update={"calibration": "isotonic"})}
    )
    other_params = training_cache.fingerprint(deeper, FILES)
    monkeypatch.setattr(training_cache, "code_digest", lambda: "edited")
    other_code = training_cache.fingerprint(params, FILES)
    assert len({first, other_data, other_params, other_code}) == 4


def test_the_monitoring_block_does_not_reach_the_fingerprint():
    params = load_params("params.yaml")
    watched = params.model_copy(
        update={"monitor": params.monitor.model_copy(update={"drift_share": 0.9})}
    )
    assert training_cache.fingerprint(watched, FILES) == training_cache.fingerprint(params, FILES)


def test_the_code_digest_covers_the_package_source():
    assert len(training_cache.code_digest()) == 64
    assert "scikit-learn" in training_cache.library_versions()
