"""What every part of a rollout stands on: the run's state (the record of our unfinished rollout, the
service as last read or written), and how it writes (re-applying after a 409, never over someone
else's change), waits, smoke-checks, changes public access and records the traffic for the summary.

``rollout.Rollout`` builds on it (through ``undo.WayBack`` and ``steps.Steps``); the rules it applies
are pure functions in their own modules (``restore``, ``readiness``, ``retry``...).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from deployer import knative, readiness, smoke
from deployer.client import CloudRun
from deployer.errors import ApiError, Conflict, DeployerError, RolloutFailed, RolloutTakenOver
from deployer.hooks import Hooks
from deployer.knative import Obj
from deployer.restore import access_to_write, cleanup_message, still_ours
from deployer.result import Outcome, Phase, Reporter, RolloutResult, TrafficChange, recorded_phase
from deployer.retry import is_conflict, retry_conflicts
from deployer.settings import Config, RunContext
from deployer.state import RolloutState, derive_suffix
from deployer.traffic import Traffic


class ServiceWriter:
    """One run's hold on one service: its state, and the writes and waits every mode uses."""

    def __init__(
        self, config: Config, ctx: RunContext, api: CloudRun, project: str, reporter: Reporter, hooks: Hooks
    ):
        self.config, self.ctx, self.api, self.reporter, self.hooks = config, ctx, api, reporter, hooks
        self.name = config.service
        self.t0 = hooks.clock()
        self.result = RolloutResult(
            outcome=Outcome.FAILED,
            mode=str(config.mode),
            service=config.service,
            region=config.region,
            project=project,
            image=config.image,
        )
        self.state: RolloutState | None = None  # our unfinished rollout, once it is on the service
        self.pending: RolloutState | None = None  # the first write, while it may or may not have landed
        self.adopted: RolloutState | None = None  # the record of another run we finish or undo
        self.promoting = False  # the promote write was sent: after a cancel, it may have landed
        self.keep_tag = True
        self.last: Obj | None = None  # the service as last read or written
        self.tag_answer: Obj | None = None  # the answer of our write that created a tag (quota cleanup)
        self.public_before: bool | None = None  # invoker access before the run, if this run changes it
        self.settled: dict[bool, float] = {}  # shortest wait so far, new revision (True) or traffic only
        self.baseline = ""  # baseline: revision -- the baseline revision's name, once planned
        self.baseline_url = ""  # and its tag URL, once it is ready

    # --- plumbing ----------------------------------------------------------------------------

    def _write(
        self,
        change: Callable[[Obj], Obj],
        current: Obj | None = None,
        *,
        api: CloudRun | None = None,
        fresh: bool = False,
    ) -> Obj:
        """PUT ``change(service)``; on a 409 (someone else wrote), re-read and re-apply our change on top."""
        api = api or self.api
        first = None if fresh else (current or self.last)

        def attempt(n: int) -> Obj:
            svc = first if n == 0 and first is not None else self._require_service(api)
            # Every write, not only after a 409: a promote, a rollback, another run or an operator may
            # have changed the service since our last read, and writing on top would undo what they did.
            self._check_ours(svc)
            self.last = api.replace_service(self.name, change(svc))
            return self.last

        def again(exc: ApiError) -> bool:
            if is_conflict(exc):
                self.reporter.info(f"Service {self.name} changed under us (409); re-reading and re-applying.")
            return is_conflict(exc)

        return retry_conflicts(attempt, again=again)

    def _annotate(self, annotations: dict[str, str | None]) -> Obj:
        """Change only our annotations (the traffic stays as it is)."""
        return self._write(lambda svc: knative.with_traffic(svc, knative.spec_traffic(svc), annotations))

    def ownership(self, when: str = "") -> str:
        """ "" while the rollout is still ours as we left it (read now), else why not: a job of a
        release that someone rolled back or took over must not run on."""
        if self.state is None:
            return ""
        try:
            self._check_ours(self._require_service())
        except RolloutFailed as exc:
            return str(exc)
        return ""

    def _check_ours(self, svc: Obj) -> None:
        """Before every write: the rollout is still ours and the traffic is what we last wrote."""
        if self.state is None:
            return
        try:
            state, cleaned = still_ours(
                svc,
                self.state,
                self.adopted,
                self.name,
                self.result.revision or "",
                tag_write=svc is self.tag_answer,
            )
        except RolloutTakenOver:
            self.state = None  # not ours (any more): undoing it is not ours to do
            raise
        if state != self.state:  # Cloud Run's tag-quota cleanup, not a person: carry on without those tags
            self.state = state
            self.reporter.warning(cleanup_message(self.name, cleaned))

    def _wait(
        self,
        generation: int,
        *,
        candidate: str = "",
        timeout: float | None = None,
        api: CloudRun | None = None,
    ) -> Obj:
        """Poll until the write is observed, the candidate (if any) is Ready and the routes are ready."""
        reader = api or self.api
        timeout = self.config.wait_timeout if timeout is None else timeout
        start, kind = self.hooks.clock(), bool(candidate)
        # The PUT's own answer is the first look: no need to read the service again at once.
        first = [self.last] if self.last and knative.generation(self.last) == generation else []

        status = "not observed yet"

        def look() -> tuple[Obj | None, str]:
            nonlocal status
            svc = first.pop() if first else self._require_service(reader)
            if not knative.is_fresh(svc, generation):
                return None, status
            done, status = readiness.service_readiness(svc, candidate, reader, self.name)
            return (svc if done else None), status

        svc = readiness.wait(
            look,
            timeout=timeout,
            clock=self.hooks.clock,
            sleep=self._sleep,
            delays=readiness.poll_delays(self.settled.get(kind, 0.0)),
            progress=readiness.Progress(
                lambda elapsed, status: self.reporter.info(f"Still waiting ({elapsed:.0f}s): {status}"),
                every=readiness.PROGRESS_EVERY,
            ),
            expired=lambda status: RolloutFailed(
                f"timed out after {timeout:g}s waiting for {candidate or 'the routes'}: {status}"
            ),
        )
        self.last = svc
        learned = readiness.learned(self.settled.get(kind), self.hooks.clock() - start)
        if learned is not None:
            self.settled[kind] = learned
        return svc

    def _smoke(self, svc: Obj) -> str:
        url = smoke.target(
            self.result.tag_url, svc, self.config.tag if self.state is None else self.state.tag
        )
        if not url:
            raise RolloutFailed(f"the server reported no URL for tag {self.config.tag!r}")
        self.result.tag_url = url
        result = self.hooks.smoke(url)
        if not result.ok:
            raise RolloutFailed(f"smoke check failed: {result.detail}")
        return result.detail

    def _set_public(self, allow: bool, api: CloudRun, *, forward: bool) -> None:
        """Add or remove ``allUsers`` as invoker (read-modify-write with the policy's etag).

        ``forward``: the rollout's own change, made only while the rollout is still ours (checked again
        after a 409). The way back (``forward=False``) puts back the access from before the run only
        if it is still what this run set: someone who changed it since wins.
        """

        def attempt(n: int) -> None:
            policy = access_to_write(api.get_iam_policy(self.name), allow, forward=forward)
            if policy is None:
                return  # already so, or (the way back) not what this run left: someone else's now
            api.set_iam_policy(self.name, policy)
            self.reporter.info(
                f"{'Allowed' if allow else 'Removed'} unauthenticated access to {self.name}"
                + ("." if forward else ", as it was before the run.")
            )

        def again(exc: ApiError) -> bool:
            if isinstance(exc, Conflict) and forward:
                self._check_ours(self._require_service())  # still ours after someone else's write?
            return isinstance(exc, Conflict)

        retry_conflicts(attempt, again=again)

    def _require_service(self, api: CloudRun | None = None) -> Obj:
        svc = (api or self.api).get_service(self.name)
        if svc is None:
            raise RolloutFailed(f"service {self.name} does not exist in {self.config.region}")
        return svc

    def _revision_name(self) -> str:
        return f"{self.name}-{self.config.suffix or derive_suffix(self.ctx)}"

    def _metadata_template(self) -> Obj | None:
        return ((knative.exported(self.config.metadata) or {}).get("spec") or {}).get("template")

    def _plan(self, current: Obj | None, template: Obj, blocks: list[Traffic]) -> None:
        self.result.plan = blocks
        self.result.template_diff = knative.template_diff(
            (current or {}).get("spec", {}).get("template"), template
        )
        self.result.outcome = Outcome.PLANNED
        for block in blocks:
            self.reporter.info("Planned traffic: " + ", ".join(t.describe() for t in block))

    def _record(self, label: str, block: Traffic) -> None:
        """Keep the traffic for the summary's chart, and say it in the log (inside the phase's group)."""
        self.result.history.append(TrafficChange(at=self._now(), label=label, traffic=block))
        shares = ", ".join(t.describe() for t in block) or "none"
        self.reporter.info(
            f"Traffic before the run: {shares}" if label == "before" else f"Traffic ({label}): {shares}"
        )

    def _sleep(self, seconds: float) -> None:
        if self.hooks.cancelled():
            raise KeyboardInterrupt("cancelled")
        self.hooks.sleep(max(seconds, 0.0))

    def _now(self) -> float:
        return self.hooks.clock() - self.t0

    def _phase(self, name: str) -> contextlib.AbstractContextManager[Phase]:
        return recorded_phase(self.result, self.reporter, name, self._now, describe)


def describe(exc: BaseException) -> str:
    """A one-line reason for the user."""
    if isinstance(exc, KeyboardInterrupt):
        return "cancelled"
    if isinstance(exc, DeployerError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
