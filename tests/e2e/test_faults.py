"""Every API call of a full rollout fails in turn, in every way the API fails.

A clean rollout over a pinned 70/30 split with foreign tags is recorded first (its API calls, in
order, and the traffic of every write). Then, for each call index and each fault kind, the same
rollout runs (``entrypoint.py``, as the runner runs it) with that one call failing, and the test
asserts what the issue "never leave traffic in an unplanned state" asks:

- the run either completes (result ``promoted``, candidate at 100 %, exit 0) or leaves the traffic
  exactly as it was before the run with every foreign tag intact (exit non-zero);
- every write the run made put the traffic in a planned state (before, a configured step, promoted);
- the injected fault really fired on that call.

Transient faults (one 429/500/503/reset/409) must be absorbed: the rollout completes. Faults that
outlast the retries must end in an exact rollback. Faults on the way back are covered separately,
including a rollback that fails for good and is finished by the post step.

Cases of one fault kind run concurrently (each in its own project on the test's own emulator) so
that the whole matrix stays fast.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from cloudrun_emulator import Emulator
from deployer.state import STATE_ANNOTATION
from devtools import harness
from tests import cloudrun
from tests.cloudrun import Api, api_path, routing
from tests.helpers import split_two_revisions, target

SERVICE = "shop"
CANDIDATE = f"{SERVICE}-v3"
ROLLOUT = {
    "region": "us-central1",
    "service": SERVICE,
    "image": "sample/hello:v3",
    "suffix": "v3",
    "steps": "50,100",
    "step_interval": "0s",
    "wait_timeout": "20s",
    "smoke_timeout": "3s",
}
WORKERS = 5  # rollouts of one test at once (under pytest-xdist, the tests spread over the workers)
Routing = list[tuple[str, int, str]]
BEFORE: Routing = [(f"{SERVICE}-v1", 0, "old"), (f"{SERVICE}-v1", 70, "blue"), (f"{SERVICE}-v2", 30, "green")]
PROMOTED: Routing = [
    (f"{SERVICE}-v1", 0, "blue"),
    (f"{SERVICE}-v1", 0, "old"),
    (f"{SERVICE}-v2", 0, "green"),
    (CANDIDATE, 100, "canary"),
]
_projects = iter(range(1, 1_000_000))


# --------------------------------------------------------------------------------------------------
# The calls of a clean rollout


@dataclass(frozen=True)
class Call:
    """One API call of the reference rollout: the ``nth`` (from 0) call of its method and kind."""

    index: int
    method: str
    kind: str  # "service" | "revision" | "revisions" | "iam"
    nth: int

    @property
    def label(self) -> str:
        return f"#{self.index} {self.method} {self.kind}[{self.nth}]"


def call_kind(path: str) -> str:
    if ":" in path.rsplit("/", 1)[-1]:
        return "iam"
    parts = path.rstrip("/").split("/")
    return parts[-1] if parts[-1] in ("services", "revisions") else parts[-2].rstrip("s")


def path_regex(project: str, kind: str) -> str:
    """The emulator path of a call kind, for a fault rule that touches only this project."""
    names = {"service": f"services/{SERVICE}", "revision": f"revisions/{CANDIDATE}", "revisions": "revisions"}
    return api_path(project, f"{names[kind]}$")


def api_calls(emu: Emulator, project: str) -> list[dict[str, Any]]:
    return [r for r in emu.requests() if re.search(api_path(project), r["path"])]


def as_calls(entries: list[dict[str, Any]]) -> list[Call]:
    seen: dict[tuple[str, str], int] = {}
    calls = []
    for i, entry in enumerate(entries):
        key = (entry["method"], call_kind(entry["path"]))
        calls.append(Call(i, key[0], key[1], seen.get(key, 0)))
        seen[key] = seen.get(key, 0) + 1
    return calls


def written(entries: list[dict[str, Any]]) -> list[Routing]:
    """The spec traffic of every successful write to the service, in order."""
    return [
        routing(e["body"]["spec"]["traffic"])
        for e in entries
        if e["method"] in ("PUT", "POST") and e["status"] == 200 and not e.get("query", {}).get("dryRun")
    ]


@dataclass
class Reference:
    calls: list[Call]
    planned: list[Routing]  # every traffic state a write may leave: before, steps, promoted


def new_project() -> str:
    return f"proj-faults-{next(_projects)}-{int(time.time() * 1000) % 100000}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reference]:
    """The API calls and written traffic of a clean rollout (ready_delay 0: polls are deterministic)."""
    with Emulator(port=0, ready_delay=0.0, images=cloudrun.TEST_IMAGES) as emu:
        project = new_project()
        split_two_revisions(Api(emu.url, project), SERVICE)
        start = len(api_calls(emu, project))
        result = harness.run(inputs(emu, project), tmp_path=tmp_path_factory.mktemp("reference"), post=False)
        assert result.returncode == 0, result.log
        assert result.outputs["result"] == "promoted", result.log
        entries = api_calls(emu, project)[start:]
        calls = as_calls(entries)
        planned = written(entries)
        assert [c.method for c in calls].count("PUT") == 4, calls  # deploy, 50 %, 100 %, promote
        assert planned[0] == sorted([*BEFORE, (CANDIDATE, 0, "canary")])
        assert planned[-1] == PROMOTED
        yield Reference(calls, [BEFORE, *planned])


def inputs(emu: Emulator, project: str, **extra: str) -> dict[str, str]:
    return target(emu, project, **{**ROLLOUT, **extra})


# --------------------------------------------------------------------------------------------------
# One rollout with faults, and what must hold afterwards


@dataclass
class Case:
    name: str
    faults: list[dict[str, Any]]  # FaultRule keywords; "kind" (a call kind) replaces "path"
    expect: str  # "promoted", "restored" (rolled back or failed before any write), or "either"
    extra: dict[str, str] = field(default_factory=dict)
    post: bool = False  # run the post step after the main step


@dataclass
class Outcome:
    case: Case
    problems: list[str]
    log: str = ""
    absent: bool = False  # the faulted call never came (how often a run polls varies with load)


def read_service(api: Api) -> dict[str, Any]:
    """GET the service, through any fault the run left unused (it may still match this path)."""
    for _ in range(20):
        try:
            resp = requests.get(f"{api.ns}/services/{SERVICE}", timeout=10)
        except requests.ConnectionError:
            continue
        if resp.status_code == 200:
            return resp.json()
    raise AssertionError("service unreadable")


def settled(api: Api) -> dict[str, Any]:
    """The service once its latest write is observed and the routes are ready."""
    end = time.monotonic() + 10
    while True:
        svc = read_service(api)
        status = svc.get("status") or {}
        conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
        fresh = status.get("observedGeneration") == svc["metadata"]["generation"]
        if fresh and (conditions.get("RoutesReady") == "True" or time.monotonic() > end):
            return svc
        time.sleep(0.05)


def run_case(emu: Emulator, case: Case, ref: Reference, tmp_path: Path) -> Outcome:
    """One case; run again once when the run never made the call its fault was set on.

    How many times the action polls a service before it is ready depends on how busy the machine
    is, so the n-th GET of the reference run may not come in another run. Such a case is run a second
    time; if the call does not come then either, the case is "absent" (not a problem, but counted:
    see run_all). A call that came without its fault firing is a problem.
    """
    outcome = _run_case_once(emu, case, ref, tmp_path)
    if outcome.absent:
        outcome = _run_case_once(emu, case, ref, tmp_path)
    return outcome


def _run_case_once(emu: Emulator, case: Case, ref: Reference, tmp_path: Path) -> Outcome:
    project = new_project()
    api = Api(emu.url, project)
    split_two_revisions(api, SERVICE)
    assert routing(api.service(SERVICE)) == BEFORE
    start = len(api_calls(emu, project))
    rules = []
    for fault in case.faults:
        spec = dict(fault)
        spec["path"] = path_regex(project, spec.pop("kind"))
        rules.append(emu.faults.add(**spec))
    args = inputs(emu, project, **case.extra)
    # The main step alone first (what it leaves for the post step is checked), then the post step,
    # as the runner always runs it: the traffic judged below is the traffic after the whole job.
    result = harness.run(args, tmp_path=tmp_path / project, timeout=60, post=False)
    problems: list[str] = []
    log = result.log
    if case.post:  # the main step failed to roll back: it says so, and leaves the state for the post
        if result.outputs.get("result") != "failed" or "ROLLBACK FAILED" not in result.stdout:
            problems.append("the main step did not report its failed rollback")
        if STATE_ANNOTATION not in (read_service(api)["metadata"].get("annotations") or {}):
            problems.append("no rollout state left for the post step")
    made = Counter((c.method, c.kind) for c in as_calls(api_calls(emu, project)[start:]))
    unfired = [
        (fault, rule)
        for fault, rule in zip(case.faults, rules, strict=True)
        if any(rule is active for active in emu.faults.rules())
    ]
    for _, rule in unfired:  # the faults are the main step's; the post step meets a healthy API
        emu.faults.remove(rule)
    post = harness.run_post(result, args, tmp_path=tmp_path / project, timeout=30)
    log += "\n--- post\n" + post.log
    if post.returncode != 0:
        problems.append(f"post step exit {post.returncode}")
    came = [rule for fault, rule in unfired if made[(fault["method"], fault["kind"])] > fault.get("skip", 0)]
    absent = len(came) < len(unfired)
    if came:
        problems.append(f"fault never fired although its call came: {came}")
    outcome = result.outputs.get("result")
    svc = settled(api)
    now = routing(svc["spec"]["traffic"])
    served = routing(svc)
    others = [t for t in now if t[0] != CANDIDATE]
    ours = [t for t in now if t[0] == CANDIDATE]
    if outcome == "promoted":
        if result.returncode != 0:
            problems.append(f"promoted but exit {result.returncode}")
        if now != PROMOTED or served != PROMOTED:
            problems.append(f"promoted but traffic is {now} (serving {served})")
    else:
        if result.returncode == 0:
            problems.append(f"result {outcome!r} but exit 0")
        if others != BEFORE or any(percent for _, percent, _ in ours):
            problems.append(f"not restored: traffic is {now}")
        if [t for t in served if t[0] != CANDIDATE] != BEFORE:
            problems.append(f"not restored: serving {served}")
    # A fault whose call never came cannot decide how the run ends (the invariants above still hold).
    if not absent and case.expect == "promoted" and outcome != "promoted":
        problems.append(f"expected promoted, got {outcome!r}")
    if not absent and case.expect == "restored" and outcome not in ("rolled_back", "failed"):
        problems.append(f"expected a rollback, got {outcome!r}")
    if STATE_ANNOTATION in (svc["metadata"].get("annotations") or {}):
        problems.append("the rollout state annotation was left on the service")
    entries = api_calls(emu, project)[start:]
    for block in written(entries):
        if block not in ref.planned and sorted(t for t in block if t[0] != CANDIDATE) != BEFORE:
            problems.append(f"a write left traffic in an unplanned state: {block}")
    requests.delete(f"{api.ns}/services/{SERVICE}", timeout=10)  # stop its revision processes
    return Outcome(case, problems, log, absent=absent)


def run_all(emu: Emulator, cases: list[Case], ref: Reference, tmp_path: Path, workers: int = WORKERS) -> None:
    """Run the cases concurrently (each in its own project) and report every broken one."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(lambda c: run_case(emu, c, ref, tmp_path), cases))
    broken = [o for o in outcomes if o.problems]
    absent = [o.case.name for o in outcomes if o.absent]
    assert len(absent) <= len(cases) // 4, f"too many cases never reached their faulted call: {absent}"
    report = "\n\n".join(f"{o.case.name}: {'; '.join(o.problems)}\n{o.log[-4000:]}" for o in broken)
    assert not broken, f"{len(broken)} of {len(cases)} cases broke:\n{report}"


