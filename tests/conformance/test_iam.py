"""`gcloud run services add-iam-policy-binding|remove-iam-policy-binding|get-iam-policy`.

Reference: https://cloud.google.com/run/docs/securing/managing-access (roles/run.invoker bindings,
etag read-modify-write as in https://cloud.google.com/iam/docs/policies#etag).
"""

from __future__ import annotations

import pytest

from tests.gcloud import Gcloud

pytestmark = pytest.mark.gcloud

INVOKER = "roles/run.invoker"


def test_bindings_round_trip(gc: Gcloud) -> None:
    gc.run("run", "deploy", "sec", "--image", "sample/hello", "--no-allow-unauthenticated")
    assert "bindings" not in gc.run("run", "services", "get-iam-policy", "sec")
    # Several read-modify-writes: each sends gcloud's URL-safe base64 etag back.
    for member in ("user:ana@example.com", "serviceAccount:ci@p.iam.gserviceaccount.com", "allUsers"):
        gc.run("run", "services", "add-iam-policy-binding", "sec", "--member", member, "--role", INVOKER)
    policy = gc.run("run", "services", "get-iam-policy", "sec")
    [binding] = policy["bindings"]
    assert binding["role"] == INVOKER
    assert sorted(binding["members"]) == [
        "allUsers",
        "serviceAccount:ci@p.iam.gserviceaccount.com",
        "user:ana@example.com",
    ]
    gc.run("run", "services", "remove-iam-policy-binding", "sec", "--member", "allUsers", "--role", INVOKER)
    policy = gc.run("run", "services", "get-iam-policy", "sec")
    assert "allUsers" not in policy["bindings"][0]["members"]
    missing = gc.call(
        "run", "services", "remove-iam-policy-binding", "sec", "--member", "allUsers", "--role", INVOKER
    )
    assert missing.returncode == 1 and "not found" in missing.stderr
    bad = gc.call("run", "services", "add-iam-policy-binding", "sec", "--member", "nobody", "--role", INVOKER)
    assert bad.returncode == 1
