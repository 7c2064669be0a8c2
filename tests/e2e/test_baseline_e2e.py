"""Baseline comparison end to end: the action against the emulator, whose data plane serves real
requests and whose Cloud Monitoring reports the latencies and statuses they really had.

The stable release answers in about 100 ms; a candidate that takes 150 ms stays under every absolute
threshold set here, and only the comparison with a baseline deployed beside it stops it."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudrun_emulator import Emulator
from deployer import analysis
from devtools import harness
from tests.cloudrun import Api, routing
from tests.helpers import load

STEPS = {"steps": "50,100", "step_interval": "3s", "wait_timeout": "30s", "smoke_timeout": "5s"}
ABSOLUTE: dict[str, Any] = {"max_error_rate": "5", "max_latency_p95": "1000", "max_latency_p99": "2000"}


def deploy(
    emu: Emulator,
    project: str,
    tmp_path: Path,
    name: str,
    stable: tuple[str, dict[str, str]],
    *,
    busy: bool = True,
    users_of: str = "",
    env: dict[str, str] | None = None,
    **inputs: Any,
) -> tuple[harness.RunResult, list[tuple[str, int, str]], Api]:
    """Create ``name`` serving the stable release (image, env), then run the action on it (with
    ``env``); ``busy``: real users on the service URL meanwhile; ``users_of``: on that tag's URL."""
    api = Api(emu.url, project)
    image, stable_env = stable
    svc = api.create_service(name, image, f"{name}-v1", env=stable_env)
    args = {
        "api_endpoint": emu.url,
        "project_id": project,
        "service": name,
        "suffix": "v2",
        **STEPS,
        **inputs,
    }
    with contextlib.ExitStack() as users:
        if busy:
            users.enter_context(load(svc["status"]["url"]))
        if users_of:
            users.enter_context(users_of_tag(api, name, users_of))
        result = harness.run(args, tmp_path=tmp_path, env=env)
    return result, routing(api.wait_routes(name)), api


@contextlib.contextmanager
def users_of_tag(api: Api, name: str, tag: str) -> Iterator[None]:
    """Real users on one tag's URL, from when the run has made it until the block ends."""
    stop = threading.Event()

    def users() -> None:
        while not stop.wait(0.05):
            entries = api.service(name).get("status", {}).get("traffic", [])
            url = next((e["url"] for e in entries if e.get("tag") == tag and e.get("url")), "")
            if url:
                with load(url):
                    stop.wait()
                return

    thread = threading.Thread(target=users, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=15)


SLOW_STABLE = ("sample/slow", {"DELAY_MS": "100"})


