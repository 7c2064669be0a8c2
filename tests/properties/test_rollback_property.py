"""Property: whatever the service looked like before the run (shares, tags -- ours included --,
``latestRevision`` entries, a template the server named) and wherever the rollout fails (the revision
cannot start, the smoke check, a check during a bake, a cancel, conflicts that outlast the retries),
the service after the rollback is the service before the run, in traffic and in template.

The rollout runs in-process (``rollout.Rollout`` with a real ``CloudRun`` client) against an
in-process emulator over loopback; failures come from the hooks and the emulator's fault injection.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudrun_emulator import Emulator
from deployer import inputs, rollout
from deployer.client import CloudRun, RetryPolicy
from deployer.result import Outcome, StepInfo, Verdict
from deployer.smoke import SmokeResult
from deployer.state import STATE_ANNOTATION
from devtools import harness
from tests.cloudrun import Api, api_path, routing
from tests.helpers import Quiet
from tests.properties.scenarios import traffic_split

SERVICE = "prop"
TAGS = ["blue", "green", "old", "canary"]  # "canary" is the action's own tag
FAILURES = ["crash", "smoke", "check@10", "check@50", "cancel@10", "cancel@50", "conflict@1", "conflict@2"]
_projects = itertools.count(1)


@st.composite
def services(draw: st.DrawFn) -> dict[str, Any]:
    """A pre-run service: 1-3 revisions, a split over them and/or "latest", tags on some entries."""
    revisions = draw(st.integers(1, 3))
    traffic = traffic_split(draw, SERVICE, revisions, max_entries=4)
    for tag in draw(st.lists(st.sampled_from(TAGS), unique=True, max_size=3)):
        free = [i for i, e in enumerate(traffic) if "tag" not in e]
        on_entry: bool = draw(st.booleans())
        if free and on_entry:
            chosen: int = draw(st.sampled_from(free))
            traffic[chosen]["tag"] = tag
        else:
            traffic.append({"revisionName": f"{SERVICE}-r{draw(st.integers(0, revisions - 1))}", "tag": tag})
    return {
        "revisions": revisions,
        "traffic": traffic,
        "env": draw(st.booleans()),  # the template before the run has an env var the release overwrites
        "server_named": draw(st.booleans()),  # the last template left unnamed (gcloud's way)
    }


def build(api: Api, spec: dict[str, Any]) -> dict[str, Any]:
    """Create the service as drawn; returns it once settled."""
    api.create_service(SERVICE, "sample/hello:r0", f"{SERVICE}-r0")
    for i in range(1, spec["revisions"]):
        svc = api.service(SERVICE)
        svc.pop("status")
        template = svc["spec"]["template"]
        template["spec"]["containers"][0]["image"] = f"sample/hello:r{i}"
        last = i == spec["revisions"] - 1
        if last and spec["env"]:
            template["spec"]["containers"][0]["env"] = [{"name": "MODE", "value": "before"}]
        template["metadata"]["name"] = f"{SERVICE}-r{i}"
        if last and spec["server_named"]:
            del template["metadata"]["name"]
        svc["spec"]["traffic"] = [{"latestRevision": True, "percent": 100}]
        assert requests.put(f"{api.ns}/services/{SERVICE}", json=svc, timeout=10).status_code == 200
        api.wait_ready(SERVICE)
    svc = api.service(SERVICE)
    traffic = copy.deepcopy(spec["traffic"])
    if spec["server_named"] and spec["revisions"] > 1:  # the last revision has a server-chosen name
        latest = api.service(SERVICE)["status"]["latestCreatedRevisionName"]
        for entry in traffic:
            if entry.get("revisionName") == f"{SERVICE}-r{spec['revisions'] - 1}":
                entry["revisionName"] = latest
    svc.pop("status")
    svc["spec"]["traffic"] = traffic
    resp = requests.put(f"{api.ns}/services/{SERVICE}", json=svc, timeout=10)
    assert resp.status_code == 200, resp.text
    return api.wait_routes(SERVICE)


def run_failing(emu: Emulator, project: str, failure: str) -> rollout.RolloutResult:
    """The rollout of a release with one failure at the drawn point."""
    kind, _, at = failure.partition("@")
    env = harness.input_env(
        {
            "service": SERVICE,
            "image": "sample/crash" if kind == "crash" else "sample/hello:new",
            "suffix": "new",
            "steps": "10,50,100",
            "step_interval": "0.3s",
            "wait_timeout": "20s",
            "env_vars": "MODE=release",
            "api_endpoint": emu.url,
            "project_id": project,
        }
    )
    config, ctx = inputs.load({**env, "GITHUB_RUN_ID": "1", "GITHUB_RUN_ATTEMPT": "1"})
    reporter = Quiet()

    def smoke(url: str) -> SmokeResult:
        if kind == "smoke":
            return SmokeResult(False, 500, 1, "HTTP 500", 0.0)
        if kind == "cancel" and reporter.phase == f"{at}%":
            raise KeyboardInterrupt("cancelled")
        return SmokeResult(True, 200, 1, "ok", 0.0)

    def checks(info: StepInfo) -> list[Verdict]:
        if kind == "check" and str(info.percent) == at:
            return [Verdict("errors", False, "error rate 50 %")]
        return []

    if kind == "conflict":  # the step's PUT and its three re-applications all meet a 409
        emu.faults.add(
            method="PUT",
            path=api_path(project, rf"services/{SERVICE}$"),
            status=409,
            times=4,
            skip=int(at),
        )
    api = CloudRun(
        requests.Session(),
        region="us-central1",
        project=project,
        api_endpoint=emu.url,
        policy=RetryPolicy(attempts=3, base_delay=0.05, max_delay=0.2, total=5.0),
    )
    hooks = rollout.Hooks(smoke=smoke, checks=checks)
    return rollout.Rollout(config, ctx, api, project, reporter, hooks).run()


def unnamed(template: dict[str, Any]) -> dict[str, Any]:
    """A template without its revision name (written back, it carries the name the server chose)."""
    out = copy.deepcopy(template)
    out.get("metadata", {}).pop("name", None)
    if out.get("metadata") == {}:
        del out["metadata"]
    return out


def spec_entries(svc: dict[str, Any]) -> list[tuple[str, int, str, bool]]:
    return sorted(
        (e.get("revisionName", ""), e.get("percent", 0), e.get("tag", ""), bool(e.get("latestRevision")))
        for e in svc["spec"]["traffic"]
    )


@pytest.mark.long
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(services(), st.sampled_from(FAILURES))
def test_rollback_restores_the_service_as_before_the_run(
    emu: Emulator, spec: dict[str, Any], failure: str
) -> None:
    project = f"prop-{next(_projects)}"
    api = Api(emu.url, project)
    try:
        before = build(api, spec)
        result = run_failing(emu, project, failure)
        assert result.outcome is Outcome.ROLLED_BACK, (failure, result.reason)
        after = api.wait_routes(SERVICE)
        candidate = f"{SERVICE}-new"
        ours = [(candidate, 0, "canary", False)]
        expected = spec_entries(before)
        if failure != "crash" and "canary" not in {e.get("tag") for e in before["spec"]["traffic"]}:
            expected = sorted(expected + ours)  # the candidate stays reachable under our free tag
        assert spec_entries(after) == expected
        assert unnamed(after["spec"]["template"]) == unnamed(before["spec"]["template"])
        for key in ("latestCreatedRevisionName", "latestReadyRevisionName"):
            assert after["status"][key] == before["status"][key]
        assert [t for t in routing(after) if t[0] != candidate] == routing(before)
        assert STATE_ANNOTATION not in after["metadata"].get("annotations", {})
    finally:
        emu.faults.clear()
        requests.delete(f"{api.ns}/services/{SERVICE}", timeout=10)  # stop its revision processes


class CancelledAfterWrite(CloudRun):
    """A client whose promote write lands but whose answer is lost to a cancel."""

    def replace_service(self, name: str, body: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        written = super().replace_service(name, body, dry_run=dry_run)
        annotations = body["metadata"].get("annotations", {})
        promote = (
            annotations.get("run-canary.dev/stable") == f"{SERVICE}-new"
            and STATE_ANNOTATION not in annotations
        )
        if promote and not self.cancelled:
            self.cancelled = True
            raise KeyboardInterrupt("cancelled while the promote was in flight")
        return written

    cancelled = False


def test_cancel_during_a_promote_that_landed_restores_the_stable_annotations(emu: Emulator) -> None:
    project = f"prop-{next(_projects)}"
    api = Api(emu.url, project)
    build(
        api,
        {
            "revisions": 2,
            "traffic": [{"revisionName": f"{SERVICE}-r1", "percent": 100}],
            "env": False,
            "server_named": False,
        },
    )
    svc = api.service(SERVICE)
    svc.pop("status")
    svc["metadata"]["annotations"]["run-canary.dev/stable"] = f"{SERVICE}-r1"
    svc["metadata"]["annotations"]["run-canary.dev/previous-stable"] = f"{SERVICE}-r0"
    assert requests.put(f"{api.ns}/services/{SERVICE}", json=svc, timeout=10).status_code == 200
    before = api.wait_routes(SERVICE)
    env = harness.input_env(
        {
            "service": SERVICE,
            "image": "sample/hello:new",
            "suffix": "new",
            "steps": "100",
            "api_endpoint": emu.url,
            "project_id": project,
            "wait_timeout": "20s",
        }
    )
    config, ctx = inputs.load({**env, "GITHUB_RUN_ID": "1"})
    client = CancelledAfterWrite(
        requests.Session(), region="us-central1", project=project, api_endpoint=emu.url
    )
    hooks = rollout.Hooks(smoke=lambda url: SmokeResult(True, 200, 1, "ok", 0.0))
    try:
        result = rollout.Rollout(config, ctx, client, project, Quiet(), hooks).run()
        assert result.outcome is Outcome.ROLLED_BACK, result.reason
        after = api.wait_routes(SERVICE)
        annotations = after["metadata"]["annotations"]
        assert annotations["run-canary.dev/stable"] == f"{SERVICE}-r1"
        assert annotations["run-canary.dev/previous-stable"] == f"{SERVICE}-r0"
        assert spec_entries(after) == sorted([*spec_entries(before), (f"{SERVICE}-new", 0, "canary", False)])
        assert unnamed(after["spec"]["template"]) == unnamed(before["spec"]["template"])
    finally:
        requests.delete(f"{api.ns}/services/{SERVICE}", timeout=10)
