"""A whole job against the emulator, played in-process: runs of the action (main step, then post step),
an operator acting between their phases, a second run racing the first, and a judge that reads the
data plane and IAM once everything has ended.

A run is ``rollout.Rollout`` with a real ``CloudRun`` client over loopback, with the hooks a
``deployer.main`` process would give it (a real ``JobRunner`` for ``pre_job``/``post_job``). Its
post step is ``deployer.main.post`` with the environment the runner gives it (``STATE_token``,
``STATE_finished``, ``STATE_job_execution`` as ``main`` saves them). Events fire at named points of
the first run:

- ``write:<phase>``: before the first service write of a phase (``deploy``, ``10%``, ``promote``...);
- ``wait``, ``smoke``, ``bake<p>`` (the first check round at ``p`` %);
- ``pre job`` / ``post job`` (before the job is written), ``pre job run`` / ``post job run`` (the
  ``:run`` call answered, before the run could note the execution), ``pre job started`` /
  ``post job started`` (the execution noted, running).

A *kill* is SIGKILL: the process's connection goes dead (every later request raises ``Killed``,
a ``BaseException``), so it writes nothing more, and its post step gets no ``STATE_finished``. A
*cancel* is the runner's SIGINT: a ``KeyboardInterrupt`` from the hook, and ``cancelled()`` from then on.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import secrets
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from cloudrun_emulator import Emulator
from cloudrun_emulator.projects import scope
from deployer import inputs, main, rollout
from deployer.client import CloudRun, RetryPolicy
from deployer.jobs.adopt import rollout_awaiter
from deployer.jobs.runner import JobRunner, rollout_hook, rollout_stopper
from deployer.result import Outcome, RolloutResult, StepInfo, Verdict
from deployer.smoke import SmokeResult
from deployer.state import STABLE_ANNOTATION, RolloutState
from devtools import harness
from tests.cloudrun import Api, loopback_session, poll_pauses
from tests.helpers import Quiet

SERVICE = "seq"
TAG = "canary"  # the action's tag (the default)
FOREIGN_TAGS = ("blue", "green", "old")
PRE_JOB, POST_JOB = "migrate", "e2e"
POLICY = RetryPolicy(attempts=3, base_delay=0.05, max_delay=0.2, total=5.0)
FAST = RetryPolicy(
    attempts=3, base_delay=0.05, max_delay=0.2, total=3.0, connect_timeout=2.0, read_timeout=4.0
)
# What World.post passes, as main saves it.
STATE_SAVED = frozenset({"token", "finished", "job_execution", "job_launch"})
# The rollout's sleeps are real but short: what matters is their order, not length. Each is cut to
# SLEEP_CAP s, or to SLEEP_SCALE of itself when that is longer (at most SLEEP_LONGEST s): the
# backed-off reads of a long wait (a 30 s migration) stay backed off instead of one every SLEEP_CAP s.
SLEEP_CAP, SLEEP_SCALE, SLEEP_LONGEST = 0.03, 0.12, 0.15
OPERATOR_ACTIONS = (
    "traffic",  # gcloud run services update-traffic --to-revisions R=100
    "latest",  # ... --to-latest
    "split",  # ... --to-revisions R1=50,R2=50
    "tag",  # ... --set-tags op=R
    "untag",  # ... --remove-tags <a foreign tag>
    "labels",  # gcloud run services update --update-labels (writes the template too: a new revision)
    "env",  # ... --update-env-vars
    "image",  # ... --image
    "delete",  # gcloud run revisions delete R (a cleanup job)
)
RUN_ACTIONS = ("other", "other-takeover", "rollback", "promote")  # another run, whole, at that point
# "lost": the runner itself died (machine lost, job timed out hard): killed, and no post step either.
ACTIONS = ("cancel", "kill", "lost", "fail", "race", *(f"op:{a}" for a in OPERATOR_ACTIONS), *RUN_ACTIONS)
FOLLOW_UPS = ("none", "rerun", "takeover", "rollback", "promote")


class Killed(BaseException):
    """The process was killed (SIGKILL): nothing after this runs, no undo, no outputs."""


class Problem(AssertionError):
    """The promise broken; the message says how, on the data plane or IAM."""


# --------------------------------------------------------------------------------------------------
# What is drawn


@dataclass(frozen=True)
class Event:
    at: str
    action: str
    pick: int = 0  # which revision, tag... an operator action chooses (modulo what exists)


@dataclass(frozen=True)
class RunSpec:
    steps: str = "10,50,100"
    pre_job: bool = False
    post_job: bool = False
    public: bool | None = None  # allow_unauthenticated
    slow_jobs: bool = False  # executions that outlive the judge unless cancelled (see play)


@dataclass(frozen=True)
class Scenario:
    service: dict[str, Any]  # see build_service
    run: RunSpec
    events: tuple[Event, ...] = ()
    follow_up: str = "none"

    def describe(self) -> str:
        return json.dumps(
            {
                "service": self.service,
                "run": self.run.__dict__,
                "events": [e.__dict__ for e in self.events],
                "follow_up": self.follow_up,
            }
        )


def points(run: RunSpec) -> list[str]:
    """The points of a run where events can fire (given its steps and jobs)."""
    steps = [int(p) for p in run.steps.split(",")]
    out = ["write:deploy", "wait", "smoke"]
    if run.pre_job:
        out += ["pre job", "pre job run", "pre job started"]
    for p in steps:
        out.append(f"write:{p}%")
        if p < 100:
            out.append(f"bake{p}")
    if steps[-1] == 100:
        if run.post_job:
            out += ["post job", "post job run", "post job started"]
        out.append("write:promote")
    return out


# --------------------------------------------------------------------------------------------------
# What is observed


@dataclass(frozen=True)
class Snapshot:
    """Where requests go: revision -> percent over the service URL, tag -> revision over tag URLs."""

    split: tuple[tuple[str, int], ...]
    tags: tuple[tuple[str, str], ...]

    @property
    def shares(self) -> dict[str, int]:
        return dict(self.split)

    @property
    def tag_map(self) -> dict[str, str]:
        return dict(self.tags)

    def __str__(self) -> str:
        split = ", ".join(f"{r} {p}%" for r, p in self.split) or "nothing"
        tags = ", ".join(f"{t}->{r}" for t, r in self.tags)
        return f"[{split}]" + (f" tags [{tags}]" if tags else "")


class Wire(requests.Session):
    """One process's connection to the API: hooks around each request; dead once the process is killed."""

    def __init__(self) -> None:
        super().__init__()
        self.dead = False
        self.before: Callable[[str, str, Any], None] = lambda method, url, body: None
        self.after: Callable[[str, str, requests.Response], None] = lambda method, url, resp: None

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if self.dead:
            raise Killed()
        self.before(str(method), str(url), kwargs.get("json"))
        if self.dead:
            raise Killed()
        resp = super().request(method, url, *args, **kwargs)
        self.after(str(method), str(url), resp)
        return resp


