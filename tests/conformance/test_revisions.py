"""`gcloud run revisions list|describe|delete` against the emulator.

Reference: https://cloud.google.com/run/docs/managing/revisions (a revision that serves traffic
cannot be deleted; others can).
"""

from __future__ import annotations

import pytest

from tests.gcloud import Gcloud

pytestmark = pytest.mark.gcloud


def test_list_describe_delete(gc: Gcloud) -> None:
    gc.run("run", "deploy", "rev", "--image", "sample/hello:v1", "--revision-suffix", "v1")
    gc.run("run", "deploy", "rev", "--image", "sample/hello:v2", "--revision-suffix", "v2")
    listed = gc.run("run", "revisions", "list", "--service", "rev")  # needs the list's metadata
    assert [r["metadata"]["name"] for r in listed] == ["rev-v2", "rev-v1"]
    table = gc.text("run", "revisions", "list", "--service", "rev", "--format", "value(name,region)")
    assert table.split() == ["rev-v2", "us-central1", "rev-v1", "us-central1"]

    described = gc.run("run", "revisions", "describe", "rev-v1")
    assert described["metadata"]["labels"]["serving.knative.dev/service"] == "rev"
    assert described["metadata"]["labels"]["cloud.googleapis.com/location"] == "us-central1"
    assert described["spec"]["containers"][0]["image"] == "sample/hello:v1"
    assert described["status"]["imageDigest"].startswith("sample/hello@sha256:")
    active = {c["type"]: c["status"] for c in described["status"]["conditions"]}
    assert active["Ready"] == "True" and active["Active"] == "False"  # v2 has all the traffic

    serving = gc.call("run", "revisions", "delete", "rev-v2")
    assert serving.returncode == 1 and "rev-v2" in serving.stderr
    gc.run("run", "revisions", "delete", "rev-v1")
    assert [r["metadata"]["name"] for r in gc.run("run", "revisions", "list", "--service", "rev")] == [
        "rev-v2"
    ]
    assert gc.call("run", "revisions", "describe", "rev-v1").returncode == 1
