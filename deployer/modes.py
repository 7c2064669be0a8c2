"""What the modes ``promote`` and ``rollback`` act on, decided from the service as read: pure rules
(reads come in as callables), no writes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from deployer import knative
from deployer.errors import RolloutFailed
from deployer.knative import Obj
from deployer.state import PREVIOUS_STABLE_ANNOTATION, STABLE_ANNOTATION, RolloutState
from deployer.traffic import Target, Traffic


def nothing_to_promote(service: str) -> str:
    return f"nothing to promote: no unfinished rollout is recorded on service {service}"


def resumed(recorded: RolloutState) -> str:
    """The phase detail of a rollout resumed by mode promote."""
    return f"{recorded.candidate} at {recorded.step}% (from {recorded.run_url or 'an earlier run'})"


def rollback_target(
    svc: Obj, rollback_to: str | None, get_revision: Callable[[str], Obj | None], service: str
) -> str:
    """The revision mode rollback sends 100 % to (with no rollout recorded): ``rollback_to``, else the
    previous stable revision a promote recorded. Refused (RolloutFailed) when there is none, it does
    not exist, or it cannot serve."""
    target = rollback_to or knative.annotation(svc, PREVIOUS_STABLE_ANNOTATION)
    if not target:
        raise RolloutFailed(
            "no revision to roll back to: set 'rollback_to', or promote a rollout with this action "
            f"first (it records the previous stable revision on {service})"
        )
    revision = get_revision(target)
    if revision is None:
        raise RolloutFailed(f"revision {target} does not exist in service {service}")
    ready = knative.condition(revision, "Ready")
    if ready.status != "True":
        raise RolloutFailed(f"revision {target} cannot serve: {ready.describe()}")
    return target


def rollback_write(svc: Obj, target: str) -> tuple[Traffic, dict[str, str | None]]:
    """What mode rollback writes: 100 % to ``target``, every tag kept at 0 %, ``target`` marked stable."""
    tagged = tuple(replace(t, percent=0) for t in knative.spec_traffic(svc) if t.tag)
    return (Target(revision=target, percent=100), *tagged), {STABLE_ANNOTATION: target}
