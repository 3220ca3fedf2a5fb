"""The production profile's Dask services: the flows reach the scheduler the workers join."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]


def test_the_flows_and_the_workers_use_the_scheduler_service() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    scheduler, worker, flows = (
        services["dask-scheduler"],
        services["dask-worker"],
        services["prefect-flows"],
    )
    port = scheduler["command"][scheduler["command"].index("--port") + 1]
    address = f"tcp://dask-scheduler:{port}"
    assert flows["environment"]["CHURN_DASK_SCHEDULER"] == address
    assert worker["command"][:3] == ["dask", "worker", address]
    assert scheduler["command"][:2] == ["dask", "scheduler"]
    # Same image as the flows (the workers run the flows' code), and the shared parts volume.
    for service in (scheduler, worker):
        assert service["build"] == flows["build"] == {"context": ".", "target": "pipeline"}
    assert "scale:/app/scale" in worker["volumes"] and "scale:/app/scale" in flows["volumes"]
    assert "mkdir mlflow-auth scale" in (ROOT / "Dockerfile").read_text()
    assert flows["depends_on"]["dask-scheduler"]["condition"] == "service_healthy"
    assert "healthcheck" in scheduler
