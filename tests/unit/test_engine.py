"""The engine table: a plug-in engine is found by name, and a missing one is said, not guessed."""

from __future__ import annotations

import sys

import pytest

from churn import engine


def test_a_plug_in_engine_is_imported_by_name_when_a_run_selects_it() -> None:
    pytest.importorskip("distributed", reason="the optional dask group is not installed")
    module = engine.plugin("dask", "data")
    assert module.__name__ == "churn.dask.data"
    assert callable(module.ingest) and callable(module.split)


def test_an_unknown_engine_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"'spark' is not a plug-in engine.*\['dask'\]"):
        engine.plugin("spark", "data")


def test_an_engine_whose_libraries_are_missing_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the dask packages the run stops on a message naming the module, not a traceback."""
    for name in [m for m in sys.modules if m == "dask" or m.startswith(("dask.", "churn.dask"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "dask", None)  # what an absent package gives: import fails
    with pytest.raises(ValueError, match=r"needs 'dask'.*--extra dask.*engine.kind: pandas"):
        engine.plugin("dask", "data")