@pytest.mark.long
def test_a_candidate_50_percent_slower_is_rolled_back_at_its_first_step(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    result, traffic, _ = deploy(
        emulator,
        project,
        tmp_path,
        "slower",
        SLOW_STABLE,
        image="sample/slow",
        env_vars="DELAY_MS=150",
        baseline="revision",
        max_latency_increase="20",
        load_rps="20",
        **ABSOLUTE,
    )
    assert result.outputs["result"] == "rolled_back", result.log
    # Failed at the first step, by the baseline check alone (a failed metrics check would come first).
    failed = re.search(r"check failed at (\d+)%: (\w+): latency: p50 ", result.log)
    assert failed is not None and failed.groups() == ("50", "baseline"), result.log
    assert "allowed +20 %" in result.log and "p<0.0001: fail" in result.log
    assert "Baseline: revision slower-v2-baseline with the settings of slower-v1" in result.log
    # ... in a round where every absolute threshold passed, as the log shows them.
    lost = re.findall(r"^50% round (\d+): baseline FAILED: ", result.log, re.M)
    assert len(lost) == 1, result.log
    metrics = re.search(
        rf"^50% round {lost[0]}: metrics ok: error rate 0\.0 % of (\d+) requests <= max 5 %; "
        r"p99 (\d+) ms <= max 2000 ms; p95 (\d+) ms <= max 1000 ms",
        result.log,
        re.M,
    )
    assert metrics is not None, result.log
    assert int(metrics[1]) >= 20 and int(metrics[3]) <= 1000
    assert "::group::50%" in result.log and "::group::100%" not in result.log  # never past it
    # Exactly as before the run: no baseline share or tag is left.
    assert traffic == [("slower-v1", 100, ""), ("slower-v2", 0, "canary")]
    assert "### Canary analysis" in result.summary
    row = next(line for line in result.summary.splitlines() if line.startswith("| 50% | baseline |"))
    assert "❌ fail" in row and "latency: p50 " in row and "allowed +20 %" in row
    assert "candidate " in row and "baseline " in row and "p50/p95/p99" in row


@pytest.mark.long
def test_the_same_release_on_a_quiet_service_is_promoted_thanks_to_load_rps(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    result, traffic, _ = deploy(
        emulator,
        project,
        tmp_path,
        "same",
        SLOW_STABLE,
        busy=False,
        image="sample/slow",
        env_vars="DELAY_MS=100\nRELEASE=2",  # the same app and speed; a new revision
        baseline="revision",
        # Two copies of one 100 ms app: a busy machine can slow one side's tail by tens of ms by
        # chance. This test is about getting enough data to judge, not about a small allowance.
        max_latency_increase="50",
        max_error_rate_increase="1",
        load_rps="20",
        **ABSOLUTE,
    )
    assert result.outputs["result"] == "promoted", result.log
    assert "load_rps 20: sent " in result.log
    assert "baseline ok: latency: p50" in result.log
    assert traffic == [("same-v2", 100, "canary")]  # the baseline's share and tag are gone


@pytest.mark.long
def test_five_percent_5xx_against_none_fails_max_error_rate_increase(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    result, traffic, _ = deploy(
        emulator,
        project,
        tmp_path,
        "errs",
        ("sample/hello", {}),
        busy=False,
        image="sample/error",
        env_vars="ERROR_RATE=0.05",
        baseline="revision",
        max_error_rate_increase="1",
        load_rps="100",
        step_interval="4s",
        smoke_timeout="10s",
    )
    assert result.outputs["result"] == "rolled_back", result.log
    # 5 % of what the candidate's process served; in the window, with the smoke checks left out, about 5 %
    failed = re.search(
        r"check failed at 50%: baseline: 5xx: (\d+\.\d) % of (\d+) vs 0\.0 % of (\d+) ", result.log
    )
    assert failed is not None, result.log
    assert 3.5 <= float(failed[1]) <= 6.5 and int(failed[2]) >= 100 and int(failed[3]) >= 100
    assert "allowed +1 point), p=" in result.log and "smoke-check requests left out" in result.log
    assert traffic == [("errs-v1", 100, ""), ("errs-v2", 0, "canary")]


@pytest.mark.long
def test_a_quiet_service_with_only_smoke_requests_is_inconclusive_not_passed(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    result, traffic, _ = deploy(
        emulator,
        project,
        tmp_path,
        "quiet",
        ("sample/hello", {}),
        busy=False,
        image="sample/hello:v2",
        baseline="revision",
        max_latency_increase="20",
    )
    assert result.outputs["result"] == "rolled_back", result.log
    assert "inconclusive at 50%" in result.log
    assert "smoke-check request" in result.log and "left out" in result.log
    assert traffic == [("quiet-v1", 100, ""), ("quiet-v2", 0, "canary")]


@pytest.mark.long
def test_a_candidate_whose_only_requests_are_smoke_checks_is_inconclusive_though_min_requests_is_met(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    """Real users reach the baseline only (its tag URL); the candidate gets nothing but the smoke
    checks, more of them than ``min_requests``: counted, they would pass the absolute check."""
    result, traffic, _ = deploy(
        emulator,
        project,
        tmp_path,
        "smokeonly",
        ("sample/hello", {}),
        busy=False,
        users_of="baseline",
        image="sample/hello:v2",
        baseline="revision",
        max_latency_increase="20",
        max_error_rate="5",
        min_requests="1",
    )
    assert result.outputs["result"] == "rolled_back", result.log
    final = result.log.split("inconclusive at 50%: ", 1)[-1].splitlines()[0]
    metrics = re.search(
        r"no requests to the candidate yet: inconclusive \((\d+) smoke-check requests? left out\)", final
    )
    assert metrics is not None and int(metrics[1]) >= 1, (
        result.log
    )  # >= min_requests: the subtraction decided
    compared = re.search(
        r"candidate 0 requests \((\d+) smoke-check requests? left out\).*; baseline (\d+) requests", final
    )
    assert compared is not None and int(compared[2]) >= 20, result.log  # the baseline had enough
    assert traffic == [("smokeonly-v1", 100, ""), ("smokeonly-v2", 0, "canary")]


def test_a_dry_run_shows_the_baseline_in_its_plan(emulator: Emulator, project: str, tmp_path: Path) -> None:
    result, traffic, api = deploy(
        emulator,
        project,
        tmp_path,
        "plan",
        ("sample/hello", {}),
        busy=False,
        image="sample/hello:v2",
        baseline="revision",
        max_latency_increase="20",
        dry_run="true",
    )
    assert result.outputs["result"] == "planned", result.log
    assert (
        "Baseline: revision plan-v2-baseline with the settings of plan-v1, tagged 'baseline'." in result.log
    )
    planned = [line for line in result.log.splitlines() if line.startswith("Planned traffic: ")]
    assert planned == [
        # deployed with no traffic, the baseline's write first
        "Planned traffic: plan-v1 100%, plan-v2-baseline 0% (tag baseline), plan-v2 0% (tag canary)",
        # the 50 % step: the baseline gets the candidate's share
        "Planned traffic: plan-v1 0%, plan-v2-baseline 50% (tag baseline), plan-v2 50% (tag canary)",
        # the promote: the baseline's share and tag are gone
        "Planned traffic: plan-v1 0%, plan-v2 100% (tag canary)",
    ], result.log
    assert traffic == [("plan-v1", 100, "")]  # nothing written
    assert api.revisions("plan") == ["plan-v1"]


@pytest.mark.long
def test_a_paused_rollout_with_a_baseline_is_undone_by_mode_rollback(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    result, traffic, _ = deploy(
        emulator,
        project,
        tmp_path / "a",
        "paused",
        ("sample/hello", {}),
        image="sample/hello:v2",
        baseline="revision",
        # Two copies of one app never differ in errors; their latencies do on a busy machine, by
        # chance, and a latency allowance would sometimes fail the step this test needs paused.
        max_error_rate_increase="1",
        load_rps="20",
        steps="50",
    )
    assert result.outputs["result"] == "paused", result.log
    assert traffic == [
        ("paused-v1", 0, ""),
        ("paused-v2", 50, "canary"),
        ("paused-v2-baseline", 50, "baseline"),
    ]
    args = {"api_endpoint": emulator.url, "project_id": project, "service": "paused", "mode": "rollback"}
    undone = harness.run(args, tmp_path=tmp_path / "b")
    assert undone.outputs["result"] == "rolled_back", undone.log
    after = routing(Api(emulator.url, project).wait_routes("paused"))
    assert after == [("paused-v1", 100, ""), ("paused-v2", 0, "canary")]


@pytest.mark.long
def test_baseline_stable_compares_with_the_revisions_from_before_the_run(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    result, traffic, api = deploy(
        emulator,
        project,
        tmp_path,
        "stable",
        SLOW_STABLE,
        image="sample/slow",
        env_vars="DELAY_MS=150",
        baseline="stable",
        max_latency_increase="20",
        load_rps="20",
        step_interval="6s",  # the simulated users wait on a 100 ms app: enough baseline requests
        **ABSOLUTE,
    )
    assert result.outputs["result"] == "rolled_back", result.log
    assert "check failed at 50%: baseline: latency: p50 " in result.log
    assert "Baseline: revision" not in result.log  # no extra revision
    assert api.revisions("stable") == ["stable-v1", "stable-v2"]
    assert traffic == [("stable-v1", 100, ""), ("stable-v2", 0, "canary")]


@pytest.mark.long
def test_a_paused_rollout_with_a_baseline_is_finished_by_mode_promote(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    result, traffic, _ = deploy(
        emulator,
        project,
        tmp_path / "a",
        "finish",
        ("sample/hello", {}),
        image="sample/hello:v2",
        baseline="revision",
        max_latency_increase="50",
        load_rps="20",
        steps="10",
    )
    assert result.outputs["result"] == "paused", result.log
    assert traffic == [
        ("finish-v1", 80, ""),
        ("finish-v2", 10, "canary"),
        ("finish-v2-baseline", 10, "baseline"),
    ]
    args = {"api_endpoint": emulator.url, "project_id": project, "service": "finish", "mode": "promote"}
    done = harness.run(args, tmp_path=tmp_path / "b")
    assert done.outputs["result"] == "promoted", done.log
    assert routing(Api(emulator.url, project).wait_routes("finish")) == [("finish-v2", 100, "canary")]


def _baking_with_a_baseline(api: Api, name: str) -> bool:
    """The first step's traffic is routed: the baseline serves beside the candidate."""
    svc = api.service(name)
    entries = svc.get("status", {}).get("traffic", [])
    return any(e.get("tag") == "baseline" and e.get("percent", 0) > 0 for e in entries)


def _wait(predicate: Any, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("how", ["sigterm", "sigkill then the post step"])
def test_a_cancelled_or_killed_run_leaves_no_baseline(
    how: str, emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    name = "gone" if how == "sigterm" else "killed"
    api.create_service(name, "sample/hello", f"{name}-v1")
    args = {
        "api_endpoint": emulator.url,
        "project_id": project,
        "service": name,
        "suffix": "v2",
        "image": "sample/hello:v2",
        "steps": "10,100",
        "step_interval": "60s",
        "wait_timeout": "30s",
        "baseline": "revision",
        "max_latency_increase": "20",
        "on_inconclusive": "pass",
    }
    with harness.start(args, tmp_path=tmp_path / "main") as running:
        _wait(lambda: _baking_with_a_baseline(api, name))
        if how == "sigterm":
            running.send_signal(signal.SIGTERM)
        else:
            running.kill()
        result = running.wait(timeout=20)
    if how != "sigterm":
        post = harness.run_post(result, args, tmp_path=tmp_path / "post", timeout=30)
        assert post.returncode == 0 and "restoring the traffic" in post.stdout, post.log
    else:
        assert "SIGTERM" in result.log
    after = routing(api.wait_routes(name))
    assert after == [(f"{name}-v1", 100, ""), (f"{name}-v2", 0, "canary")], result.log
    assert "run-canary.dev/rollout" not in api.service(name)["metadata"].get("annotations", {})


def test_a_run_that_died_between_the_baseline_and_the_candidate_write_is_undone(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    """Only the baseline's write landed (its record says so): mode rollback restores traffic and
    template from before the run, and no baseline share or tag is left."""
    from deployer import traffic as tr
    from deployer.state import STATE_ANNOTATION, RolloutState

    api = Api(emulator.url, project)
    api.create_service("half", "sample/hello", "half-v1")
    before = api.service("half")
    base = (tr.Target(revision="half-v1", percent=100),)
    state = RolloutState(
        candidate="half-v2",
        tag="canary",
        base=tr.to_spec(base),
        steps=[50, 100],
        before=before["spec"].get("traffic"),
        template=before["spec"]["template"] | {"metadata": {"name": "half-v1"}},
        baseline="half-v2-baseline",
        baseline_only=True,
        token="someone-else",
    )
    svc = api.service("half")
    svc["spec"]["template"]["metadata"]["name"] = "half-v2-baseline"
    svc["spec"]["traffic"] = tr.to_spec(state.written())
    svc["metadata"].setdefault("annotations", {})[STATE_ANNOTATION] = state.to_annotation()
    svc.pop("status", None)
    assert api.put(svc).status_code == 200
    assert routing(api.wait_routes("half")) == [("half-v1", 100, ""), ("half-v2-baseline", 0, "baseline")]
    args = {"api_endpoint": emulator.url, "project_id": project, "service": "half", "mode": "rollback"}
    result = harness.run(args, tmp_path=tmp_path)
    assert result.outputs["result"] == "rolled_back", result.log
    after = api.wait_routes("half")
    assert routing(after) == [("half-v1", 100, "")]
    assert after["spec"]["template"]["metadata"]["name"] == "half-v1"  # the template from before the run
    assert STATE_ANNOTATION not in after["metadata"].get("annotations", {})


# ---- load_rps as a user sees it -----------------------------------------------------------------


def credentials(tmp_path: Path, emulator: Emulator, project: str, private_key_pem: str) -> dict[str, str]:
    """A service-account key whose token endpoint is the emulator's: the action's API calls get an
    access token, and it can mint ID tokens (one mint per audience: the emulator's unsigned JWTs)."""
    key = tmp_path / "gha-creds-load.json"
    info = {
        "type": "service_account",
        "project_id": project,
        "private_key_id": "kid-1",
        "private_key": private_key_pem,
        "client_email": "deployer@proj.iam.gserviceaccount.com",
        "client_id": "1234",
        "token_uri": f"{emulator.url}/token",
    }
    key.write_text(json.dumps(info))
    return {"GOOGLE_APPLICATION_CREDENTIALS": str(key)}


def seen(path: Path) -> list[str]:
    """What a test/private revision saw, request by request: "token" or "none"."""
    return path.read_text().split() if path.exists() else []


LOAD_LINE = re.compile(r"^50%: load_rps 20: sent (\d+) GET requests to (?:\S+, )*\S+: (.*)$", re.M)


@pytest.mark.long
def test_load_rps_sends_id_tokens_to_a_private_service_once_it_answers_403(
    emulator: Emulator, project: str, tmp_path: Path, private_key_pem: str
) -> None:
    """As the smoke check does (smoke_auth: auto): no token until a 401/403, then one every time."""
    stable, candidate = tmp_path / "stable.txt", tmp_path / "candidate.txt"
    result, traffic, _ = deploy(
        emulator,
        project,
        tmp_path,
        "private",
        ("test/private", {"SEEN": str(stable)}),  # the baseline revision is a copy: it writes here
        busy=False,
        env=credentials(tmp_path, emulator, project, private_key_pem),
        image="test/private",
        env_vars=f"SEEN={candidate}",
        baseline="revision",
        max_error_rate_increase="1",
        load_rps="20",
    )
    assert result.outputs["result"] == "promoted", result.log
    baseline = seen(stable)  # only load_rps reaches the baseline
    # The first request went without a token (and whatever was in flight before its 403 came back).
    assert baseline[0] == "none" and 1 <= baseline.count("none") <= 3, baseline
    assert baseline.count("token") >= 20, baseline
    line = LOAD_LINE.search(result.log)
    assert line is not None, result.log
    answers = dict((kind, int(n)) for n, kind in re.findall(r"(\d+) (2xx|4xx|with an ID token)", line[2]))
    assert answers["2xx"] == answers["with an ID token"] >= 40 and 2 <= answers["4xx"] <= 6, line[0]
    assert traffic == [("private-v2", 100, "canary")]


@pytest.mark.long
def test_load_rps_sends_no_id_token_to_a_public_service_and_nothing_after_the_bake_window(
    emulator: Emulator, project: str, tmp_path: Path, private_key_pem: str
) -> None:
    """Credentials that could mint tokens, a service that never asks for one: none is sent. And the
    load stops when the bake's window ends, before the wait for Cloud Monitoring: a request after it
    would be in no window's metrics."""
    since = time.time()
    stable, candidate = tmp_path / "stable.txt", tmp_path / "candidate.txt"
    result, traffic, _ = deploy(
        emulator,
        project,
        tmp_path,
        "public",
        ("test/private", {"PUBLIC": "1", "SEEN": str(stable)}),
        busy=False,
        env=credentials(tmp_path, emulator, project, private_key_pem),
        image="test/private",
        env_vars=f"PUBLIC=1\nSEEN={candidate}",
        baseline="revision",
        max_error_rate_increase="1",
        load_rps="20",
    )
    assert result.outputs["result"] == "promoted", result.log
    assert set(seen(stable)) == set(seen(candidate)) == {"none"}  # neither the load nor the smoke check
    line = LOAD_LINE.search(result.log)
    assert line is not None and "with an ID token" not in line[0] and " 4xx" not in line[0], result.log
    # The window the step was judged on ends at the last Cloud Monitoring query of the baseline.
    ends = [
        analysis.parse_rfc3339(entry["query"]["interval.endTime"]) or 0.0
        for entry in emulator.requests()
        if entry["path"] == f"/v3/projects/{project}/timeSeries"
        and '"public-v2-baseline"' in entry["query"].get("filter", "")
    ]
    served = [s.time for s in emulator.dataplane.samples(since) if s.revision == "public-v2-baseline"]
    assert ends and len(served) >= 20, result.log
    assert max(served) <= max(ends), f"{sum(t > max(ends) for t in served)} load requests after the window"
    assert traffic == [("public-v2", 100, "canary")]


@pytest.mark.long
def test_an_id_token_load_rps_cannot_mint_is_reported_and_nothing_is_sent_without_it(
    emulator: Emulator, project: str, tmp_path: Path, private_key_pem: str
) -> None:
    """The token endpoint refuses the run's third token (its access token, the candidate's ID token,
    then the baseline's): the load says how many requests it could not send and why, sends none of
    them, and the step is inconclusive for want of baseline data."""
    stable, candidate = tmp_path / "stable.txt", tmp_path / "candidate.txt"
    refused = emulator.faults.add(
        method="POST", path="^/token$", status=400, skip=2, times=None, message="refused by the test"
    )
    try:
        result, traffic, _ = deploy(
            emulator,
            project,
            tmp_path,
            "nomint",
            ("test/private", {"SEEN": str(stable)}),
            busy=False,
            env=credentials(tmp_path, emulator, project, private_key_pem),
            image="test/private",
            env_vars=f"SEEN={candidate}",
            baseline="revision",
            max_error_rate_increase="1",
            load_rps="20",
        )
    finally:
        emulator.faults.remove(refused)
    assert result.outputs["result"] == "rolled_back", result.log
    line = LOAD_LINE.search(result.log)
    assert line is not None, result.log
    unsent = re.search(
        r"(\d+) not sent \(.*could not get an ID token: cannot mint an ID token for http", line[0]
    )
    assert unsent is not None and int(unsent[1]) >= 10, line[0]
    # The baseline saw no token, only what was in flight before its first 403 came back: one, unless
    # the machine stalled (as tests/e2e/test_load.py allows); from then on nothing was sent to it.
    bare = seen(stable)
    assert bare and set(bare) == {"none"} and len(bare) <= 5, bare
    assert "inconclusive at 50%" in result.log and "baseline requests (< 20)" in result.log
    printed = [ln for ln in (result.stdout + result.stderr).splitlines() if not ln.startswith("::add-mask::")]
    assert not any(re.search(r"eyJ[\w-]{20,}\.", ln) for ln in printed), "an ID token was printed"
    assert traffic == [("nomint-v1", 100, ""), ("nomint-v2", 0, "canary")]


@pytest.mark.long
def test_baseline_stable_on_a_quiet_service_gets_its_data_from_load_rps_through_the_service_url(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    """The revisions from before the run have no tag URL: half the load goes to the service URL, and
    they get their share of it, so even a quiet service is judged."""
    since = time.time()
    result, traffic, _ = deploy(
        emulator,
        project,
        tmp_path,
        "quietstable",
        SLOW_STABLE,
        busy=False,
        image="sample/slow",
        env_vars="DELAY_MS=150",
        baseline="stable",
        max_latency_increase="20",
        load_rps="20",
        step_interval="6s",
    )
    assert result.outputs["result"] == "rolled_back", result.log
    assert "check failed at 50%: baseline: latency: p50 " in result.log  # a verdict, not "inconclusive"
    stable = [s for s in emulator.dataplane.samples(since) if s.revision == "quietstable-v1"]
    assert len(stable) >= 20, result.log
    assert traffic == [("quietstable-v1", 100, ""), ("quietstable-v2", 0, "canary")]
