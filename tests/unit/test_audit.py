"""tools/audit.py judges pip-audit's JSON report: a vulnerability fails, packages it could not
check are a loud NOT AUDITED that fails in CI, and only a full audit says "no known
vulnerabilities"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from churn.config.identity import identity
from tools.audit import main

NAME = identity().project  # the distribution: pyproject.toml's [project] name
PROJECT = {"name": NAME, "skip_reason": f"Dependency {NAME} is editable; skipping"}
NOT_FOUND = "Dependency not found on PyPI and could not be audited: {} ({})"


def _ok(name: str, version: str = "1.0") -> dict[str, Any]:
    return {"name": name, "version": version, "vulns": []}


def _skipped(name: str, version: str = "1.0") -> dict[str, Any]:
    return {"name": name, "skip_reason": NOT_FOUND.format(name, version)}


def _vulnerable(name: str, *ids: str) -> dict[str, Any]:
    vulns = [{"id": i, "fix_versions": ["9.9"], "aliases": [], "description": "x"} for i in ids]
    return {"name": name, "version": "1.0", "vulns": vulns}


@pytest.fixture(params=["local", "CI", "GITHUB_ACTIONS"])
def where(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ("CI", "GITHUB_ACTIONS"):
        monkeypatch.delenv(name, raising=False)
    if request.param != "local":
        monkeypatch.setenv(request.param, "true")
    return str(request.param)


def _judge(tmp_path: Path, capsys: pytest.CaptureFixture[str], *deps: dict[str, Any]) -> Any:
    report = tmp_path / "audit.json"
    report.write_text(json.dumps({"dependencies": [PROJECT, *deps], "fixes": []}))
    code = main(["--report", str(report)])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_full_audit_without_findings_passes(tmp_path, capsys, where):
    code, out, err = _judge(tmp_path, capsys, _ok("numpy"), _ok("pandas"))
    assert code == 0
    assert "audited 2 packages: no known vulnerabilities" in out  # the editable project aside
    assert "NOT AUDITED" not in out + err


def test_packages_not_audited_are_loud_and_fail_only_in_ci(tmp_path, capsys, where):
    code, out, err = _judge(tmp_path, capsys, _ok("numpy"), _skipped("a"), _skipped("b", "2.0"))
    assert "NOT AUDITED: 2 of 3 packages could not be checked" in err
    assert "reason: Dependency not found on PyPI and could not be audited" in err
    assert "no known vulnerabilities" not in out  # never claimed over a partial audit
    if where == "local":
        assert code == 0 and "in CI it fails here" in err
    else:
        assert code == 1


def test_nothing_audited_at_all_is_not_a_pass(tmp_path, capsys, where):
    code, out, err = _judge(tmp_path, capsys, *(_skipped(f"p{i}") for i in range(301)))
    assert "NOT AUDITED: 301 of 301 packages" in err
    assert "no known vulnerabilities" not in out
    assert code == (0 if where == "local" else 1)


def test_a_vulnerability_fails_everywhere_and_is_named(tmp_path, capsys, where):
    code, out, err = _judge(
        tmp_path, capsys, _ok("numpy"), _vulnerable("mlflow", "GHSA-1", "PYSEC-2"), _skipped("x")
    )
    assert code == 1
    assert "VULNERABLE mlflow 1.0: GHSA-1, PYSEC-2" in out
    assert "NOT AUDITED: 1 of 3 packages" in err


def test_a_report_without_packages_is_not_audited(tmp_path, capsys, where):
    code, out, err = _judge(tmp_path, capsys)
    assert code == 1 and "NOT AUDITED" in err and "no known vulnerabilities" not in out
