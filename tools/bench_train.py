"""``churn bench train``: ``churn train`` as a process of its own against the warm process.

In a throw-away fork on the default data, after one first run: a run with nothing changed and a
forced retrain (``--retrain``, what a warm ``make train`` with changed params or code does), each
as a fresh ``python -m pipelines.cli`` process and through the ``churn`` command with the warm
process up, alternating which goes first in each round. Prints medians, ratios and the flow's
stage seconds; writes ``reports/bench-train.json``.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tools.fork import CHURN, CHURN_COMMAND, fork_project, warm_env

CASES = {"unchanged": ["train"], "retrain": ["train", "--retrain"]}
MODES = {"own process": CHURN, "warm process": CHURN_COMMAND}


def timed(command: Sequence[str], cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    """Wall seconds of one command, end to end, and the flow's stage seconds from its output."""
    started = time.perf_counter()
    out = subprocess.run(  # noqa: S603 - our own interpreter and commands
        list(command), cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    text = out.stdout + out.stderr
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({out.returncode}):\n{text[-3000:]}")
    stages = re.search(r"stage seconds: (.*)", text)
    return {"wall_s": round(elapsed, 2), "stages": stages.group(1).strip() if stages else None}


def run(rounds: int = 3, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """The benchmark; needs ``PREFECT_API_URL`` (``make bench-train`` starts the local server)."""
    if not os.environ.get("PREFECT_API_URL"):
        raise RuntimeError(
            "PREFECT_API_URL is not set: run `make bench-train` (it starts the local Prefect "
            "server), or point PREFECT_API_URL at a running one"
        )
    results: dict[str, Any] = {"rounds": rounds, "runs": []}
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        project = fork_project(Path(tmp) / "project")
        # The fork's own warm process: its socket lives in its PREFECT_HOME.
        env = warm_env(project)
        echo("first run (data stages, three candidates) ...")
        results["first_run"] = timed([*CHURN, "train"], project, env)
        echo(f"  {results['first_run']['wall_s']} s")
        started = time.perf_counter()
        timed([*CHURN_COMMAND, "warm"], project, env)
        results["warm_start_s"] = round(time.perf_counter() - started, 2)
        echo(f"warm process started in {results['warm_start_s']} s (once per session)")
        try:
            for i in range(rounds):
                order = list(MODES) if i % 2 == 0 else list(reversed(MODES))
                for case, argv in CASES.items():
                    for mode in order:
                        run = {"round": i + 1, "case": case, "mode": mode}
                        run |= timed([*MODES[mode], *argv], project, env)
                        results["runs"].append(run)
                        echo(f"  round {i + 1}, {case}, {mode}: {run['wall_s']} s")
        finally:
            timed([*CHURN_COMMAND, "warm", "--stop"], project, env)
    results["summary"] = summary = _summarise(results["runs"])
    echo("")
    echo("| `churn train` | process of its own, median s | warm process, median s | ratio |")
    echo("|---|---:|---:|---:|")
    for case, row in summary.items():
        own, warm = row["own process"], row["warm process"]
        echo(f"| {case} | {own} | {warm} | {warm / own:.2f}x |")
    for case in CASES:
        for mode in MODES:
            last = [r for r in results["runs"] if r["case"] == case and r["mode"] == mode][-1]
            echo(f"stage seconds, {case}, {mode} (last round): {last['stages']}")
    out = Path("reports") / "bench-train.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    echo(f"written to {out}")
    return results


def _summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    return {
        case: {
            mode: round(
                statistics.median(
                    r["wall_s"] for r in runs if r["case"] == case and r["mode"] == mode
                ),
                2,
            )
            for mode in MODES
        }
        for case in CASES
    }
