"""Every start refused for its settings names the variable and the rule, and prints no secret."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HASH_KEY = "Hmac-9f8e7d6c5b4a-" + "q" * 20  # strong enough: 38 characters
API_KEY = "Api-1b2c3d4e5f6a7b8c9d0e-strong-key"
DB_PASSWORD = "db-Passw0rd-7g8h"
PG_URL = f"postgresql+psycopg://app:{DB_PASSWORD}@127.0.0.1:1/app"

# (case, environment, what the message must say, the secrets that must not appear)
STARTS: list[tuple[str, dict[str, str], str]] = [
    (
        "placeholder API key",
        {"CHURN_API_KEY": " Change_Me ", "CHURN_ID_HASH_KEY": HASH_KEY},
        "CHURN_API_KEY is a placeholder",
    ),
    (
        "password as the hash key",
        {"CHURN_API_KEY": API_KEY, "CHURN_ID_HASH_KEY": "PASSWORD"},
        "CHURN_ID_HASH_KEY is a placeholder",
    ),
    (
        "short API key",
        {"CHURN_API_KEY": "short-9f8e7d", "CHURN_ID_HASH_KEY": HASH_KEY},
        "CHURN_API_KEY is shorter than 32 characters",
    ),
    (
        "short hash key",
        {"CHURN_API_KEY": API_KEY, "CHURN_ID_HASH_KEY": "alHmacKey-9f8e7d6c5b4a"},
        "CHURN_ID_HASH_KEY is shorter than 32 characters",
    ),
    (
        "a bad number beside the secrets",
        {"CHURN_API_KEY": API_KEY, "CHURN_ID_HASH_KEY": HASH_KEY, "CHURN_MAX_RECORDS": "many"},
        "CHURN_MAX_RECORDS: Input should be a valid integer",
    ),
    (
        "no API key",
        {"CHURN_ID_HASH_KEY": HASH_KEY},
        "CHURN_API_KEY must be set outside development",
    ),
]


@pytest.mark.parametrize(("case", "env", "said"), STARTS, ids=[s[0] for s in STARTS])
def test_a_refused_start_names_the_rule_and_prints_no_secret(
    tmp_path: Path, case: str, env: dict[str, str], said: str
) -> None:
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    full = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CHURN_", "MLFLOW_"))},
        "CHURN_ENVIRONMENT": "production",
        "CHURN_PREDICTION_LOG_URL": PG_URL,
        "CHURN_ENV": "production",  # a wrong name: warned about, never silently used
        "COLUMNS": "200",
        **env,
    }
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "serve", "--port", "1"],
        env=full,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = " ".join((done.stdout + done.stderr).split())  # rich wraps long lines
    assert done.returncode == 2, output[-2000:]
    assert said in output, output[-2000:]
    assert "CHURN_ENV is not a setting and is ignored; did you mean CHURN_ENVIRONMENT?" in output
    given = [v.strip() for k, v in env.items() if "KEY" in k] + [DB_PASSWORD]
    for secret in given:
        assert secret not in output, f"{case}: printed a secret"
        assert secret[:8] not in output, f"{case}: printed part of a secret"