def on_call(call: Call, **fault: Any) -> dict[str, Any]:
    """A fault rule that hits exactly this call of the reference sequence."""
    return {"method": call.method, "kind": call.kind, "skip": call.nth, **fault}


# --------------------------------------------------------------------------------------------------
# The matrix

TRANSIENT: dict[str, dict[str, Any]] = {
    "429+Retry-After:1": {"status": 429, "retry_after": 1},
    "503": {"status": 503},
    "500/502/504": {},  # the client treats them like 503: each call gets one of them, in turn
    "reset": {"action": "reset"},
    "409": {"status": 409},  # PUTs only
}


@pytest.fixture
def emu(own_emulator: Emulator) -> Emulator:
    own_emulator.set_ready_delay(0.0)  # polls like the reference's
    return own_emulator


@pytest.mark.parametrize("kind", list(TRANSIENT))
def test_one_transient_fault_on_any_call_is_absorbed(
    kind: str, emu: Emulator, reference: Reference, tmp_path: Path
) -> None:
    """One 429/5xx/reset (any call) or 409 (any PUT) is retried or re-applied: the rollout completes."""
    calls = [c for c in reference.calls if kind != "409" or c.method == "PUT"]
    faults = [TRANSIENT[kind] or {"status": (500, 502, 504)[c.index % 3]} for c in calls]
    cases = [
        Case(f"{fault.get('status', kind)} on {c.label}", [on_call(c, **fault)], "promoted")
        for c, fault in zip(calls, faults, strict=True)
    ]
    run_all(emu, cases, reference, tmp_path)


