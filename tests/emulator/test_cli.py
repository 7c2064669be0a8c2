"""``python -m cloudrun_emulator`` as a process, driven with plain curl like a user would."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def curl(method: str, url: str, body: dict[str, Any] | None = None) -> Any:
    """One request with curl; the JSON answer."""
    args = ["curl", "-sS", "-X", method, url]
    if body is not None:
        args += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=20, check=True)
    return json.loads(result.stdout)


def wait_ready(url: str) -> dict[str, Any]:
    """Poll with curl until the current generation is decided."""
    deadline = time.monotonic() + 20
    while True:
        service = curl("GET", url)
        ready = next(c for c in service["status"]["conditions"] if c["type"] == "Ready")
        if (
            service["status"].get("observedGeneration") == service["metadata"]["generation"]
            and ready["status"] != "Unknown"
        ):
            return service
        assert time.monotonic() < deadline, service["status"]
        time.sleep(0.1)


def test_cli_create_canary_rollback_and_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "cloudrun_emulator", "--port", "0", "--ready-delay", "0.2"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        prefix = "Cloud Run emulator listening on "
        assert line.startswith(prefix), line
        base = line[len(prefix) :]
        ns = f"{base}/apis/serving.knative.dev/v1/namespaces/demo"
        template = {"metadata": {"name": "hello-v1"}, "spec": {"containers": [{"image": "sample/hello"}]}}
        body = {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {"name": "hello"},
            "spec": {"template": template},
        }
        assert curl("POST", f"{ns}/services", body)["metadata"]["generation"] == 1
        service = wait_ready(f"{ns}/services/hello")

        service["spec"]["template"]["metadata"]["name"] = "hello-v2"
        service["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "V", "value": "2"}]
        service["spec"]["traffic"] = [
            {"revisionName": "hello-v1", "percent": 90},
            {"revisionName": "hello-v2", "percent": 10, "tag": "canary"},
        ]
        curl("PUT", f"{ns}/services/hello", service)
        canary = wait_ready(f"{ns}/services/hello")
        tag_url = canary["status"]["traffic"][1]["url"]
        assert curl("GET", tag_url)["revision"] == "hello-v2"

        canary["spec"]["traffic"] = [{"revisionName": "hello-v1", "percent": 100}]
        curl("PUT", f"{ns}/services/hello", canary)
        rolled = wait_ready(f"{ns}/services/hello")
        assert rolled["status"]["traffic"] == [{"revisionName": "hello-v1", "percent": 100}]
        assert curl("GET", rolled["status"]["url"])["revision"] == "hello-v1"
        log = curl("GET", f"{base}/_emulator/requests")
        assert [e["method"] for e in log if e["method"] != "GET"] == ["POST", "PUT", "PUT"]

        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - started < 8
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_cli_rejects_bad_image_mapping() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cloudrun_emulator", "--port", "0", "--image", "no-equals-sign"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2 and "REF=COMMAND" in result.stderr
