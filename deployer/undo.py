"""The way back, as run: put the service back as it was before the rollout (traffic, template, our
annotations, public access), re-deciding on every re-read; after a cancel too. What it writes is
decided by ``restore.restore_plan`` (pure); this module reads, writes and reports.
"""

from __future__ import annotations

import contextlib

from deployer import knative
from deployer.client import CloudRun
from deployer.errors import ApiError, Conflict
from deployer.knative import Obj
from deployer.restore import Restore, Undoing, after_refused_undo, join_reasons, restore_plan, undo_landed
from deployer.result import Outcome
from deployer.retry import retry_conflicts
from deployer.state import RolloutState
from deployer.writer import ServiceWriter, describe

ROLLBACK_WAIT = 60.0


class WayBack(ServiceWriter):
    """Undoing a rollout: this run's own, an adopted one (mode rollback) or one taken over."""

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
            if not undo_landed(plan.kind, written is not None):
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
            retry, named = after_refused_undo(isinstance(exc, Conflict), exc.status, exc.reason, named)
            return retry

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
