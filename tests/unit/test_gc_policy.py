"""``pipelines.gc_policy``: what a command imports is left out of later collections, and the
interpreter's exit collects nothing."""

from __future__ import annotations

import gc
import subprocess
import sys

from pipelines import gc_policy


def test_imports_run_with_the_collector_paused_and_their_objects_end_frozen() -> None:
    gc.unfreeze()
    try:
        with gc_policy.importing():
            paused = not gc.isenabled()
            built = [{"module": i} for i in range(1000)]  # what an import leaves alive
        assert paused
        assert gc.isenabled()
        assert gc.get_freeze_count() >= len(built)
    finally:
        gc.unfreeze()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    try:
        with gc_policy.importing():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.unfreeze()


def test_every_object_is_frozen_before_the_interpreter_tears_down() -> None:
    # atexit runs last-in, first-out: the check registered first runs after the policy's freeze.
    code = (
        "import atexit, gc; from pipelines import gc_policy;"
        "atexit.register(lambda: print(gc.get_freeze_count() > 0));"
        "gc_policy.no_collection_at_exit(); gc.unfreeze()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "True"