@dataclass
class Run:
    """One run of the action: its main step, then its post step."""

    label: str
    inputs: dict[str, str]
    context: dict[str, str]
    token: str = field(default_factory=lambda: secrets.token_hex(8))
    wire: Wire = field(default_factory=Wire)
    reporter: Quiet = field(default_factory=Quiet)
    result: RolloutResult | None = None
    killed: bool = False
    runner_lost: bool = False  # no post step either
    cancelled: bool = False
    saved_execution: str = ""  # what main saved for the post step (on_started)
    saved_launch: str = ""  # and before each :run (on_launch)
    executions: list[str] = field(default_factory=list)  # every execution its :run calls started
    late: list[str] = field(default_factory=list)  # executions started after its release was ended by others
    lost: str = ""  # why its release ended while it ran (someone else's rollback, takeover, traffic)
    # The traffic before the operator's change that ended it: a second change at the same point that
    # puts exactly that back leaves nothing the run could see (Cloud Run keeps no history).
    lost_block: list[tuple[str, int, str, bool]] | None = None
    events: dict[str, list[Event]] = field(default_factory=dict)
    post_code: int | None = None
    fired: list[str] = field(default_factory=list)
    recorded_at_event: str | None = None  # whose rollout was on the service when the last event fired
    record_before_write: RolloutState | None = None
    race: Callable[[], None] | None = None
    rollout: rollout.Rollout | None = None

    @property
    def outcome(self) -> Outcome | None:
        return None if self.result is None or self.killed else self.result.outcome

    @property
    def candidate(self) -> str:
        result = self.result or (self.rollout.result if self.rollout else None)
        return (result.revision if result else None) or ""

    @property
    def env(self) -> dict[str, str]:
        return {**harness.input_env(self.inputs), **self.context}


# --------------------------------------------------------------------------------------------------
# The world


