"""The traffic steps of a rollout, as run: shift, smoke-check, bake at each step, then end as
``promote.ending`` says (promote, finish at 0 %, or pause), and the promote's write."""

from __future__ import annotations

from dataclasses import replace

from deployer import baseline, knative, load, traffic
from deployer.bake import Bake, bake_rounds, bakes_at
from deployer.knative import Obj
from deployer.promote import Ending, ending, pause_message, promote_annotations, steps_to_go
from deployer.result import Outcome, StepInfo
from deployer.state import STATE_ANNOTATION
from deployer.undo import WayBack


class Steps(WayBack):
    """Moving traffic to the candidate step by step, and promoting it."""

    def _steps(self, svc: Obj, steps: tuple[int, ...]) -> None:
        assert self.state is not None
        for percent in steps_to_go(steps, self.state.step):
            with self._phase(f"{percent}%") as phase:
                svc = self._shift(percent)
                phase.detail = self._smoke(svc)
                if bakes_at(percent):
                    phase.detail = self._bake(percent)
        end = ending(steps, self.state.step)
        if end is Ending.PROMOTE:
            self._promote_write(svc)
        elif end is Ending.FINISH:
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
            self.reporter.info(pause_message(steps[-1]))

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
        """The bake, with the action's own load (``load_rps``) while its window lasts."""
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
        urls = load.targets(self.config.analysis.baseline, info.tag_url, self.baseline_url, info.url)
        step = Bake(info, self.config.step_interval, self.config.analysis, urls)
        return bake_rounds(step, self.hooks, self.reporter, self.result, self._sleep)

    def _compared(self) -> tuple[str, ...]:
        """What this step's candidate is compared with (``baseline`` input)."""
        state = self.state
        if state is None:
            return ()
        return baseline.compared_with(self.config.analysis.baseline, state.base_traffic, state.baseline)

    def _promote_write(self, svc: Obj) -> None:
        """Mark the candidate stable and forget the rollout: from here a failure is no longer ours to undo."""
        if self.config.post_job:  # it serves 100 % but the rollout is still recorded: a failure can undo it
            with self._phase("post job") as phase:
                if self.state is not None:
                    self._check_ours(self._require_service())  # a rolled-back release runs no job
                phase.detail = self.hooks.job("post", self.result)
        with self._phase("promote") as phase:
            candidate = self.result.revision or ""
            annotations = promote_annotations(candidate, self.result.previous_revision)
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
