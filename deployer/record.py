"""What a new rollout records on the service (``state.RolloutState``), decided from explicit inputs:
the service as read, the settings, the run, and what this run planned. Also the template the
rollout deploys and the traffic its steps scale down. Pure rules, no I/O."""

from __future__ import annotations

from dataclasses import replace

from deployer import knative, traffic
from deployer.knative import Obj
from deployer.restore import named_template
from deployer.settings import Config, RunContext
from deployer.state import PREVIOUS_STABLE_ANNOTATION, STABLE_ANNOTATION, RolloutState
from deployer.traffic import Traffic


def pinned_base(current: Obj, service: str) -> tuple[Traffic, str]:
    """The traffic the steps scale down (``latestRevision`` entries pinned to the latest ready
    revision), and a warning when some of it still follows the latest revision ("" if none)."""
    latest_ready = (current.get("status") or {}).get("latestReadyRevisionName")
    base = traffic.pin_latest(knative.spec_traffic(current), latest_ready)
    if any(t.latest for t in base):
        return base, (
            f"Service {service} has no ready revision: the traffic that follows the latest revision "
            "will go to the new one as soon as it is ready."
        )
    return base, ""


def after_baseline(state: RolloutState, candidate: str) -> RolloutState:
    """The record of the candidate's write when the baseline's write (``baseline_only``) came first."""
    return replace(state, candidate=candidate, baseline_only=False)


def new_state(
    svc: Obj,
    candidate: str,
    base: Traffic,
    *,
    config: Config,
    ctx: RunContext,
    token: str,
    previous_revision: str,
    public_before: bool | None,
    baseline: str,
    started: str,
) -> RolloutState:
    """The record of a new rollout of ``candidate`` on ``svc`` as read: the service as it was (traffic,
    named template, stable annotations), the plan (tag, steps, base), and who owns it."""
    return RolloutState(
        before=traffic.to_spec(knative.spec_traffic(svc)),
        template=named_template(svc),
        stable=knative.annotation(svc, STABLE_ANNOTATION) or "",
        previous_stable=knative.annotation(svc, PREVIOUS_STABLE_ANNOTATION) or "",
        job=ctx.job,
        token=token,
        candidate=candidate,
        tag=config.tag,
        base=traffic.to_spec(base),
        steps=list(config.steps),
        step=traffic.shares(base).get(candidate, 0),
        run_id=ctx.run_id,
        run_attempt=ctx.run_attempt,
        run_url=ctx.run_url,
        image=config.image or "",
        previous_revision=previous_revision,
        started=started,
        latest=(svc.get("status") or {}).get("latestReadyRevisionName") or "",
        public_before=public_before,
        jobs=[name for name in (config.pre_job, config.post_job) if name] or None,
        baseline="" if config.dry_run else baseline,  # a dry run's server check: no revision
    )


def with_changes(state: RolloutState, svc: Obj, body: Obj) -> RolloutState:
    """``state`` recording the service-level labels and annotations ``body`` changes on ``svc``, on top
    of those an earlier write of the same rollout changed (the baseline's)."""
    changes = knative.chain_changes(state.metadata, knative.metadata_changes(svc, body))
    return replace(state, metadata=changes or None)


def candidate_template(
    current: Obj, base: Obj | None, config: Config, revision: str
) -> tuple[Obj, str, bool]:
    """The new template (from ``base``: the ``metadata`` input's template, else the service's) and its
    revision name, and whether it is the current one reused: when image and settings are unchanged,
    no new revision is made."""
    template = knative.new_template(base or current["spec"].get("template"), config, revision)
    current_template = current["spec"].get("template")
    current_name = knative.template_name(current)
    if current_name and knative.same_template(template, current_template):
        return current_template, current_name, True
    return template, template["metadata"]["name"], False


def reads_policy(allow: bool | None, dry_run: bool) -> bool:
    """Whether the run reads the access policy before deploying: only when it is to change it."""
    return allow is not None and not dry_run


def public_before(allow: bool, public: bool) -> bool | None:
    """What the record keeps of the access before the run (``public``: allUsers may invoke it now):
    None when the run changes nothing (it is already as ``allow`` asks), else the access to put back."""
    return None if public == allow else public


def next_revision_name(reason: str, suffix: str | None, name: str, retry: int) -> str | None:
    """The name to try when the candidate's name is taken by a revision with other settings (409
    ``ALREADY_EXISTS``: another run deployed other settings under the same commit and attempt):
    ``name-2``, ``name-3``... None when that is not the case or the name was given (``suffix``)."""
    if reason != "ALREADY_EXISTS" or suffix is not None:
        return None
    return f"{name}-{retry}"