class World:
    """One project on the emulator, one service, the runs played against it, and what was seen."""

    def __init__(self, emu: Emulator, project: str) -> None:
        self.emu, self.project = emu, project
        self.api = Api(emu.url, project)
        self.http = loopback_session()  # the operator's and the judge's own connection
        self.run_ns = f"{emu.url}/apis/run.googleapis.com/v1/namespaces/{project}"
        self.before: Snapshot | None = None
        self.public_before = False
        self.bases: list[Snapshot] = []  # the traffic before the run, then each one an operator chose
        self.operator_bases: list[Snapshot] = []
        self.runs: list[Run] = []
        self.ended: list[Run] = []  # in the order their main steps ended
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.release_images: dict[str, list[Run]] = {}
        self.rollback_targets: list[Snapshot] = []
        self._runs = 0

    # ---- the service before the run ----------------------------------------------------------

    def build(self, spec: dict[str, Any]) -> None:
        """The pre-run service: revisions r0..rN-1 (the last maybe server-named), a drawn traffic block
        (pinned shares, ``latestRevision``, foreign tags), maybe a newer revision that failed, IAM."""
        n = spec["revisions"]
        self.api.create_service(SERVICE, "sample/hello:r0", f"{SERVICE}-r0")
        for i in range(1, n):
            svc = self._service()
            template = svc["spec"]["template"]
            template["spec"]["containers"][0]["image"] = f"sample/hello:r{i}"
            if i == n - 1 and spec["server_named"]:
                template.setdefault("metadata", {}).pop("name", None)
            else:
                template.setdefault("metadata", {})["name"] = f"{SERVICE}-r{i}"
            svc["spec"]["traffic"] = [{"latestRevision": True, "percent": 100}]
            self._put(svc)
            self.api.wait_ready(SERVICE)
        latest = self.api.service(SERVICE)["status"]["latestCreatedRevisionName"]
        svc = self._service()
        traffic = copy.deepcopy(spec["traffic"])
        for entry in traffic:
            if entry.get("revisionName") == f"{SERVICE}-r{n - 1}":
                entry["revisionName"] = latest
        svc["spec"]["traffic"] = traffic
        self._put(svc)
        self.api.wait_routes(SERVICE)
        if spec["failed_latest"]:  # someone deployed an image that crashes: latest created, never ready
            svc = self._service()
            svc["spec"]["template"]["spec"]["containers"][0]["image"] = "sample/crash"
            svc["spec"]["template"].setdefault("metadata", {}).pop("name", None)
            self._put(svc)
            self.settle()
        if spec["public"]:
            policy = self.api.iam(SERVICE, "getIamPolicy").json()
            policy["bindings"] = [{"role": "roles/run.invoker", "members": ["allUsers"]}]
            assert self.api.iam(SERVICE, "setIamPolicy", {"policy": policy}).status_code == 200
        self.before = self.snapshot()
        self.bases.append(self.before)
        self.public_before = self.public()

    # ---- reading --------------------------------------------------------------------------------

    def _service(self) -> dict[str, Any]:
        svc = self.api.service(SERVICE)
        svc.pop("status", None)
        return svc

    def _put(self, svc: dict[str, Any]) -> requests.Response:
        resp = self.http.put(f"{self.api.ns}/services/{SERVICE}", json=svc, timeout=10)
        assert resp.status_code == 200, resp.text
        return resp

    def settle(self, timeout: float = 20.0) -> dict[str, Any]:
        """The service once its current generation is observed and its routes decided."""
        end = time.monotonic() + timeout
        pauses = poll_pauses()
        while True:
            svc = self.api.service(SERVICE)
            status = svc.get("status") or {}
            routes: dict[str, Any] = next(
                (c for c in status.get("conditions", []) if c["type"] == "RoutesReady"), {}
            )
            fresh = status.get("observedGeneration") == svc["metadata"]["generation"]
            if fresh and routes.get("status") in ("True", "False"):
                return svc
            if time.monotonic() > end:
                raise AssertionError(f"{SERVICE} never settled: {json.dumps(status)}")
            time.sleep(next(pauses))

    def snapshot(self) -> Snapshot:
        """The data plane now (after the service settled)."""
        self.settle()
        found = self.emu.dataplane.routing(f"{scope(self.project, 'us-central1')}/{SERVICE}")
        assert found is not None
        split, tags = found
        return Snapshot(tuple(sorted(split.items())), tuple(sorted(tags.items())))

    def public(self) -> bool:
        policy = self.api.iam(SERVICE, "getIamPolicy").json()
        return any(
            "allUsers" in b.get("members", [])
            for b in policy.get("bindings", [])
            if b["role"] == "roles/run.invoker"
        )

    def record(self) -> RolloutState | None:
        return RolloutState.from_service(self.api.service(SERVICE))

    def revisions(self) -> list[dict[str, Any]]:
        resp = self.http.get(
            f"{self.api.ns}/revisions",
            params={"labelSelector": f"serving.knative.dev/service={SERVICE}"},
            timeout=10,
        )
        resp.raise_for_status()
        return sorted(resp.json().get("items", []), key=lambda r: r["metadata"]["name"])

    def executions(self) -> list[dict[str, Any]]:
        out = []
        for job in (PRE_JOB, POST_JOB):
            resp = self.http.get(
                f"{self.run_ns}/executions",
                params={"labelSelector": f"run.googleapis.com/job={job}"},
                timeout=10,
            )
            if resp.status_code == 200:
                out += resp.json().get("items", [])
        return out

    # ---- runs ----------------------------------------------------------------------------------

    def new_run(
        self,
        label: str,
        *,
        spec: RunSpec | None = None,
        mode: str = "deploy",
        takeover: bool = False,
        run_id: str | None = None,
        attempt: int = 1,
        sha: str | None = None,
    ) -> Run:
        self._runs += 1
        spec = spec or RunSpec()
        sha = sha or f"{self._runs:x}".rjust(7, "a")
        values: dict[str, str] = {
            "service": SERVICE,
            "api_endpoint": self.emu.url,
            "project_id": self.project,
            "mode": mode,
            "wait_timeout": "20s",
            "step_interval": "0.05s",
            "smoke_timeout": "2s",
        }
        if mode == "deploy":
            values |= {"image": f"sample/hello:{label}", "steps": spec.steps, "env_vars": f"RELEASE={label}"}
            if takeover:
                values["takeover"] = "true"
            if spec.public is not None:
                values["allow_unauthenticated"] = "true" if spec.public else "false"
            if spec.pre_job:
                values["pre_job"] = PRE_JOB
            if spec.post_job:
                values |= {"post_job": POST_JOB, "post_job_failure": "rollback"}
            if spec.pre_job or spec.post_job:
                sleep_ms = 30000 if spec.slow_jobs else 150
                values |= {
                    "job_image": "sample/job",
                    "job_env_vars": f"SLEEP_MS={sleep_ms}",
                    "job_wait_timeout": "60s",
                }
        context = {
            "GITHUB_RUN_ID": run_id or str(100 + self._runs),
            "GITHUB_RUN_ATTEMPT": str(attempt),
            "GITHUB_SHA": sha * 6,
            "GITHUB_JOB": "deploy",
            "GITHUB_REPOSITORY": "octo/app",
        }
        run = Run(label, values, context)
        if mode == "deploy":
            self.release_images.setdefault(values["image"], []).append(run)
        self.runs.append(run)
        return run

    def rerun(self, first: Run) -> Run:
        """The same job re-run (GitHub's "Re-run failed jobs"): same inputs and run, next attempt."""
        self._runs += 1
        context = {**first.context, "GITHUB_RUN_ATTEMPT": str(int(first.context["GITHUB_RUN_ATTEMPT"]) + 1)}
        run = Run(f"{first.label}-rerun", dict(first.inputs), context)
        if "job_env_vars" in run.inputs:
            run.inputs["job_env_vars"] = "SLEEP_MS=150"
        self.release_images.setdefault(run.inputs["image"], []).append(run)
        self.runs.append(run)
        return run

    def play(self, run: Run) -> Run:
        """The main step of ``run`` (its events fire at their points), in this thread."""
        config, ctx = inputs.load(run.env)
        api = CloudRun(
            run.wire, region="us-central1", project=self.project, api_endpoint=self.emu.url, policy=POLICY
        )
        back = api.with_policy(FAST, should_stop=lambda: False)
        reporter = run.reporter
        run.wire.before = lambda method, url, body: self._before_request(run, method, url, body)
        run.wire.after = lambda method, url, resp: self._after_request(run, method, url, resp)

        def started(execution: str) -> None:
            run.saved_execution = execution  # main saves it to $GITHUB_STATE here
            self.fire(run, f"{reporter.phase} started")

        def launched(launch: str) -> None:
            run.saved_launch = launch  # main saves it to $GITHUB_STATE here, before each :run

        def still_ours(when: str) -> str:  # as main: a job stops once its rollout is not ours
            return run.rollout.ownership(when) if run.rollout is not None else ""

        jobs = JobRunner(
            config,
            ctx,
            api,
            reporter,
            cancel_api=back,
            sleep=_short,
            on_started=started,
            on_launch=launched,
            token=run.token,
            guard=still_ours,
        )
        job_hook = rollout_hook(jobs, config)

        def job(when: str, result: RolloutResult) -> str:
            if self.fire(run, f"{when} job"):
                raise rollout.RolloutFailed(f"{when} job failed (injected)")
            return job_hook(when, result)

        def smoke(url: str) -> SmokeResult:
            if reporter.phase == "smoke" and self.fire(run, "smoke"):
                return SmokeResult(False, 500, 1, "HTTP 500 (injected)", 0.0)
            try:
                resp = self.http.get(url, timeout=5)
            except requests.RequestException as exc:
                return SmokeResult(False, None, 1, str(exc), 0.0)
            return SmokeResult(resp.status_code == 200, resp.status_code, 1, f"HTTP {resp.status_code}", 0.0)

        def checks(info: StepInfo) -> list[Verdict]:
            if info.round == 1:
                self.check_bake(run, info.percent)
                if self.fire(run, f"bake{info.percent}"):
                    return [Verdict("errors", False, "error rate 50 % (injected)")]
            return []

        def sleep(seconds: float) -> None:
            if reporter.phase == "wait":
                self.fire(run, "wait")
            _short(seconds)

        hooks = rollout.Hooks(
            smoke=smoke,
            checks=checks,
            sleep=sleep,
            cancelled=lambda: run.cancelled,
            rollback_api=back,
            token=run.token,
            job=job,
            stop_jobs=rollout_stopper(back, reporter),
            await_jobs=rollout_awaiter(api, reporter, config.jobs.wait_timeout),
        )
        runner = run.rollout = rollout.Rollout(config, ctx, api, self.project, reporter, hooks)
        try:
            run.result = runner.run()
        except Killed:
            run.killed = True
        self.ended.append(run)
        return run

    def post(self, run: Run) -> int | None:
        """The run's post step, with the state its main step saved (none past a kill but the token).

        These are the names ``deployer.main.main`` saves (``STATE_SAVED``; a test holds the two together)."""
        if run.runner_lost:
            return None
        env = {**run.env, "STATE_token": run.token}
        if not run.killed:
            unfinished = run.outcome is Outcome.FAILED and self._ours_on_service(run)
            env["STATE_finished"] = "false" if unfinished else "true"
        if run.saved_execution:
            env["STATE_job_execution"] = run.saved_execution
        if run.saved_launch:
            env["STATE_job_launch"] = run.saved_launch
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            with contextlib.redirect_stdout(_Sink()):
                run.post_code = main.post(env)
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        if run.outcome is Outcome.PAUSED:
            recorded = self.record()
            if recorded is None or recorded.candidate != run.candidate:
                self.problem(
                    f"[finding 1] run {run.label} ended paused at {run.candidate}, and after its post step "
                    + (
                        "no rollout is recorded"
                        if recorded is None
                        else f"the record is of {recorded.candidate}"
                    )
                    + " (mode promote has nothing to promote)"
                )
        return run.post_code

    def _ours_on_service(self, run: Run) -> bool:
        recorded = self.record()
        return recorded is not None and recorded.token == run.token

    # ---- events ----------------------------------------------------------------------------------

    def fire(self, run: Run, point: str) -> bool:
        """Play the events due at ``point``; True if one asked the step to fail there."""
        failing = False
        for event in run.events.pop(point, []):
            run.fired.append(f"{event.action}@{point}")
            recorded = self.record()
            run.recorded_at_event = recorded.token if recorded else None
            if event.action == "cancel":
                run.cancelled = True
                raise KeyboardInterrupt("cancelled")
            if event.action in ("kill", "lost"):
                run.wire.dead = True
                run.runner_lost = event.action == "lost"
                raise Killed()
            if event.action == "fail":
                failing = True
            elif event.action.startswith("op:"):
                self.operator(event.action[3:], event.pick, run)
            elif event.action in RUN_ACTIONS:
                self.other_run(event.action, run)
        return failing

    def _before_request(self, run: Run, method: str, url: str, body: Any) -> None:
        if method in ("PUT", "POST") and _service_write(url):
            point = f"write:{run.reporter.phase}"
            if point in run.events and any(e.action == "race" for e in run.events[point]):
                self._race(run, point)
            if self.fire(run, point):
                raise rollout.RolloutFailed("injected failure before a write")
        if run.inputs.get("mode") == "deploy" and method == "PUT" and _service_write(url):
            run.record_before_write = self.record()

    def _after_request(self, run: Run, method: str, url: str, resp: requests.Response) -> None:
        if method == "POST" and url.endswith(":run") and resp.status_code == 200:
            execution = resp.json()["metadata"]["name"]
            run.executions.append(execution)
            if run.lost:
                run.late.append(execution)
            self.fire(run, f"{run.reporter.phase} run")
        if method == "PUT" and _service_write(url) and resp.status_code == 200:
            self._check_silent_takeover(run)
        race, run.race = run.race, None
        if race is not None:
            race()

    def _check_silent_takeover(self, run: Run) -> None:
        """A deploy without ``takeover`` never writes over another run's unfinished rollout."""
        found, run.record_before_write = run.record_before_write, None
        if found is None or found.token == run.token or run.inputs.get("takeover") == "true":
            return
        same_run = found.run_id == run.context["GITHUB_RUN_ID"]
        if same_run and int(found.run_attempt or 0) < int(run.context["GITHUB_RUN_ATTEMPT"]):
            return  # a re-run undoes its earlier attempt's rollout: that is asked for
        self.problem(
            f"[finding 6] run {run.label} (no takeover) wrote over the unfinished rollout of "
            f"{found.candidate} at {found.step}% of run {found.run_id} attempt {found.run_attempt}"
        )

    def _race(self, run: Run, point: str) -> None:
        """Another run reads the service now, and writes right after this write of ``run``."""
        run.events[point] = [e for e in run.events[point] if e.action != "race"]
        run.fired.append(f"race@{point}")
        recorded = self.record()
        run.recorded_at_event = recorded.token if recorded else None
        other = self.new_run(f"race{self._runs + 1}", spec=RunSpec(steps="50,100"))
        reading_done, go = threading.Event(), threading.Event()
        first = [True]

        def hold(method: str, url: str, body: Any) -> None:
            if first[0] and method in ("PUT", "POST") and _service_write(url):
                first[0] = False
                reading_done.set()
                go.wait(30)
            self._before_request(other, method, url, body)

        def play() -> None:
            try:
                self._play_with(other, hold)
            finally:
                reading_done.set()

        thread = threading.Thread(target=play, daemon=True)
        thread.start()
        reading_done.wait(30)

        def release() -> None:
            go.set()
            thread.join(60)
            now = self.record()
            if now is None or now.token != run.token:  # the rival ended it (it may also have refused)
                self.lose(run, f"run {other.label} raced it")
            self.post(other)
            self.after_other(other)

        run.race = release

    def _play_with(self, run: Run, hold: Callable[[str, str, Any], None]) -> None:
        config, ctx = inputs.load(run.env)
        run.wire.before = hold
        run.wire.after = lambda method, url, resp: self._after_request(run, method, url, resp)
        api = CloudRun(
            run.wire, region="us-central1", project=self.project, api_endpoint=self.emu.url, policy=POLICY
        )
        back = api.with_policy(FAST, should_stop=lambda: False)
        hooks = rollout.Hooks(smoke=self._smoke, sleep=_short, rollback_api=back, token=run.token)
        run.result = rollout.Rollout(config, ctx, api, self.project, run.reporter, hooks).run()
        self.ended.append(run)

    def _smoke(self, url: str) -> SmokeResult:
        resp = self.http.get(url, timeout=5)
        return SmokeResult(resp.status_code == 200, resp.status_code, 1, f"HTTP {resp.status_code}", 0.0)

    def other_run(self, kind: str, during: Run) -> None:
        """Another run of the action, whole (main step and post step), while ``during`` is at a point."""
        if kind in ("other", "other-takeover"):
            other = self.new_run(
                f"other{self._runs + 1}", spec=RunSpec(steps="100"), takeover=kind == "other-takeover"
            )
        else:
            other = self.new_run(f"{kind}{self._runs + 1}", mode=kind)
        recorded = self.record()
        self.play(other)
        self.post(other)
        if self.record() != recorded and kind != "promote":  # a promote ends the rollout, not the release
            self.lose(during, f"run {other.label} (mode {kind})")
        self.after_other(other)

    def after_other(self, other: Run) -> None:
        """What another run left becomes a starting point for later runs when it is settled: its
        promoted release serving alone, nobody's rollout recorded (a run that then deploys on top of
        it does what it should)."""
        if other.outcome is Outcome.PROMOTED and self.record() is None:
            snap = self.snapshot()
            if snap.shares == {other.candidate: 100}:
                self.bases.append(snap)
        if (
            other.outcome is Outcome.ROLLED_BACK
            and other.inputs.get("mode") == "rollback"
            and not any(other.candidate == r.candidate for r in self.runs if r is not other)
        ):
            self.rollback_targets.append(self.snapshot())  # a manual rollback to a pre-run revision

    # ---- the operator -----------------------------------------------------------------------------

    def operator(self, action: str, pick: int, during: Run | None = None) -> None:
        """What an operator does with gcloud, as gcloud writes it (GET, change, PUT the whole object)."""
        if action == "delete":  # a cleanup job deletes a revision nothing references
            current = self.api.service(SERVICE)
            referenced = {e.get("revisionName") for e in current["spec"].get("traffic", [])}
            referenced |= {
                current["status"].get("latestCreatedRevisionName"),
                current["status"].get("latestReadyRevisionName"),
            }
            names = [
                r["metadata"]["name"] for r in self.revisions() if r["metadata"]["name"] not in referenced
            ]
            if names:
                self.http.delete(f"{self.api.ns}/revisions/{names[pick % len(names)]}", timeout=10)
            return
        before = self.snapshot()
        svc = self._service()
        spec, template = svc["spec"], svc["spec"]["template"]
        traffic: list[dict[str, Any]] = spec.get("traffic", [])
        tagged = [{k: v for k, v in e.items() if k != "percent"} for e in traffic if e.get("tag")]
        ready = [
            r["metadata"]["name"]
            for r in self.revisions()
            if any(c["type"] == "Ready" and c["status"] == "True" for c in r["status"].get("conditions", []))
        ]
        if action == "traffic":
            spec["traffic"] = [{"revisionName": ready[pick % len(ready)], "percent": 100}, *tagged]
        elif action == "latest":
            spec["traffic"] = [{"latestRevision": True, "percent": 100}, *tagged]
        elif action == "split":
            one, two = ready[pick % len(ready)], ready[(pick + 1) % len(ready)]
            shares = [{"revisionName": one, "percent": 50}, {"revisionName": two, "percent": 50}]
            if one == two:
                shares = [{"revisionName": one, "percent": 100}]
            spec["traffic"] = [*shares, *tagged]
        elif action == "tag":
            spec["traffic"] = [e for e in traffic if e.get("tag") != "op"]
            spec["traffic"].append({"revisionName": ready[pick % len(ready)], "tag": "op"})
        elif action == "untag":
            tags = sorted(e["tag"] for e in traffic if e.get("tag") in FOREIGN_TAGS)
            if not tags:
                return
            gone = tags[pick % len(tags)]
            spec["traffic"] = [
                {k: v for k, v in e.items() if k != "tag"} if e.get("tag") == gone else e for e in traffic
            ]
            spec["traffic"] = [e for e in spec["traffic"] if e.get("percent") or e.get("tag")]
        else:  # a template change: gcloud copies service labels into the template, forces a new revision
            meta = template.setdefault("metadata", {})
            meta.pop("name", None)
            labels = meta.setdefault("labels", {})
            labels["client.knative.dev/nonce"] = secrets.token_hex(3)
            container = template["spec"]["containers"][0]
            if action == "labels":
                svc["metadata"].setdefault("labels", {})["team"] = f"t{pick}"
                labels["team"] = f"t{pick}"
            elif action == "env":
                env = [e for e in container.get("env", []) if e["name"] != "OPERATOR"]
                container["env"] = [*env, {"name": "OPERATOR", "value": str(pick)}]
            elif action == "image":
                container["image"] = "sample/hello:op"
        resp = self.http.put(f"{self.api.ns}/services/{SERVICE}", json=svc, timeout=10)
        if resp.status_code != 200:
            self.notes.append(f"operator {action} refused: {resp.status_code} {resp.text[:200]}")
            return
        after = self.snapshot()
        # A traffic action that writes the block the service already had (say, everything to the
        # revision that serves everything) changes nothing: no run's rollout is ended by it.
        written = resp.json()["spec"].get("traffic", [])
        traffic_change = action in ("traffic", "latest", "split", "tag", "untag") and _entries(
            written
        ) != _entries(traffic)
        if traffic_change or after != before:
            self.bases.append(after)
            self.operator_bases.append(after)
        if during is not None and traffic_change:
            if during.lost and during.lost_block == _entries(written):
                during.lost, during.lost_block = "", None  # changed back before the run read it again
            elif self.lose(during, f"an operator's {action}"):
                during.lost_block = _entries(traffic)

    def lose(self, run: Run, why: str) -> bool:
        """``run``'s release was ended by someone else (only once its rollout is on the service);
        whether this call is what ended it."""
        if not run.lost and (run.recorded_at_event or "") == run.token:
            run.lost = why
            return True
        return False

    # ---- judging -------------------------------------------------------------------------------------

    def problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)

    def check_bake(self, run: Run, percent: int) -> None:
        """During a bake the data plane shows that step: the candidate at ``percent`` %, the rest going
        where it went before (or where an operator sent it), no other release serving."""
        snap = self.snapshot()
        shares = snap.shares
        candidate = run.candidate
        rest = {r for r, p in shares.items() if p and r != candidate}
        if shares.get(candidate, 0) != percent or not any(rest <= _support(b) for b in self.bases):
            self.problem(
                f"during the bake at {percent}% of run {run.label}, requests go to {snap}; the traffic "
                f"before the run was {self.before}"
            )

    def judge(self, *, settled_base: bool = False) -> None:
        """Everything has ended: requests go where they went before the run, where an operator sent
        them, to a planned step or to a promoted revision; never to a rolled-back release; invoker access
        as before (or as configured, for a release that serves); no job execution left running, none of
        a release started after others ended it."""
        assert self.before is not None
        final = self.snapshot()
        svc = self.api.service(SERVICE)
        recorded = RolloutState.from_service(svc)
        stable = (svc["metadata"].get("annotations") or {}).get(STABLE_ANNOTATION, "")
        # The runs that deployed each candidate (mode promote and rollback name the one they adopt).
        candidates = {r.candidate: r for r in self.runs if r.candidate and r.inputs.get("mode") == "deploy"}
        shares = final.shares
        serving = {r for r, p in shares.items() if p}
        # 1. the service URL
        bases = [*self.bases, *self.rollback_targets]
        matched = next((b for b in bases if b.split == final.split), None)
        allowed_release: Run | None = None
        # Revisions that serve as part of a state that was legitimately there (a base, or the revisions
        # beside a recorded step): a promoted release's revision among them is no rolled-back one.
        legit: set[str] = set(serving) if matched is not None else set()
        if matched is None:
            if recorded is not None and shares.get(recorded.candidate) == recorded.step:
                rest = serving - {recorded.candidate}
                if any(rest <= _support(b) for b in bases):
                    matched, allowed_release = final, candidates.get(recorded.candidate)
                    legit = rest
            if matched is None and stable in candidates and shares == {stable: 100}:
                matched, allowed_release = final, candidates[stable]
        if matched is None:
            self.problem(
                f"the service URL reaches {final}: not the traffic before the run {self.before}, not what an "
                f"operator left {[str(b) for b in self.operator_bases]}, not a planned step (record: "
                f"{recorded.candidate + ' at ' + str(recorded.step) + '%' if recorded else 'none'}), not a "
                f"promoted revision (stable: {stable or 'none'})"
            )
        elif allowed_release is None and recorded is None and stable in candidates:
            allowed_release = candidates[stable] if shares.get(stable) == 100 else None
        # 2. never a rolled-back release (its revision, or one an operator made from its template)
        operator_left = any(b.split == final.split for b in self.operator_bases)
        images = {r["metadata"]["name"]: r["spec"]["containers"][0]["image"] for r in self.revisions()}
        allowed_image = allowed_release.inputs.get("image") if allowed_release else None
        for revision in sorted(serving):
            owners = self.release_images.get(images.get(revision, ""), [])
            if owners and images[revision] != allowed_image and not operator_left and revision not in legit:
                self.problem(
                    f"the service URL sends {shares[revision]}% to {revision}, which runs "
                    f"{images[revision]}: the release of run {owners[0].label}, which ended "
                    f"{self._story(owners[-1])}"
                )
        # 3. tag URLs
        for tag, revision in final.tags:
            if tag == TAG and revision in candidates:
                continue  # the action's own tag on a candidate (kept after a rollback, for debugging)
            if not any(b.tag_map.get(tag) == revision for b in bases) and tag != TAG:
                self.problem(
                    f"tag URL {tag} reaches {revision}; before the run it reached "
                    f"{self.before.tag_map.get(tag)}"
                )
        for tag in self.before.tag_map:
            if tag not in final.tag_map and all(tag in b.tag_map for b in bases) and tag != TAG:
                self.problem(f"tag URL {tag} is gone; before the run it reached {self.before.tag_map[tag]}")
        self._probe(final)
        # 4. what the last run said holds after its post step
        last = self.ended[-1] if self.ended else None
        if last is not None and last.outcome is Outcome.PROMOTED and shares != {last.candidate: 100}:
            self.problem(f"run {last.label} promoted {last.candidate}, but requests go to {final}")
        if recorded is not None and (last is None or last.outcome is not Outcome.PAUSED):
            self.problem(
                f"a rollout record of {recorded.candidate} at {recorded.step}% (run {recorded.run_id}) is "
                "left on the service after every run and post step ended, and no run reported a pause"
            )
        # 5. IAM
        public = self.public()
        # The serving release's setting, and any promoted release's (by its own run or by someone's
        # mode promote): a promote keeps its access for the releases after it, which do not set it
        # back, as a rollback to its target does.
        promoted = {p.result.revision for p in self.runs if p.outcome is Outcome.PROMOTED and p.result}
        configured = {
            r.inputs["allow_unauthenticated"] == "true"
            for r in self.runs
            if (r is allowed_release or r.candidate in promoted) and "allow_unauthenticated" in r.inputs
        }
        if public != self.public_before and public not in configured:
            self.problem(
                f"[finding 4] the service is {'public' if public else 'private'} after every run ended; "
                f"it was {'public' if self.public_before else 'private'} before, and no release that "
                "serves asked for that"
            )
        # 6. jobs
        for execution in self.executions():
            name = execution["metadata"]["name"]
            owner = next((r for r in self.runs if name in r.executions), None)
            status = execution.get("status") or {}
            done = any(
                c["type"] == "Completed" and c["status"] in ("True", "False")
                for c in status.get("conditions", [])
            )
            if not done:
                self.problem(
                    f"[finding 7] job execution {name} (started by run {owner.label if owner else '?'}) "
                    "is still running after every run and post step ended"
                )
        for run in self.runs:
            for name in run.late:
                self.problem(
                    f"[finding 5] run {run.label} started job execution {name} after its release was "
                    f"ended by {run.lost}"
                )
        if settled_base and recorded is None and not self.problems:
            self.bases.append(final)  # judged sound: the traffic a later run starts from

    def _probe(self, final: Snapshot) -> None:
        """Requests really answer from the revisions the routing table names."""
        status = self.api.service(SERVICE)["status"]
        urls = {t["tag"]: t["url"] for t in status.get("traffic", []) if t.get("tag") and t.get("url")}
        for tag, revision in final.tags:
            if tag in urls:
                self._hit(urls[tag], {revision}, f"tag URL {tag}")
        if final.shares:
            self._hit(status["url"], {r for r, p in final.split if p}, "the service URL")

    def _hit(self, url: str, expected: set[str], what: str) -> None:
        resp = self.http.get(url, timeout=10)
        revision = resp.json().get("revision") if resp.status_code == 200 else None
        if revision not in expected:
            said = "" if resp.status_code == 200 else f" ({resp.text[:300].strip()})"
            self.problem(
                f"{what} answered {resp.status_code}{said} from {revision or '?'}, expected one of "
                f"{sorted(expected)}"
            )

    def _story(self, run: Run) -> str:
        if run.killed:
            return "killed"
        return str(run.outcome) if run.outcome else "without a result"

    def cleanup(self) -> None:
        """Stop the revision processes and executions of this world."""
        with contextlib.suppress(requests.RequestException):
            for execution in self.executions():
                self.http.post(
                    f"{self.run_ns}/executions/{execution['metadata']['name']}:cancel", json={}, timeout=10
                )
            self.http.delete(f"{self.api.ns}/services/{SERVICE}", timeout=10)


