"""The API's documentation pages in a real browser with no internet: /docs sends its example
with "Try it out" and shows the 200, /redoc renders. Screenshots land in the test's tmp dir."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, module_server: Callable[..., Any]) -> Any:
    """One service for the module, on a project with no champion (the rules answer)."""
    project = tmp_path_factory.mktemp("docs") / "project"
    project.mkdir()
    (project / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    return module_server(project)


@pytest.mark.browser
def test_docs_page_works_offline_and_try_it_out_answers_200(
    server: Any, offline_page: Any, tmp_path: Path
) -> None:
    page = offline_page
    page.goto(server.url + "/docs")
    operation = page.locator("#operations-predict-predict_predict_post")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    body = operation.locator("textarea.body-param__text").input_value()
    record = json.loads(body)["records"][0]
    # The data's column order, not pydantic's alphabetical one.
    assert list(record)[:3] == ["customerID", "gender", "SeniorCitizen"]
    operation.get_by_role("button", name="Execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status").first
    status.wait_for(timeout=30_000)
    shot = tmp_path / "docs-offline.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    assert status.inner_text().strip() == "200"
    answer = operation.locator(".live-responses-table .response-col_description pre").first
    assert '"churn_probability"' in answer.inner_text()
    assert page.blocked == [], f"the page tried to reach the internet: {page.blocked}"


def test_docs_examples_are_real(server: Any) -> None:
    """The documented response is what the service answers for the documented request."""
    document = httpx.get(server.url + "/openapi.json").json()
    operation = document["paths"]["/predict"]["post"]
    request = operation["requestBody"]["content"]["application/json"]["example"]
    documented = operation["responses"]["200"]["content"]["application/json"]["example"]
    answer = httpx.post(server.url + "/predict", json=request).json()
    assert documented["model_version"] == answer["model_version"]
    got = answer["predictions"][0]
    assert documented["predictions"][0]["churn"] == got["churn"]
    assert abs(documented["predictions"][0]["churn_probability"] - got["churn_probability"]) < 1e-3
    record = request["records"][0]
    # Consistent values: the total billed is about tenure x monthly charges.
    assert 0.5 < record["TotalCharges"] / (record["tenure"] * record["MonthlyCharges"]) < 1.5


@pytest.mark.browser
def test_redoc_page_renders_offline(server: Any, offline_page: Any, tmp_path: Path) -> None:
    page = offline_page
    page.goto(server.url + "/redoc")
    heading = page.locator("h2", has_text="Score customers")
    heading.wait_for(timeout=30_000)
    assert page.get_by_text(re.compile("Request samples")).first.is_visible()
    shot = tmp_path / "redoc-offline.png"
    page.screenshot(path=str(shot))
    print(f"screenshot: {shot}")
    # The one thing ReDoc's bundle fetches itself is the image of its "API docs by Redocly"
    # badge; blocked, the page is complete without it.
    needed = [url for url in page.blocked if not url.endswith("/redoc/logo-mini.svg")]
    assert needed == [], f"the page tried to reach the internet: {needed}"
