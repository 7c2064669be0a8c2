"""The rollout: deploy a tagged revision with no traffic, wait until it is really ready, smoke-check
it, move traffic in steps while re-checking, then promote -- or put traffic back exactly as it was.

It talks to Cloud Run only through ``client.CloudRun`` and to the outside world only through a
``Reporter``; what happened comes back as a ``RolloutResult``.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from datetime import UTC, datetime

from deployer import baseline, knative, modes, record, scaling, traffic
from deployer.client import CloudRun
from deployer.errors import Conflict, RevisionFailed, RolloutFailed
from deployer.hooks import Hooks as Hooks
from deployer.knative import Obj
from deployer.landed import may_have_landed
from deployer.restore import is_public
from deployer.result import Outcome, Phase, Reporter, RolloutResult
from deployer.settings import Config, Mode, RunContext
from deployer.state import STATE_ANNOTATION, RolloutState
from deployer.steps import Steps
from deployer.takeover import rival_refusal, takeover_refusal, takeover_warning
from deployer.traffic import BASELINE_TAG, Target, Traffic
from deployer.writer import describe

NAME_RETRIES = 5  # derived revision names taken by other settings: -2, -3, ...


class Rollout(Steps):
    """One run of the action against one service: the modes, in order. The state it carries and the
    writes and waits are in ``writer.ServiceWriter``, the way back in ``undo.WayBack``, the traffic
    steps and the promote in ``steps.Steps``; every decision is a pure rule in its own module."""

    # --- entry point -------------------------------------------------------------------------

    def run(self) -> RolloutResult:
        """Run the configured mode; never raises for rollout failures (they are in the result)."""
        by_mode = {Mode.DEPLOY: self._deploy, Mode.PROMOTE: self._promote, Mode.ROLLBACK: self._rollback_mode}
        try:
            by_mode[self.config.mode]()
        except BaseException as exc:
            self.result.reason = describe(exc)
            if self.state is not None or (self.pending is not None and may_have_landed(exc)):
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
        refused = takeover_refusal(recorded, self.ctx, takeover=self.config.takeover, service=self.name)
        if refused:
            raise RolloutFailed(refused)
        self.reporter.warning(takeover_warning(recorded))
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
        twin = self._planned_baseline(candidate)
        instances, refused = scaling.check(current, candidate, self.config.tag, self.config.steps, twin)
        if instances:  # service-level scaling divides instances by traffic share: say what each step gets
            self.reporter.info(f"Instances per step ({instances}).")
        if refused:
            raise RolloutFailed(refused)
        self.public_before = self._public_before()
        if twin:
            current = self._deploy_baseline(current, candidate)
        for retry in range(2, NAME_RETRIES + 2):
            try:
                self._deploy_write(current, template, candidate, phase)
                phase.detail += f"; instances per step ({instances})" if instances else ""
                return
            except Conflict as exc:
                # Another run deployed other settings under the same commit and attempt: next name.
                name = record.next_revision_name(exc.reason, self.config.suffix, self._revision_name(), retry)
                if name is None:
                    raise
                candidate = template["metadata"]["name"] = name
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
            state = record.with_changes(state, svc, out)
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
        self.tag_answer = self._write(body, current)  # Cloud Run's tag cleanup shows only in this answer
        self.state, self.pending = planned[0], None
        self._check_ours(self.tag_answer)  # forget the tags that cleanup deleted, now or never
        phase.detail = traffic.deployed_detail(self.state.base_traffic, candidate, self.config.tag)
        self._record("deployed", self.state.written())

    def _new_state(self, svc: Obj, candidate: str) -> RolloutState:
        if self.state is not None and self.state.baseline_only:  # the baseline's write came first
            return record.after_baseline(self.state, candidate)
        return record.new_state(
            svc,
            candidate,
            self._pinned_base(svc),
            config=self.config,
            ctx=self.ctx,
            token=self.hooks.token,
            previous_revision=self.result.previous_revision or "",
            public_before=self.public_before,
            baseline=self.baseline,
            started=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )

    def _refuse_rival(self, svc: Obj) -> None:
        """Our first write, re-applied after a 409, must not land on another run's rollout
        (``takeover.rival_refusal``). Nothing of ours landed (the 409 refused it): nothing to undo."""
        found = RolloutState.from_service(svc)
        refused = rival_refusal(found, self.hooks.token, self.name, dry_run=self.config.dry_run)
        if refused:
            self.pending = None
            raise RolloutFailed(refused)

    def _public_before(self) -> bool | None:
        """Whether allUsers may invoke the service now, when this run is to change it (else None)."""
        allow = self.config.allow_unauthenticated
        if allow is None or not record.reads_policy(allow, self.config.dry_run):
            return None
        return record.public_before(allow, is_public(self.api.get_iam_policy(self.name)))

    def _candidate_template(self, current: Obj) -> tuple[Obj, str]:
        """The new template and its revision name; the current one when nothing changed (no new revision)."""
        template, name, reused = record.candidate_template(
            current, self._metadata_template(), self.config, self._revision_name()
        )
        if reused:
            self.reporter.info(f"Image and settings are those of revision {name}: reusing it.")
        return template, name

    def _pinned_base(self, current: Obj) -> Traffic:
        base, warning = record.pinned_base(current, self.name)
        if warning:
            self.reporter.warning(warning)
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

    # --- mode promote ------------------------------------------------------------------------

    def _promote(self) -> None:
        with self._phase("resume") as phase:
            svc = self._require_service()
            recorded = RolloutState.from_service(svc)
            if recorded is None:
                raise RolloutFailed(modes.nothing_to_promote(self.name))
            self._adopt(recorded, svc)
            phase.detail = modes.resumed(recorded)
            if not self.config.dry_run:
                self._await_jobs(recorded)
        if self.config.dry_run:
            final = traffic.with_candidate(recorded.base_traffic, recorded.candidate, recorded.tag, 100)
            self.api.replace_service(self.name, knative.with_traffic(svc, final, {}), dry_run=True)
            self._plan(svc, svc["spec"].get("template") or {}, [final])
            self.state = None
            return
        with self._phase("smoke") as phase:
            phase.detail = self._smoke(svc)
        self._steps(svc, (100,))

    def _await_jobs(self, recorded: RolloutState) -> None:
        """Before a promote moves traffic: the executions the rollout started have ended and its
        migration succeeded; otherwise (or if this is cancelled) they are stopped and the rollout is
        undone, as a rollout whose job failed."""
        try:
            why = self.hooks.await_jobs(recorded, self._sleep)
        except BaseException:
            self.hooks.stop_jobs(recorded)
            raise
        if why:
            self.hooks.stop_jobs(recorded)  # one still running past job_wait_timeout goes with the rollout
            raise RolloutFailed(why)

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
            target = modes.rollback_target(svc, self.config.rollback_to, self.api.get_revision, self.name)
            new, annotations = modes.rollback_write(svc, target)
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

    # --- the baseline (baseline: revision) ----------------------------------------------------

    def _planned_baseline(self, candidate: str) -> str | None:
        """The baseline revision this run will deploy beside ``candidate`` (``baseline: revision``
        and traffic to move), else None."""
        wanted = self.config.analysis.baseline == "revision" and self.config.steps[-1] > 0
        return baseline.revision_name(candidate) if wanted else None

    def _deploy_baseline(self, current: Obj, candidate: str) -> Obj:
        """One write before the candidate's (a Knative write makes one revision): a new revision from
        the template of the revision that served most before the run, tagged ``baseline`` at 0 %, with
        the rollout recorded (``baseline_only``), so any failure from here on undoes it too. It and
        the candidate then become ready side by side."""
        top = traffic.top_revision(self._pinned_base(current))
        source = self.api.get_revision(top) if top else None
        if source is None:
            raise RolloutFailed(baseline.missing_source(self.name, top))
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
            state = record.with_changes(state, svc, out)
            out["metadata"].setdefault("annotations", {})[STATE_ANNOTATION] = state.to_annotation()
            planned[:] = [state]
            return out

        if self.config.dry_run:  # the server checks the baseline's write; the plan shows it
            self.api.replace_service(self.name, body(current), dry_run=True)
            return current

        self.pending = replace(self._new_state(current, candidate), baseline_only=True)
        written = self.tag_answer = self._write(body, current)
        self.state, self.pending = planned[0], None
        self._check_ours(self.tag_answer)  # forget the tags that cleanup deleted, now or never
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


def run(
    config: Config, ctx: RunContext, api: CloudRun, project: str, reporter: Reporter, hooks: Hooks
) -> RolloutResult:
    """Run the action's mode against one service and say what happened."""
    return Rollout(config, ctx, api, project, reporter, hooks).run()