class _Sink:
    """Where the post step's log goes (the property test reads the service, not the log)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def _short(seconds: float) -> None:
    seconds = max(seconds, 0.0)
    time.sleep(min(seconds, max(SLEEP_CAP, min(seconds * SLEEP_SCALE, SLEEP_LONGEST))))


def _service_write(url: str) -> bool:
    path = url.split("?", 1)[0]
    return path.endswith(f"/services/{SERVICE}") or path.endswith("/services")


def _support(snap: Snapshot) -> set[str]:
    return {r for r, p in snap.split if p}


# --------------------------------------------------------------------------------------------------
# A whole scenario


def play(emu: Emulator, project: str, scenario: Scenario) -> World:
    """Build the service, play the first run with its events and its post step, judge; then the
    follow-up and its post step, judge again. Raises Problem with everything found."""
    world = World(emu, project)
    try:
        world.build(scenario.service)
        # A run that dies or is cancelled while its execution starts or runs: the execution runs long
        # enough that one nobody cancels is still running when the judge looks.
        ending = ("cancel", "kill", "lost")
        slow = any(e.action in ending and e.at.endswith((" run", " started")) for e in scenario.events)
        first = world.new_run("a", spec=dataclasses.replace(scenario.run, slow_jobs=slow))
        for event in scenario.events:
            first.events.setdefault(event.at, []).append(event)
        world.play(first)
        world.post(first)
        if not first.runner_lost:  # else its rollout stays unfinished until the follow-up: nothing ended
            world.judge(settled_base=True)
        if scenario.follow_up != "none":
            follow_up(world, first, scenario.follow_up)
            world.judge()
    finally:
        world.cleanup()
    if world.problems:
        raise Problem(f"{scenario.describe()}\n" + "\n".join(world.problems))
    return world


def follow_up(world: World, first: Run, kind: str) -> Run:
    """What people do next: re-run the job, another run with takeover, mode rollback or promote."""
    if kind == "rerun":
        run = world.rerun(first)
    elif kind == "takeover":
        run = world.new_run("takeover", spec=RunSpec(steps="10,100"), takeover=True)
    else:
        run = world.new_run(kind, mode=kind)
    paused = first.outcome is Outcome.PAUSED and not first.fired and not world.problems
    world.play(run)
    world.post(run)
    world.after_other(run)
    if kind == "promote" and paused and run.outcome is not Outcome.PROMOTED:
        world.problem(
            f"[finding 1] run {first.label} paused; mode promote then ended {run.outcome}: "
            f"{run.result.reason if run.result else ''}"
        )
    return run


def _entries(block: list[dict[str, Any]]) -> list[tuple[str, int, str, bool]]:
    """A traffic block as a person compares it: entries in any order."""
    return sorted(
        (e.get("revisionName", ""), e.get("percent", 0), e.get("tag", ""), bool(e.get("latestRevision")))
        for e in block
    )
