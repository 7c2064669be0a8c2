"""The rollout: deploy a tagged revision with no traffic, wait until it is really ready, smoke-check
it, move traffic in steps while re-checking, then promote -- or put traffic back exactly as it was.

It talks to Cloud Run only through ``client.CloudRun`` and to the outside world only through a
``Reporter``; what happened comes back as a ``RolloutResult``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from deployer import baseline, knative, readiness, scaling, traffic
from deployer.bake import Bake, bake_rounds
from deployer.client import CloudRun
from deployer.errors import (
    ApiError,
    Conflict,
    DeployerError,
    RevisionFailed,
    RolloutFailed,
    RolloutTakenOver,
)
from deployer.hooks import Hooks as Hooks
from deployer.knative import Obj
from deployer.restore import (
    Restore,
    Undoing,
    cleanup_message,
    is_public,
    join_reasons,
    named_template,
    restore_plan,
    still_ours,
    with_public,
)
from deployer.result import (
    Outcome,
    Phase,
    Reporter,
    RolloutResult,
    StepInfo,
    TrafficChange,
    recorded_phase,
)
from deployer.retry import is_conflict, retry_conflicts
from deployer.settings import Config, Mode, RunContext
from deployer.state import (
    PREVIOUS_STABLE_ANNOTATION,
    STABLE_ANNOTATION,
    STATE_ANNOTATION,
    RolloutState,
    derive_suffix,
)
from deployer.traffic import BASELINE_TAG, Target, Traffic

ROLLBACK_WAIT = 60.0
NAME_RETRIES = 5  # derived revision names taken by other settings: -2, -3, ...


class Rollout:
    """One run of the action against one service."""

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
        self.public_before: bool | None = None  # invoker access before the run, if this run changes it
        self.settled: dict[bool, float] = {}  # shortest wait so far, new revision (True) or traffic only
        self.baseline = ""  # baseline: revision -- the baseline revision's name, once planned
        self.baseline_url = ""  # and its tag URL, once it is ready

    # --- entry point -------------------------------------------------------------------------

    def run(self) -> RolloutResult:
        """Run the configured mode; never raises for rollout failures (they are in the result)."""
        modes = {Mode.DEPLOY: self._deploy, Mode.PROMOTE: self._promote, Mode.ROLLBACK: self._rollback_mode}
        try:
            modes[self.config.mode]()
        except BaseException as exc:
            self.result.reason = describe(exc)
            if self.state is not None or (self.pending is not None and _may_have_landed(exc)):
                # A failed rollback is in the result (FAILED, "ROLLBACK FAILED: ...") and its state stays
                # on the service for the post step: report it, don't crash without outputs.
                with contextlib.suppress(Exception, KeyboardInterrupt):
                    self._undo()
            else:
                self.result.outcome = Outcome.FAILED
            if not isinstance(exc, Exception | KeyboardInterrupt):
                raise
        return self.result

    # --- mode deploy -------------------------------------------------------------------------

    def _deploy(self) -> None:
        with self._phase("deploy") as phase:
            current = self._take_over_if_unfinished(self.api.get_service(self.name))
            if current is None:
                self._create(phase)
            else:
                self._update(current, phase)
        if self.config.dry_run:
            return
        svc = self._wait_baseline(self._wait_candidate())
        if self.config.allow_unauthenticated is not None:
            with self._phase("iam"):
                self._check_ours(svc)  # as just read while waiting: still ours before another write
                self._set_public(self.config.allow_unauthenticated, self.api, forward=True)
        with self._phase("smoke") as phase:
            phase.detail = self._smoke(svc)
        if self.config.pre_job:  # before any traffic moves: its failure puts the traffic back as it was
            with self._phase("pre job") as phase:
                self._check_ours(self._require_service())  # a rolled-back release runs no job
                phase.detail = self.hooks.job("pre", self.result)
        if self.state is None:  # a new service: its first revision already serves everything
            self._promote_write(svc)
            return
        self._steps(svc, self.config.steps)

    def _take_over_if_unfinished(self, current: Obj | None) -> Obj | None:
        """Undo an unfinished rollout left on the service by this run's earlier attempt (or by another
        run, with ``takeover``); refuse otherwise, so two runs never fight over one service."""
        recorded = RolloutState.from_service(current)
        if current is None or recorded is None:
            return current
        same_run = bool(recorded.run_id) and recorded.run_id == self.ctx.run_id
        earlier = same_run and _attempt(recorded.run_attempt) < _attempt(self.ctx.run_attempt)
        if not (earlier or self.config.takeover):
            sibling = same_run and recorded.run_attempt == self.ctx.run_attempt
            who = f"another job of this workflow run ({recorded.owner()})" if sibling else recorded.owner()
            raise RolloutFailed(
                f"service {self.name} has an unfinished rollout of {recorded.candidate} at {recorded.step}% "
                f"started by {who}. Finish it with mode 'promote' or "
                "'rollback', or set 'takeover: true' to undo it and deploy."
            )
        self.reporter.warning(
            f"Undoing the unfinished rollout of {recorded.candidate} at {recorded.step}% "
            f"(started by {recorded.owner()}) before deploying."
        )
        if self.config.dry_run:
            return current
        # The chart starts from the traffic as found, then the undo (not the other way round).
        self._record("before", knative.status_traffic(current) or knative.spec_traffic(current))
        self.adopted = recorded
        written, plan = self._restore(recorded, self.api)
        self.adopted = None
        self.hooks.stop_jobs(recorded)  # its pre/post job executions go with it
        for note in plan.notes:
            self.reporter.warning(note)
        if plan.kind == "theirs":
            self.reporter.warning(plan.message)
        if written is None:
            return self._require_service()
        self._record("undone", plan.traffic)
        # The PUT's answer carries the status of before the undo (the interrupted candidate as the
        # latest ready revision): deploy from the service once Cloud Run has settled the undo.
        return self._wait(knative.generation(written))

    def _create(self, phase: Phase) -> None:
        revision = self._revision_name()
        template = knative.new_template(self._metadata_template(), self.config, revision)
        first = (Target(revision=revision, percent=100, tag=self.config.tag),)
        body = knative.service_body(
            None,
            self.config,
            template,
            first,
            labels=knative.labels_for(self.config, self.ctx),
            annotations=knative.client_annotations(),
            namespace=self.result.project,
        )
        self.result.revision = revision
        phase.detail = f"new service {self.name} with revision {revision}"
        self.reporter.info(
            f"Service {self.name} does not exist: creating it with revision {revision} (100 %)."
        )
        if self.config.dry_run:
            self._plan(None, template, [first])
            self.api.create_service(body, dry_run=True)
            return
        self.last = self.api.create_service(body)
        self._record("created", first)

    def _update(self, current: Obj, phase: Phase) -> None:
        before = knative.status_traffic(current)
        self.result.traffic_before = before
        self.result.previous_revision = traffic.top_revision(before)
        self.result.url = knative.service_url(current)
        if not self.result.history:  # a takeover recorded the traffic as found already
            self._record("before", before or knative.spec_traffic(current))
        template, candidate = self._candidate_template(current)
        instances, refused = scaling.check(current, candidate, self.config.tag, self.config.steps)
        if instances:  # service-level scaling divides instances by traffic share: say what each step gets
            self.reporter.info(f"Instances per step ({instances}).")
        if refused:
            raise RolloutFailed(refused)
        self.public_before = self._public_before()
        if self.config.analysis.baseline == "revision" and self.config.steps[-1] > 0:
            current = self._deploy_baseline(current, candidate)
        for retry in range(2, NAME_RETRIES + 2):
            try:
                self._deploy_write(current, template, candidate, phase)
                phase.detail += f"; instances per step ({instances})" if instances else ""
                return
            except Conflict as exc:
                if exc.reason != "ALREADY_EXISTS" or self.config.suffix is not None:
                    raise
                # Another run deployed other settings under the same commit and attempt: next name.
                candidate = template["metadata"]["name"] = f"{self._revision_name()}-{retry}"
                self.reporter.info(f"That revision name has other settings already; trying {candidate}.")

    def _deploy_write(self, current: Obj, template: Obj, candidate: str, phase: Phase) -> None:
        """The first write: the new template, our tag on it at 0 %, and the rollout state."""
        self.result.revision = candidate
        planned: list[RolloutState] = []

        def body(svc: Obj) -> Obj:
            """Our change on top of whatever the service is now (re-applied after a 409)."""
            self._refuse_rival(svc)
            state = self._new_state(svc, candidate)
            deployed = traffic.deployed(state.base_traffic, candidate, state.tag, state.baseline or None)
            out = knative.service_body(
                svc,
                self.config,
                template,
                deployed,
                labels=knative.labels_for(self.config, self.ctx),
                annotations=knative.client_annotations(),
            )
            state = _with_changes(state, svc, out)
            out["metadata"].setdefault("annotations", {})[STATE_ANNOTATION] = state.to_annotation()
            planned[:] = [state]
            if not self.config.dry_run:
                self.pending = state  # from here on, a failure or cancel undoes what may have landed
            return out

        phase.detail = f"revision {candidate} tagged {self.config.tag!r}"
        if self.config.dry_run:
            self.api.replace_service(self.name, body(current), dry_run=True)
            base = planned[0].base_traffic
            phase.detail = traffic.deployed_detail(base, candidate, self.config.tag)
            blocks = traffic.plan(base, candidate, self.config.tag, self.config.steps, self.baseline or None)
            self._plan(current, template, blocks)
            return
        # From here on, any failure or cancel puts the service back: the write may land even if we
        # never see its answer, so the undo verifies what is on the service.
        self._write(body, current)
        self.state, self.pending = planned[0], None
        phase.detail = traffic.deployed_detail(self.state.base_traffic, candidate, self.config.tag)
        self._record("deployed", self.state.written())

    def _new_state(self, svc: Obj, candidate: str) -> RolloutState:
        if self.state is not None and self.state.baseline_only:  # the baseline's write came first
            return replace(self.state, candidate=candidate, baseline_only=False)
        base = self._pinned_base(svc)
        return RolloutState(
            before=traffic.to_spec(knative.spec_traffic(svc)),
            template=named_template(svc),
            stable=knative.annotation(svc, STABLE_ANNOTATION) or "",
            previous_stable=knative.annotation(svc, PREVIOUS_STABLE_ANNOTATION) or "",
            job=self.ctx.job,
            token=self.hooks.token,
            candidate=candidate,
            tag=self.config.tag,
            base=traffic.to_spec(base),
            steps=list(self.config.steps),
            step=traffic.shares(base).get(candidate, 0),
            run_id=self.ctx.run_id,
            run_attempt=self.ctx.run_attempt,
            run_url=self.ctx.run_url,
            image=self.config.image or "",
            previous_revision=self.result.previous_revision or "",
            started=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            latest=(svc.get("status") or {}).get("latestReadyRevisionName") or "",
            public_before=self.public_before,
            jobs=[name for name in (self.config.pre_job, self.config.post_job) if name] or None,
            baseline="" if self.config.dry_run else self.baseline,  # a dry run's server check: no revision
        )

    def _refuse_rival(self, svc: Obj) -> None:
        """Our first write, re-applied after a 409, must not land on another run's rollout that started
        since we read the service: that run owns it now (``takeover`` applies only to what a run finds
        when it starts). Nothing of ours landed (the 409 refused it): nothing to undo."""
        found = RolloutState.from_service(svc)
        if found is None or found.token == self.hooks.token or self.config.dry_run:
            return
        self.pending = None
        raise RolloutFailed(
            f"another rollout of service {self.name} ({found.candidate}, started by {found.owner()}) began "
            "while this run was deploying; this run wrote nothing. Re-run it once that rollout is finished "
            "(or with 'takeover: true' to undo it)."
        )

    def _public_before(self) -> bool | None:
        """Whether allUsers may invoke the service now, when this run is to change it (else None)."""
        allow = self.config.allow_unauthenticated
        if allow is None or self.config.dry_run:
            return None
        public = is_public(self.api.get_iam_policy(self.name))
        return None if public == allow else public

    def _candidate_template(self, current: Obj) -> tuple[Obj, str]:
        """The new template and its revision name; the current one when nothing changed (no new revision)."""
        base = self._metadata_template() or current["spec"].get("template")
        template = knative.new_template(base, self.config, self._revision_name())
        current_template = current["spec"].get("template")
        current_name = knative.template_name(current)
        if current_name and knative.same_template(template, current_template):
            self.reporter.info(f"Image and settings are those of revision {current_name}: reusing it.")
            return current_template, current_name
        return template, template["metadata"]["name"]

    def _pinned_base(self, current: Obj) -> Traffic:
        latest_ready = (current.get("status") or {}).get("latestReadyRevisionName")
        base = traffic.pin_latest(knative.spec_traffic(current), latest_ready)
        if any(t.latest for t in base):
            self.reporter.warning(
                f"Service {self.name} has no ready revision: the traffic that follows the latest revision "
                "will go to the new one as soon as it is ready."
            )
        return base

    def _wait_candidate(self) -> Obj:
        candidate = self.result.revision or ""
        with self._phase("wait") as phase:
            try:
                svc = self._wait(knative.generation(self.last or {}), candidate=candidate)
            except RevisionFailed:
                self.keep_tag = False  # a tag on a revision that cannot serve keeps the routes unready
                raise
            self.result.url = knative.service_url(svc)
            self.result.tag_url = knative.tag_url(svc, self.config.tag)
            phase.detail = f"{candidate} is ready"
        return svc

    # --- steps, promotion --------------------------------------------------------------------

    def _steps(self, svc: Obj, steps: tuple[int, ...]) -> None:
        assert self.state is not None
        todo = [p for p in steps if p > self.state.step]
        for percent in todo:
            with self._phase(f"{percent}%") as phase:
                svc = self._shift(percent)
                phase.detail = self._smoke(svc)
                if percent < 100:
                    phase.detail = self._bake(percent)
        if steps[-1] == 100 or self.state.step == 100:
            self._promote_write(svc)
        elif steps[-1] == 0:
            with self._phase("finish") as phase:
                self._annotate({STATE_ANNOTATION: None})
                self.state = None
                self.result.outcome = Outcome.DEPLOYED
                phase.detail = f"{self.result.revision} deployed with no traffic at {self.result.tag_url}"
            self.result.traffic_after = knative.status_traffic(svc)
        else:
            self._pause()
            self.result.outcome = Outcome.PAUSED
            self.result.traffic_after = knative.status_traffic(svc)
            self.reporter.info(
                f"Paused at {steps[-1]} %: run this action with mode 'promote' to finish, "
                "or 'rollback' to undo."
            )

    def _pause(self) -> None:
        """Hand the rollout on: mark the record paused (checking, as every write does, that it is still
        ours and the traffic is what we wrote), so the post step that follows this step leaves it for
        a later ``mode: promote`` or ``rollback``."""
        assert self.state is not None
        paused = replace(self.state, paused=True)
        self._annotate({STATE_ANNOTATION: paused.to_annotation()})
        self.state = None

    def _shift(self, percent: int) -> Obj:
        """Give the candidate ``percent`` (others scaled down), record it, and wait for the routes."""
        assert self.state is not None
        self._check_ours(self.last or self._require_service())  # tags Cloud Run cleaned up: not written back
        state = self.state.at_step(percent)
        new = traffic.at_step(
            self.state.base_traffic, state.candidate, state.tag, percent, state.baseline or None
        )
        self._write(lambda svc: knative.with_traffic(svc, new, {STATE_ANNOTATION: state.to_annotation()}))
        self.state = state
        self._record(f"{percent}%", new)
        return self._wait(knative.generation(self.last or {}))

    def _bake(self, percent: int) -> str:
        """The bake, with the action's own load (``load_rps``) on the tag URLs while it lasts."""
        urls = (
            (self.result.tag_url or "", self.baseline_url)
            if self.baseline_url
            else (self.result.tag_url or "",)
        )
        info = StepInfo(
            percent=percent,
            candidate=self.result.revision or "",
            previous=self.result.previous_revision,
            tag_url=self.result.tag_url or "",
            url=self.result.url or "",
            started=0.0,
            round=0,
            baseline=self._compared(),
            baseline_tag_url=self.baseline_url,
        )
        step = Bake(info, self.config.step_interval, self.config.analysis)
        with self.hooks.load(tuple(u for u in urls if u)) as report:
            detail = bake_rounds(step, self.hooks, self.reporter, self.result, self._sleep)
        sent = report()
        if sent:
            self.reporter.info(f"{percent}%: {sent}")
        return f"{detail}; {sent}" if sent else detail

    def _promote_write(self, svc: Obj) -> None:
        """Mark the candidate stable and forget the rollout: from here a failure is no longer ours to undo."""
        if self.config.post_job:  # it serves 100 % but the rollout is still recorded: a failure can undo it
            with self._phase("post job") as phase:
                if self.state is not None:
                    self._check_ours(self._require_service())  # a rolled-back release runs no job
                phase.detail = self.hooks.job("post", self.result)
        with self._phase("promote") as phase:
            candidate = self.result.revision or ""
            annotations: dict[str, str | None] = {
                STATE_ANNOTATION: None,
                STABLE_ANNOTATION: candidate,
            }
            previous = self.result.previous_revision
            if previous and previous != candidate:
                annotations[PREVIOUS_STABLE_ANNOTATION] = previous
            if self.state is not None and self.last:
                self._check_ours(self.last)  # tags Cloud Run cleaned up: not written back
            state = self.state
            if state is None:  # a new service: nothing to undo, nothing kept for a rollback
                self._annotate(annotations)
            else:  # the promoted block: after the 100 % step it only lets the pre-run revisions go
                final = traffic.promoted(state.base_traffic, state.candidate, state.tag)
                self.promoting = True  # a cancel from here on undoes the promote too, if it landed
                self._write(lambda s: knative.with_traffic(s, final, annotations))
                if not traffic.same_routes(final, state.written()):
                    svc = self._wait(knative.generation(self.last or {}))
            self.state = None
            self.result.outcome = Outcome.PROMOTED
            self.result.traffic_after = traffic.routing(knative.status_traffic(svc))
            phase.detail = f"{candidate} serves 100 %"

    # --- mode promote ------------------------------------------------------------------------

    def _promote(self) -> None:
        with self._phase("resume") as phase:
            svc = self._require_service()
            recorded = RolloutState.from_service(svc)
            if recorded is None:
                raise RolloutFailed(
                    f"nothing to promote: no unfinished rollout is recorded on service {self.name}"
                )
            self._adopt(recorded, svc)
            phase.detail = (
                f"{recorded.candidate} at {recorded.step}% (from {recorded.run_url or 'an earlier run'})"
            )
        if self.config.dry_run:
            final = traffic.with_candidate(recorded.base_traffic, recorded.candidate, recorded.tag, 100)
            self.api.replace_service(self.name, knative.with_traffic(svc, final, {}), dry_run=True)
            self._plan(svc, svc["spec"].get("template") or {}, [final])
            self.state = None
            return
        with self._phase("smoke") as phase:
            phase.detail = self._smoke(svc)
        self._steps(svc, (100,))

    def _adopt(self, recorded: RolloutState, svc: Obj) -> None:
        """Take over a recorded rollout to finish or undo it; from our first write on, it is ours."""
        self.adopted = recorded
        self.state = replace(
            recorded,
            paused=False,
            run_id=self.ctx.run_id,
            run_attempt=self.ctx.run_attempt,
            run_url=self.ctx.run_url,
            job=self.ctx.job,
            token=self.hooks.token,
        )
        self.result.revision = recorded.candidate
        self.result.previous_revision = recorded.previous_revision or None
        self.result.traffic_before = knative.status_traffic(svc)
        self.result.url = knative.service_url(svc)
        self.result.tag_url = knative.tag_url(svc, recorded.tag)
        self._record("before", self.result.traffic_before)

    # --- mode rollback -----------------------------------------------------------------------

    def _rollback_mode(self) -> None:
        svc = self._require_service()
        recorded = RolloutState.from_service(svc)
        if recorded is not None:
            self._adopt(recorded, svc)
            self.result.reason = f"manual rollback of the unfinished rollout of {recorded.candidate}"
            if self.config.dry_run:
                self._plan_restore(svc)
                return
            self._undo()
            self.hooks.stop_jobs(recorded)  # its pre/post job executions go with it
            return
        with self._phase("rollback") as phase:
            before = knative.status_traffic(svc)
            self.result.traffic_before = before
            self.result.previous_revision = traffic.top_revision(before)
            self.result.url = knative.service_url(svc)
            self._record("before", before)
            target = self._rollback_target(svc)
            tagged = tuple(replace(t, percent=0) for t in knative.spec_traffic(svc) if t.tag)
            new = (Target(revision=target, percent=100), *tagged)
            annotations: dict[str, str | None] = {STABLE_ANNOTATION: target}
            if self.config.dry_run:
                self.api.replace_service(self.name, knative.with_traffic(svc, new, annotations), dry_run=True)
                self.result.revision = target
                self._plan(svc, svc["spec"].get("template") or {}, [new])
                phase.detail = f"would send 100 % to {target}"
                return
            self._write(lambda s: knative.with_traffic(s, new, annotations), svc)
            self._record("rolled back", new)
            svc = self._wait(knative.generation(self.last or {}))
            self.result.revision = target
            self.result.traffic_after = knative.status_traffic(svc)
            self.result.outcome = Outcome.ROLLED_BACK
            self.result.reason = f"manual rollback to {target}"
            phase.detail = f"{target} serves 100 %"

    def _rollback_target(self, svc: Obj) -> str:
        target = self.config.rollback_to or knative.annotation(svc, PREVIOUS_STABLE_ANNOTATION)
        if not target:
            raise RolloutFailed(
                "no revision to roll back to: set 'rollback_to', or promote a rollout with this action "
                f"first (it records the previous stable revision on {self.name})"
            )
        revision = self.api.get_revision(target)
        if revision is None:
            raise RolloutFailed(f"revision {target} does not exist in service {self.name}")
        ready = knative.condition(revision, "Ready")
        if ready.status != "True":
            raise RolloutFailed(f"revision {target} cannot serve: {ready.describe()}")
        return target

    # --- the way back ------------------------------------------------------------------------

    def _plan_restore(self, svc: Obj) -> None:
        """Dry run of mode rollback: what undoing the recorded rollout would write, checked by the server."""
        assert self.state is not None
        plan = self._restore_plan(svc, self.state, self.api, named=True)
        self.state = None
        if plan.body is not None:
            self.api.replace_service(self.name, plan.body, dry_run=True)
        template = (plan.body or svc)["spec"].get("template") or {}
        self._plan(svc, template, [plan.traffic] if plan.body is not None else [])
        self.reporter.info(plan.message or "Would restore the service as it was before the rollout.")

    def _undo(self) -> None:
        """Put the service back as it was before the run: traffic, template, our annotations. Works
        after a cancel (short timeouts); never overwrites what someone else changed since."""
        state = self.state or self.pending
        assert state is not None
        api = self.hooks.rollback_api or self.api
        with self.hooks.shield(), self._phase("rollback") as phase:
            try:
                written, plan = self._restore(state, api)
            except BaseException as exc:
                self.result.outcome = Outcome.FAILED
                self.result.reason = (
                    f"{self.result.reason}; ROLLBACK FAILED: {describe(exc)}. The rollout state recorded on "
                    "the service lets a re-run, the post step, or mode 'rollback' restore the traffic."
                )
                raise
            self.state = self.pending = None
            for note in plan.notes:
                self.reporter.warning(note)
            phase.detail = plan.message
            if plan.kind in ("theirs", "taken over") or written is None:
                # Someone else's traffic, or ours never landed: report the traffic as it now is.
                self.result.outcome = Outcome.FAILED
                if plan.kind != "nothing":
                    self.result.reason = join_reasons(self.result.reason, plan.message)
                if not self.hooks.cancelled():
                    with contextlib.suppress(Exception, KeyboardInterrupt):
                        svc = (
                            self._wait(knative.generation(written), timeout=ROLLBACK_WAIT, api=api)
                            if written is not None
                            else self._require_service(api)
                        )
                        self.result.traffic_after = knative.status_traffic(svc)
                return
            self.result.outcome = Outcome.ROLLED_BACK
            self._record("rolled back", plan.traffic)
            self.result.traffic_after = plan.traffic
            if not self.hooks.cancelled():
                with contextlib.suppress(Exception, KeyboardInterrupt):
                    svc = self._wait(knative.generation(self.last or {}), timeout=ROLLBACK_WAIT, api=api)
                    self.result.traffic_after = knative.status_traffic(svc)

    def _restore(self, state: RolloutState, api: CloudRun) -> tuple[Obj | None, Restore]:
        """Write the undo of ``state``'s rollout, re-deciding it on every re-read (409, a revision
        deleted meanwhile); returns the service written (None: nothing to write) and the decision."""
        named = True

        def attempt(n: int) -> tuple[Obj | None, Restore]:
            svc = self._require_service(api)
            plan = self._restore_plan(svc, state, api, named=named)
            if plan.body is None:
                return None, plan
            self.last = api.replace_service(self.name, plan.body)
            if state.public_before is not None:
                self._set_public(state.public_before, api, forward=False)
            return self.last, plan

        def again(exc: ApiError) -> bool:
            nonlocal named
            if isinstance(exc, Conflict):
                if exc.reason == "ALREADY_EXISTS" and named:
                    # The template we recorded names a revision whose settings differ: write it unnamed
                    # (Cloud Run makes a new revision with the settings from before the run).
                    named = False
                return True
            return exc.status == 400  # a 400 may be a revision deleted since we listed them: decide again

        return retry_conflicts(attempt, again=again)

    def _restore_plan(self, svc: Obj, state: RolloutState, api: CloudRun, *, named: bool) -> Restore:
        """Decide the undo on the service as it is now (``restore.restore_plan``)."""
        undoing = Undoing(
            service=self.name,
            revision=self.result.revision or "",
            adopted=self.adopted,
            promoting=self.promoting,
            pending=self.pending is not None,
            keep_tag=self.keep_tag,
        )
        return restore_plan(svc, state, undoing, lambda: self._revisions(api), named=named)

    def _revisions(self, api: CloudRun) -> dict[str, bool]:
        """The service's revisions, and which are Ready."""
        found = api.list_revisions(self.name)
        return {r["metadata"]["name"]: knative.condition(r, "Ready").status == "True" for r in found}

    # --- the baseline (baseline: revision) ----------------------------------------------------

    def _deploy_baseline(self, current: Obj, candidate: str) -> Obj:
        """One write before the candidate's (a Knative write makes one revision): a new revision from
        the template of the revision that served most before the run, tagged ``baseline`` at 0 %, with
        the rollout recorded (``baseline_only``), so any failure from here on undoes it too. It and
        the candidate then become ready side by side."""
        top = traffic.top_revision(self._pinned_base(current))
        source = self.api.get_revision(top) if top else None
        if source is None:
            raise RolloutFailed(
                f"baseline: revision needs a revision serving traffic to copy; service {self.name} has "
                + (f"no revision {top}" if top else "none")
            )
        name = self.baseline = baseline.revision_name(candidate)
        template = baseline.template_from_revision(source, name)
        self.reporter.info(f"Baseline: revision {name} with the settings of {top}, tagged {BASELINE_TAG!r}.")
        planned: list[RolloutState] = []

        def body(svc: Obj) -> Obj:
            self._refuse_rival(svc)
            state = replace(self._new_state(svc, candidate), baseline=name, baseline_only=True)
            out = knative.service_body(
                svc,
                self.config,
                template,
                state.written(),
                labels=knative.labels_for(self.config, self.ctx),
                annotations=knative.client_annotations(),
            )
            state = _with_changes(state, svc, out)
            out["metadata"].setdefault("annotations", {})[STATE_ANNOTATION] = state.to_annotation()
            planned[:] = [state]
            return out

        if self.config.dry_run:  # the server checks the baseline's write; the plan shows it
            self.api.replace_service(self.name, body(current), dry_run=True)
            return current

        self.pending = replace(self._new_state(current, candidate), baseline_only=True)
        written = self._write(body, current)
        self.state, self.pending = planned[0], None
        self._record("baseline", self.state.written())
        return written

    def _wait_baseline(self, svc: Obj) -> Obj:
        """Wait until the baseline revision is ready too (usually already: it started first)."""
        if self.state is None or not self.state.baseline:
            return svc
        with self._phase("baseline") as phase:
            svc = self._wait(knative.generation(svc), candidate=self.state.baseline)
            self.baseline_url = knative.tag_url(svc, BASELINE_TAG) or ""
            phase.detail = f"{self.state.baseline} is ready at {self.baseline_url}"
        return svc

    def _compared(self) -> tuple[str, ...]:
        """What this step's candidate is compared with (``baseline`` input)."""
        state = self.state
        if state is None:
            return ()
        return baseline.compared_with(self.config.analysis.baseline, state.base_traffic, state.baseline)

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
            state, cleaned = still_ours(svc, self.state, self.adopted, self.name, self.result.revision or "")
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
        took = self.hooks.clock() - start
        if took >= readiness.POLL_LEARN_FROM:
            self.settled[kind] = min(self.settled.get(kind, took), took)
        return svc

    def _smoke(self, svc: Obj) -> str:
        url = self.result.tag_url or knative.tag_url(
            svc, self.config.tag if self.state is None else self.state.tag
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
            found = api.get_iam_policy(self.name)
            if not forward and is_public(found) != (not allow):
                return  # not what this run left: someone else's access policy now
            policy = with_public(found, allow)
            if policy is None:
                return
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


def _with_changes(state: RolloutState, svc: Obj, body: Obj) -> RolloutState:
    """``state`` recording the service-level labels and annotations ``body`` changes on ``svc``, on top
    of those an earlier write of the same rollout changed (the baseline's)."""
    changes = knative.chain_changes(state.metadata, knative.metadata_changes(svc, body))
    return replace(state, metadata=changes or None)


def _may_have_landed(exc: BaseException) -> bool:
    """Whether a failed write may still have reached the service (anything but a clear 4xx refusal)."""
    return not (isinstance(exc, ApiError) and 400 <= exc.status < 500)


def _attempt(text: str) -> int:
    return int(text) if text.isdigit() else 0


def describe(exc: BaseException) -> str:
    """A one-line reason for the user."""
    if isinstance(exc, KeyboardInterrupt):
        return "cancelled"
    if isinstance(exc, DeployerError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def run(
    config: Config, ctx: RunContext, api: CloudRun, project: str, reporter: Reporter, hooks: Hooks
) -> RolloutResult:
    """Run the action's mode against one service and say what happened."""
    return Rollout(config, ctx, api, project, reporter, hooks).run()
