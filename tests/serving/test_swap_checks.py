"""Serve only what it can run: before a swap (a poll, a start) the service checks the registry's
new version against what it serves (same lineage, its feature code, one probe row) and keeps
the current model otherwise, saying why on /ready, /metrics and the log (once per version).

Real servers and a real MLflow store: the session's trained project (data set A) is served, then
versions of another lineage and of a future feature code are registered under its name.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.serving.conftest import register_copy_of_champion

pytestmark = pytest.mark.integration

POLL = {"CHURN_RELOAD_INTERVAL_SECONDS": "0.3"}


def register_with_record(
    project: Path, change: Callable[[Any], Any], base: str | None = None
) -> str:
    """A new version with the artefacts of version ``base`` (default: the champion) and its
    record changed by ``change`` (``ChampionInfo`` -> ``ChampionInfo``); the champion alias
    moves to it."""
    from churn.champion import ChampionInfo
    from churn.config.settings import get_settings
    from churn.release import registry, tracking

    settings = get_settings(project_dir=project)
    client = tracking.connect(settings)
    if base is None:
        champion = registry.current_champion(client, settings.model_name)
    else:
        champion = client.get_model_version(settings.model_name, base)
    assert champion is not None
    record = change(ChampionInfo.from_version(champion))
    tags = {k: v for k, v in champion.tags.items() if k not in ("lineage", "feature_code")}
    tags.update(record.to_tags())
    new = registry.register_challenger(
        client, settings.model_name, champion.source, champion.run_id, tags
    )
    client.set_registered_model_alias(settings.model_name, registry.CHAMPION, new.version)
    return str(new.version)


def another_lineage(record: Any) -> Any:
    """The record as if trained on another data set: the Iranian file's columns."""
    from churn.champion import Lineage
    from churn.data.lineage import fingerprint

    assert record.lineage is not None, "training records the lineage"
    schema = {
        "id": None,
        "label": "Churn",
        "positive": "1",
        "time": None,
        "columns": {"Call  Failure": "integer", "Complains": "integer", "Age": "integer"},
    }
    return replace(record, lineage=Lineage(record.lineage.name, fingerprint(schema), schema))


def future_feature_code(record: Any) -> Any:
    from churn.features.version import FEATURE_CODE_VERSION

    return replace(record, feature_code=FEATURE_CODE_VERSION + 1)


