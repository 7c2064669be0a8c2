"""The action's own bookkeeping on a service, not a Knative concept: the unfinished rollout it
records in an annotation (so a post step, a re-run, promote and rollback can finish or undo it), the
stable revisions it remembers, and the rule that names the revisions it creates."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from deployer import traffic
from deployer.knative import Obj, annotation
from deployer.settings import RunContext
from deployer.traffic import Traffic

STATE_ANNOTATION = "run-canary.dev/rollout"
STABLE_ANNOTATION = "run-canary.dev/stable"
PREVIOUS_STABLE_ANNOTATION = "run-canary.dev/previous-stable"


@dataclass(frozen=True)
class RolloutState:
    """What a later run (post step, re-run, promote, rollback) needs to finish or undo this rollout.

    The service before the run is recorded whole where a rollback needs it: ``before`` is its
    ``spec.traffic`` as it was (``latestRevision`` entries included), ``template`` its revision
    template named after the revision it had created (writing it back makes that revision the
    latest again, without creating one), ``stable``/``previous_stable`` its annotations. Who owns
    the rollout is one process: run id, attempt, job and a random ``token``.
    """

    candidate: str
    tag: str
    base: list[dict[str, Any]]  # spec.traffic before the run, pinned: what the steps scale down
    steps: list[int]
    step: int = 0  # the candidate's current share
    keep_tag: bool = True  # whether a rollback leaves our tag on the candidate
    # The run that owns the rollout, copied from settings.RunContext (hence the same field names).
    run_id: str = ""
    run_attempt: str = ""
    run_url: str = ""
    image: str = ""
    previous_revision: str = ""
    started: str = ""
    before: list[dict[str, Any]] | None = None  # spec.traffic before the run, as it was
    template: dict[str, Any] | None = None  # spec.template before the run, named
    stable: str = ""
    previous_stable: str = ""
    job: str = ""
    token: str = ""
    # Paused on purpose (``steps`` ended below 100): the run that wrote it is over and hands the
    # rollout on to a later ``mode: promote`` or ``rollback``; its post step must leave it alone.
    paused: bool = False
    # What a ``latestRevision`` entry of ``before`` resolved to (status.latestReadyRevisionName):
    # a rollback sends that share there even when the template changed since (a new latest).
    latest: str = ""
    # The service's own labels and annotations the first write changed: kind -> key -> [before, ours]
    # (None: absent). A rollback puts back each one nobody changed since.
    metadata: dict[str, dict[str, list[str | None]]] | None = None
    # Whether allUsers could invoke the service before the run, when this run changes it (None: no change).
    public_before: bool | None = None
    # The Cloud Run jobs whose executions this rollout may start (pre_job, post_job): whoever ends or
    # takes over the rollout stops those executions of them that carry its token (deployer.jobs).
    jobs: list[str] | None = None
    # baseline: revision -- the baseline revision (tag ``baseline``, the candidate's share at each
    # step), and whether only its write (the one before the candidate's) has landed so far.
    baseline: str = ""
    baseline_only: bool = False

    @property
    def base_traffic(self) -> Traffic:
        return traffic.from_spec(self.base)

    @property
    def before_traffic(self) -> Traffic:
        """The traffic to restore (older records have only the pinned base)."""
        return traffic.from_spec(self.before) if self.before is not None else self.base_traffic

    def written(self) -> Traffic:
        """The traffic this rollout wrote last, together with this record (its ``step``)."""
        if self.baseline_only:
            return traffic.deployed(self.base_traffic, self.baseline, traffic.BASELINE_TAG)
        return traffic.at_step(self.base_traffic, self.candidate, self.tag, self.step, self.baseline or None)

    def own_tags(self) -> set[str]:
        """The tags this rollout writes: the candidate's, and ``baseline`` with a baseline revision."""
        return {self.tag} | ({traffic.BASELINE_TAG} if self.baseline else set())

    def same_owner(self, other: RolloutState) -> bool:
        """Whether both records come from one process (older records: one run attempt)."""
        if self.token or other.token:
            return self.token == other.token
        return (self.run_id, self.run_attempt) == (other.run_id, other.run_attempt)

    def owner(self) -> str:
        """Who started this rollout, for messages."""
        job = f" (job {self.job})" if self.job else ""
        return (self.run_url or f"run {self.run_id or '?'} attempt {self.run_attempt or '?'}") + job

    def to_annotation(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_service(cls, service: Obj | None) -> RolloutState | None:
        """The unfinished rollout recorded on ``service``; None if none (or unreadable)."""
        raw = annotation(service, STATE_ANNOTATION)
        if not raw:
            return None
        try:
            data = json.loads(raw)
            known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
            return cls(**known)
        except (ValueError, TypeError):
            return None

    def at_step(self, percent: int) -> RolloutState:
        return RolloutState(**{**asdict(self), "step": percent})


def derive_suffix(ctx: RunContext, now: datetime | None = None) -> str:
    """A revision suffix that is stable across re-runs of one attempt and unique across attempts."""
    sha = ctx.sha.lower()
    if re.fullmatch(r"[0-9a-f]{7,64}", sha):
        attempt = ctx.run_attempt if re.fullmatch(r"[0-9]{1,6}", ctx.run_attempt) else "1"
        return f"{sha[:7]}-{attempt}"
    moment = now or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y%m%d-%H%M%S")
