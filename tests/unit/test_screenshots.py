"""The screenshot tool's helpers (the tool itself, `make screenshots`, takes minutes: not here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tools.fork import free_port
from tools.screenshots import ScreenshotError, background, child_env, is_loopback, optimise_png


def test_child_processes_do_not_inherit_the_persons_own_servers():
    base = {
        "PATH": "/usr/bin",
        "HOME": "/home/me",
        "PREFECT_API_URL": "http://127.0.0.1:4200/api",
        "PREFECT_HOME": "/home/me/.prefect",
        "MLFLOW_TRACKING_URI": "http://mlflow.example",
        "CHURN_API_KEY": "secret",
    }
    env = child_env(base, PREFECT_API_URL="http://127.0.0.1:5555/api")
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/home/me",
        "PREFECT_API_URL": "http://127.0.0.1:5555/api",
    }


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:8000/docs", True),
        ("http://localhost:5000/#/experiments/1", True),
        ("file:///tmp/report/classification.html", True),
        ("data:image/png;base64,AAAA", True),
        ("https://cdn.jsdelivr.net/npm/swagger-ui-dist/swagger-ui.css", False),
        ("https://fonts.googleapis.com/css?family=Inter", False),
        ("http://127.0.0.1.example.com/", False),
    ],
)
def test_only_this_machine_is_reachable_from_the_pages(url, allowed):
    assert is_loopback(url) is allowed


def test_a_screenshot_is_stored_with_a_palette_and_keeps_its_size(tmp_path: Path):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (640, 400), "white")
    draw = ImageDraw.Draw(image)
    for x in range(0, 640, 4):  # a smooth ramp, then text: what a UI page is made of
        draw.line([(x, 0), (x, 120)], fill=(x % 256, 128, 255 - x % 256))
    for y in range(140, 400, 16):
        draw.text((10, y), "Drift share 0.412 · ROC AUC 0.861 · v2", fill=(30, 30, 30))
    path = tmp_path / "page.png"
    image.save(path)
    before = path.stat().st_size
    after = optimise_png(path)
    assert after == path.stat().st_size < before
    with Image.open(path) as stored:
        assert stored.size == (640, 400) and stored.mode == "P"


def test_a_server_that_exits_is_named_with_its_log(tmp_path: Path):
    log = tmp_path / "logs" / "broken.log"
    command = [sys.executable, "-c", "print('port in use'); raise SystemExit(3)"]
    with (
        pytest.raises(ScreenshotError, match=r"the Broken UI exited early \(code 3\)") as error,
        background("Broken UI", command, {}, log, "http://127.0.0.1:9/"),
    ):
        pass
    assert str(log) in str(error.value)
    assert "port in use" in log.read_text()


def test_a_server_is_up_inside_and_stopped_after(tmp_path: Path):
    port = free_port()
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    with background(
        "file server", command, {}, tmp_path / "server.log", f"http://127.0.0.1:{port}/"
    ) as process:
        assert process.poll() is None
    assert process.poll() is not None  # stopped on the way out