def test_faults_that_outlast_the_retries_roll_back_exactly(
    emu: Emulator, reference: Reference, tmp_path: Path
) -> None:
    """Six 429s (the policy's attempts) on any call, or four 409s on any PUT: an exact rollback
    (or, on the very first read, a failure before anything was written)."""
    cases = [
        Case(f"429x6 on {c.label}", [on_call(c, status=429, retry_after=0, times=6)], "restored")
        for c in reference.calls
    ]
    cases += [
        Case(f"409x4 on {c.label}", [on_call(c, status=409, times=4)], "restored")
        for c in reference.calls
        if c.method == "PUT"
    ]
    run_all(emu, cases, reference, tmp_path)


SMOKE_FAILS = {"smoke_body": "never-there", "smoke_timeout": "1s"}


def test_faults_on_the_way_back_are_absorbed(emu: Emulator, reference: Reference, tmp_path: Path) -> None:
    """The smoke check fails, so the rollback PUT (the second PUT) runs, and it fails once: a 503, a
    reset, a 409 (re-read and re-applied) or a hang longer than the rollback's 4 s read timeout."""
    rollback_put: dict[str, Any] = {"method": "PUT", "kind": "service", "skip": 1}
    faults: dict[str, dict[str, Any]] = {
        "503": {"status": 503},
        "429": {"status": 429, "retry_after": 1},
        "reset": {"action": "reset"},
        "409": {"status": 409},
        "409x3": {"status": 409, "times": 3},
        "read timeout": {"action": "hang", "delay": 5.0},
    }
    cases = [
        Case(f"{name} on the rollback PUT", [{**rollback_put, **fault}], "restored", SMOKE_FAILS)
        for name, fault in faults.items()
    ]
    cases.append(
        Case(
            "503 on the rollback's re-read",
            [{"method": "GET", "kind": "service", "skip": 3, "status": 503}],
            "restored",
            SMOKE_FAILS,
        )
    )
    run_all(emu, cases, reference, tmp_path, workers=len(cases))  # mostly waiting: all at once


