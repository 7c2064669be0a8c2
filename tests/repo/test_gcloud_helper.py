"""tests/gcloud.py itself: what it runs, in which environment, and when it skips or fails.

A fake `gcloud` on PATH prints its arguments, the CLOUDSDK_* settings and the /etc/hosts it sees, so
these tests need neither the Google Cloud CLI nor an emulator (but `unshare -m` still needs root).
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from tests import gcloud

FAKE = """#!/bin/sh
python3 - "$@" <<'PY'
import json, os, sys
print(json.dumps({
    "argv": sys.argv[1:],
    "env": {k: v for k, v in os.environ.items() if k.startswith("CLOUDSDK_")},
    "hosts": open("/etc/hosts").read(),
}))
PY
[ "$1" = "fail" ] && { echo "ERROR: (gcloud.fail) no" >&2; exit 2; }
exit 0
"""


@pytest.fixture
def fake_gcloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare for the private /etc/hosts")
    path = tmp_path / "bin" / "gcloud"
    path.parent.mkdir()
    path.write_text(FAKE)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{path.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CLOUDSDK_CORE_ACCOUNT", "someone@example.com")  # the developer's: must not leak
    return path


def test_runs_gcloud_with_its_own_config_and_a_private_hosts_file(fake_gcloud: Path) -> None:
    before = Path("/etc/hosts").read_text()
    gc = gcloud.Gcloud("http://127.0.0.1:8123", "proj-x", "europe-west1")
    seen = gc.run("run", "services", "list")
    assert seen["argv"] == ["run", "services", "list", "--format", "json"]
    env = seen["env"]
    assert env["CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN"] == "http://localhost:8123/"
    assert env["CLOUDSDK_CORE_PROJECT"] == "proj-x" and env["CLOUDSDK_RUN_REGION"] == "europe-west1"
    assert Path(env["CLOUDSDK_CONFIG"]) == gc.config and gc.config.is_dir()
    assert "CLOUDSDK_CORE_ACCOUNT" not in env
    hosts = seen["hosts"].splitlines()
    assert hosts[:2] == ["127.0.0.1 localhost", "127.0.0.1 europe-west1-localhost"]
    assert "127.0.0.1 us-central1-localhost" in hosts and len(hosts) == len(set(hosts))
    assert Path("/etc/hosts").read_text() == before  # the machine's own file is untouched


def test_format_goes_before_container_flags(fake_gcloud: Path) -> None:
    gc = gcloud.Gcloud("http://127.0.0.1:8123", "p")
    argv = gc.run("run", "deploy", "s", "--container", "a", "--image", "x", "--port", "8080")["argv"]
    assert argv == [
        "run",
        "deploy",
        "s",
        "--format",
        "json",
        "--container",
        "a",
        "--image",
        "x",
        "--port",
        "8080",
    ]
    assert gc.run("run", "services", "list", "--format=json")["argv"][-1] == "--format=json"


def test_failure_raises_with_stderr_and_call_does_not(fake_gcloud: Path) -> None:
    gc = gcloud.Gcloud("http://127.0.0.1:8123", "p")
    with pytest.raises(gcloud.GcloudError, match=r"exited 2:\nERROR: \(gcloud.fail\) no"):
        gc.run("fail")
    result = gc.call("fail")
    assert result.returncode == 2 and "gcloud.fail" in result.stderr


def test_bad_base_url_is_refused() -> None:
    with pytest.raises(ValueError, match="base_url must be http://HOST:PORT"):
        gcloud.Gcloud("localhost", "p")


def test_require_skips_without_gcloud_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "gcloud" else f"/usr/bin/{name}")
    assert gcloud.missing_reason() == "gcloud (Google Cloud CLI) is not installed (not on PATH)"
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"gcloud tests skipped: gcloud .* not installed"):
        gcloud.require()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="gcloud is required in CI"):
        gcloud.require()
