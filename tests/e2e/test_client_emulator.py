"""The CloudRun client against an emulator of its own: create, replace and its 409, validation and
dry run, IAM, faults retried without a duplicated write, and a status named as the client names it."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from deployer.client import CANONICAL_CODES, ApiError, CloudRun, Conflict, RetryPolicy

PROJECT = "proj"
REGION = "us-central1"
# Quick retries: the emulator answers on loopback, its faults are injected.
FAST = RetryPolicy(
    attempts=6, base_delay=0.01, max_delay=0.05, total=10.0, connect_timeout=1.0, read_timeout=0.4
)


def _emulator_service(name: str, revision: str) -> dict[str, Any]:
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": PROJECT},
        "spec": {
            "template": {
                "metadata": {"name": revision},
                "spec": {"containers": [{"image": "sample/hello"}]},
            }
        },
    }


@pytest.fixture
def emu() -> Iterator[Any]:
    from cloudrun_emulator import Emulator

    with Emulator(port=0, ready_delay=0.05) as emulator:
        yield emulator


def _ready(api: CloudRun, name: str, timeout: float = 10.0) -> dict[str, Any]:
    """The service once its status has settled (status transitions change resourceVersion)."""
    end = time.monotonic() + timeout
    while True:
        svc = api.get_service(name)
        assert svc is not None
        status = svc.get("status") or {}
        fresh = status.get("observedGeneration") == svc["metadata"].get("generation")
        ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
        if fresh and ready and ready[0].get("status") in ("True", "False"):
            return svc
        assert time.monotonic() < end, f"{name} never became Ready: {status}"
        time.sleep(0.05)


def _emu_api(emu: Any, **kw: Any) -> CloudRun:
    kw.setdefault("policy", FAST)
    return CloudRun(requests.Session(), region=REGION, project=PROJECT, api_endpoint=emu.url, **kw)


def test_emulator_create_get_replace_conflict(emu: Any) -> None:
    api = _emu_api(emu)
    assert api.get_service("web") is None
    created = api.create_service(_emulator_service("web", "web-00001-aaa"))
    assert created["metadata"]["name"] == "web"
    current = _ready(api, "web")
    stale = copy.deepcopy(current)
    current["spec"]["template"]["metadata"]["name"] = "web-00002-bbb"
    updated = api.replace_service("web", current)
    assert updated["metadata"]["resourceVersion"] != stale["metadata"]["resourceVersion"]
    stale["spec"]["template"]["metadata"]["name"] = "web-00003-ccc"
    with pytest.raises(Conflict):
        api.replace_service("web", stale)
    names = {r["metadata"]["name"] for r in api.list_revisions("web")}
    assert "web-00001-aaa" in names


def test_emulator_validation_error_and_dry_run(emu: Any) -> None:
    api = _emu_api(emu)
    bad = _emulator_service("web", "wrong-prefix")
    with pytest.raises(ApiError) as info:
        api.create_service(bad)
    assert info.value.status == 400
    api.create_service(_emulator_service("dry", "dry-00001-aaa"), dry_run=True)
    assert api.get_service("dry") is None


def test_emulator_faults_retried_and_put_not_duplicated(emu: Any) -> None:
    api = _emu_api(emu)
    api.create_service(_emulator_service("web", "web-00001-aaa"))
    current = _ready(api, "web")
    current["spec"]["template"]["metadata"]["name"] = "web-00002-bbb"
    emu.faults.add(method="PUT", path=r"/services/", status=503, times=2)
    updated = api.replace_service("web", current)
    assert updated["spec"]["template"]["metadata"]["name"] == "web-00002-bbb"
    puts = [r for r in emu.requests() if r["method"] == "PUT"]
    assert [r["status"] for r in puts] == [503, 503, 200]
    emu.faults.clear()


def test_emulator_iam(emu: Any) -> None:
    api = _emu_api(emu)
    api.create_service(_emulator_service("web", "web-00001-aaa"))
    policy = api.get_iam_policy("web")
    bindings = [*policy.get("bindings", []), {"role": "roles/run.invoker", "members": ["allUsers"]}]
    api.set_iam_policy("web", {**policy, "bindings": bindings})
    assert {"role": "roles/run.invoker", "members": ["allUsers"]} in api.get_iam_policy("web")["bindings"]


def test_emulator_reset_and_retry_after(emu: Any) -> None:
    delays: list[float] = []
    api = _emu_api(emu, sleep=delays.append)
    api.create_service(_emulator_service("web", "web-00001-aaa"))
    current = _ready(api, "web")
    current["spec"]["template"]["metadata"]["name"] = "web-00002-bbb"
    emu.faults.add(method="PUT", path=r"/services/web", action="reset", times=1)
    updated = api.replace_service("web", current)
    assert updated["spec"]["template"]["metadata"]["name"] == "web-00002-bbb"
    methods = [r["method"] for r in emu.requests()]
    assert 1 <= methods.count("PUT") <= 2  # verified by GET, repeated only if it had not landed
    emu.faults.clear()
    emu.faults.add(method="GET", path=r"/services/web", status=429, retry_after=1, times=1)
    assert api.get_service("web") is not None
    assert delays[-1] == 1.0


@pytest.mark.parametrize("status", [499, 502, 412])
def test_emulator_fault_and_client_name_a_status_alike(emu: Any, status: int) -> None:
    emu.faults.add(method="GET", path="/services/web$", status=status)
    api = _emu_api(emu, policy=RetryPolicy(attempts=1))
    with pytest.raises(ApiError) as caught:
        api.get_service("web")
    assert (caught.value.status, caught.value.reason) == (status, CANONICAL_CODES[status])