def _until(url: str, check: Callable[[dict[str, Any]], bool], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        ready = httpx.get(url + "/ready", timeout=10).json()
        if check(ready) or time.monotonic() > deadline:
            return ready
        time.sleep(0.2)


def _metric(url: str, line: str) -> bool:
    return line in httpx.get(url + "/metrics", timeout=10).text


def test_a_version_it_cannot_run_is_refused_and_the_current_one_keeps_serving(
    project_copy: Path, live_server: Callable[..., Any], records: Callable[..., Any]
) -> None:
    """Another lineage, then a feature code from the future: both refused with the reason on
    /ready, /metrics and once in the log; /predict keeps answering with A's model; a runnable
    version is swapped in on the next poll and the refusal is cleared."""
    server = live_server(project_copy, POLL, ready=240)
    served = httpx.get(server.url + "/version").json()["version"]
    assert served != "fallback-rules", server.output()[-3000:]
    body = {"records": records(3)}

    other = register_with_record(project_copy, another_lineage, base=served)
    ready = _until(server.url, lambda r: (r.get("refused") or {}).get("version") == other)
    print("\n/ready at a refused swap:", json.dumps(ready, indent=1))
    assert ready["refused"]["check"] == "lineage", ready
    assert ready["status"] == "degraded" and ready["model_version"] == served, ready
    assert "another data set" in ready["refused"]["reason"]
    assert "Call  Failure" in ready["refused"]["reason"]  # what differs is named
    assert ready["last_registry_check"]["outcome"] == "refused", ready
    r = httpx.post(server.url + "/predict", json=body)
    assert r.status_code == 200 and r.json()["model_version"] == served, r.text
    time.sleep(1.5)  # several polls see it again
    assert _metric(server.url, 'churn_model_swaps_refused_total{check="lineage"} 1.0')
    assert _metric(server.url, f'churn_model_refused_info{{check="lineage",version="{other}"}} 1.0')
    log = server.output()
    assert log.count(f"not serving v{other} (lineage check)") == 1, log[-3000:]
    assert "WARNING" in log.split(f"not serving v{other}")[0].rsplit("\n", 1)[-1]

    future = register_with_record(project_copy, future_feature_code, base=served)
    ready = _until(server.url, lambda r: (r.get("refused") or {}).get("version") == future)
    assert ready["refused"]["check"] == "feature_code", ready
    assert "deploy the code it was trained with" in ready["refused"]["reason"]
    r = httpx.post(server.url + "/predict", json=body)
    assert r.status_code == 200 and r.json()["model_version"] == served, r.text

    good = register_copy_of_champion(project_copy)  # the refused one's tags: still refused
    ready = _until(server.url, lambda r: (r.get("refused") or {}).get("version") == good)
    assert ready["refused"]["check"] == "feature_code", ready
    runnable = register_with_record(
        project_copy, lambda rec: replace(rec, feature_code=None), base=served
    )
    ready = _until(server.url, lambda r: r["model_version"] == runnable)
    assert ready["model_version"] == runnable and ready["refused"] is None, ready
    assert ready["status"] == "ready", ready
    assert httpx.post(server.url + "/predict", json=body).json()["model_version"] == runnable


def test_a_start_serves_the_cached_copy_of_its_lineage_else_answers_503(
    project_copy: Path, live_server: Callable[..., Any], records: Callable[..., Any]
) -> None:
    """Restarted with the registry naming another lineage's version: the cached copy of A
    serves (``refused`` names the version); without a cache nothing of this lineage is left,
    and /predict answers 503 with the reason and Retry-After until a runnable version is
    registered, which the next poll serves."""
    first = live_server(project_copy, ready=240)
    served = httpx.get(first.url + "/version").json()["version"]
    first.stop()
    other = register_with_record(project_copy, another_lineage)
    body = {"records": records(2)}

    cached = live_server(project_copy, ready=240)
    ready = httpx.get(cached.url + "/ready").json()
    assert ready["source"] == "cache" and ready["model_version"] == served, ready
    assert ready["refused"]["version"] == other and ready["refused"]["check"] == "lineage"
    assert httpx.post(cached.url + "/predict", json=body).json()["model_version"] == served
    cached.stop()

    shutil.rmtree(project_copy / ".serving-cache")
    empty = live_server(project_copy, POLL, ready=240)
    r = httpx.get(empty.url + "/ready")
    assert r.status_code == 503 and r.json()["status"] == "unservable", r.text
    assert r.json()["refused"]["version"] == other, r.text
    answer = httpx.post(empty.url + "/predict", json=body)
    assert answer.status_code == 503 and answer.headers["retry-after"], answer.text
    assert "another data set" in answer.json()["detail"], answer.text
    assert "nothing this service can run" in empty.output()

    runnable = register_with_record(project_copy, lambda rec: rec, base=served)  # A again
    ready = _until(empty.url, lambda r: r["model_version"] == runnable)
    assert ready["status"] == "ready" and ready["refused"] is None, ready
    assert httpx.post(empty.url + "/predict", json=body).status_code == 200


def test_a_start_without_a_runnable_model_serves_its_lineages_rules(
    project_copy: Path, served_project: Path
) -> None:
    """The cached copy's model cannot load (its artefact is gone) but its rules, of this
    lineage, can: they serve; the registry's version of another lineage is named as refused."""
    from churn.config.params import load_params
    from churn.config.settings import get_settings
    from serving.model import load_initial

    settings = get_settings(project_dir=project_copy)
    params = load_params(settings.params_path)
    first = load_initial(settings, params)
    assert first.source == "registry" and first.rules is not None
    other = register_with_record(project_copy, another_lineage)
    for model_file in (settings.model_cache_dir / settings.model_name).rglob("model.skops"):
        model_file.unlink()  # the planted fault: the cached model cannot load
    model = load_initial(settings, params)
    assert model.source == "rules" and model.refused is not None, model.degraded_reason
    assert model.refused.version == other and model.scorer.kind == "rules"
    assert model.rules is not None and model.rules.columns == first.rules.columns


def test_a_version_without_a_lineage_record_is_checked_by_the_probe(
    project_copy: Path,
) -> None:
    """A version registered before lineages were recorded, under a service whose params.yaml
    changed the request schema (a column renamed): the probe row cannot be scored, so it is
    refused, naming the column; the cache is not touched."""
    from churn.champion import ChampionInfo
    from churn.config.params import load_params
    from churn.config.settings import get_settings
    from churn.release import registry, tracking
    from serving.model import NotRunnable, cached_copies, load_from_registry

    doc = yaml.safe_load((project_copy / "params.yaml").read_text())
    categorical = doc["dataset"]["categorical"]
    categorical["PayMethod"] = categorical.pop("PaymentMethod")
    (project_copy / "params.yaml").write_text(yaml.safe_dump(doc))
    settings = get_settings(project_dir=project_copy)
    params = load_params(settings.params_path)
    client = tracking.connect(settings)
    version = registry.current_champion(client, settings.model_name)
    assert version is not None
    record = replace(ChampionInfo.from_version(version), lineage=None, feature_code=None)
    with pytest.raises(NotRunnable) as refused:
        load_from_registry(settings, params, record)
    assert refused.value.refusal.check == "probe"
    assert "PaymentMethod" in refused.value.refusal.reason, refused.value.refusal.reason
    assert cached_copies(settings) == []
    # With the lineage record the same version is refused before any download.
    with pytest.raises(NotRunnable) as by_record:
        load_from_registry(settings, params, ChampionInfo.from_version(version))
    assert by_record.value.refusal.check == "lineage"
    assert "PaymentMethod" in by_record.value.refusal.reason