def test_a_rollback_that_fails_for_good_is_finished_by_the_post_step(
    emu: Emulator, reference: Reference, tmp_path: Path
) -> None:
    """The rollback PUT keeps failing (409 more often than the conflict retries, or 429 past the fast
    policy's attempts): the main step fails with the state still recorded on the service, and the
    post step restores the traffic from it."""
    rollback_put = {"method": "PUT", "kind": "service", "skip": 1}
    cases = [
        Case("409x4 on the rollback", [{**rollback_put, "status": 409, "times": 4}], "restored", SMOKE_FAILS),
        Case(
            "429x3 on the rollback",
            [{**rollback_put, "status": 429, "retry_after": 0, "times": 3}],
            "restored",
            SMOKE_FAILS,
        ),
    ]
    for case in cases:
        case.post = True
    run_all(emu, cases, reference, tmp_path)


def test_reference_sequence_is_what_the_matrix_covers(reference: Reference) -> None:
    """The matrix above walks these calls; a change to the rollout's calls shows up here first."""
    kinds = [(c.method, c.kind) for c in reference.calls]
    assert kinds[0] == ("GET", "service")  # the first read
    assert kinds[1] == ("PUT", "service")  # the tagged deploy with no traffic
    assert ("GET", "revision") in kinds  # readiness of the candidate
    assert kinds[-1] == ("PUT", "service")  # the promotion


def test_skip_counts_only_matching_requests(emu: Emulator, project: str) -> None:
    """The emulator's ``skip``: the first N matching requests pass, the next gets the fault."""
    api = Api(emu.url, project)
    rule = emu.faults.add(method="GET", path=api_path(project, "services/nope$"), status=503, skip=2)
    url = f"{api.ns}/services/nope"
    statuses = [requests.get(url, timeout=5).status_code for _ in range(4)]
    assert statuses == [404, 404, 503, 404]
    assert rule not in emu.faults.rules()
    with pytest.raises(ValueError, match="skip"):
        emu.faults.add(skip=-1)
