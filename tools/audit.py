"""The dependency audit of ``make lint``: pip-audit, read back, honest about what it did not check.

pip-audit lists a package it could not look up (no network, an unknown name) as a skip and still
says "No known vulnerabilities found" and exits 0: an audit of nothing passes. Here a skip is
``NOT AUDITED``, printed loudly with the count; in CI (``CI`` or ``GITHUB_ACTIONS`` set, where
the vulnerability service is reachable) it fails the target, as a known vulnerability always does.

    uv run python -m tools.audit                     # runs pip-audit, then judges its report
    uv run python -m tools.audit --report audit.json # judges a report pip-audit already wrote
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--report"] and len(args) == 2:
        return judge(json.loads(Path(args[1]).read_text()))
    if args:
        print("usage: python -m tools.audit [--report PIP_AUDIT_JSON]", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "audit.json"
        command = [sys.executable, "-m", "pip_audit", "--progress-spinner", "off"]
        command += ["--skip-editable", "--format", "json", "--output", str(out)]
        # A fixed argv (this interpreter's pip-audit), no shell.
        done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        if not out.is_file():
            print(done.stderr.strip()[-3000:], file=sys.stderr)
            print("NOT AUDITED: pip-audit did not produce a report (see above)", file=sys.stderr)
            return 1
        report = json.loads(out.read_text())
    return judge(report)


def judge(report: dict[str, Any]) -> int:
    """Print what pip-audit's JSON ``report`` found and did not check; the exit code: 1 for a
    vulnerability, and for packages not audited in CI (``CI`` or ``GITHUB_ACTIONS`` set)."""
    in_ci = bool(os.environ.get("CI") or os.environ.get("GITHUB_ACTIONS"))
    # The project itself is installed editable: not a dependency to audit.
    dependencies = [
        d for d in report.get("dependencies", []) if "editable" not in str(d.get("skip_reason"))
    ]
    if not dependencies:
        print("NOT AUDITED: pip-audit's report lists no packages", file=sys.stderr)
        return 1
    vulnerable = [d for d in dependencies if d.get("vulns")]
    skipped = [d for d in dependencies if d.get("skip_reason")]
    checked = len(dependencies) - len(skipped)
    for dep in vulnerable:
        ids = ", ".join(v["id"] for v in dep["vulns"])
        print(f"VULNERABLE {dep['name']} {dep['version']}: {ids}")
    if skipped:
        reasons = sorted({str(d["skip_reason"]).split(":")[0][:160] for d in skipped})
        print(
            f"\n{'!' * 72}\nNOT AUDITED: {len(skipped)} of {len(dependencies)} packages could not "
            f"be checked; the audit says nothing about them.\n"
            + "\n".join(f"  reason: {r}" for r in reasons[:5])
            + f"\n{'!' * 72}",
            file=sys.stderr,
        )
    if vulnerable:
        return 1
    if skipped:
        if in_ci:
            return 1
        print("(outside CI the target goes on; in CI it fails here)", file=sys.stderr)
        return 0
    print(f"audited {checked} packages: no known vulnerabilities")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
