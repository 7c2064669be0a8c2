"""Instances per revision under service-level scaling: what each canary step gives the candidate.

Cloud Run divides a service-level instance count among the revisions that serve by their share of
traffic (https://cloud.google.com/run/docs/configuring/services/manual-scaling, "Traffic splits for
manual scaling": "each revision is allocated instances proportionally, based on traffic split,
similar to traffic splitting with service-level minimum instances. If the number of revisions
receiving traffic exceeds the manual instance count, some of the revisions will have no instances.
Traffic sent to those revisions will get the same error as if the revisions were disabled.").
The service-level settings are the annotations ``run.googleapis.com/scalingMode`` (``manual``),
``run.googleapis.com/manualInstanceCount`` and ``run.googleapis.com/minScale`` (run.v1.json,
``ObjectMeta.annotations``: "Service"). Under manual scaling a step that leaves the candidate no
instance fails its requests, so it is refused before any write; a service-level minimum only keeps
instances warm (the candidate still scales from zero), so it is reported, not refused. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from deployer import knative, traffic
from deployer.knative import Obj

SCALING_MODE = "run.googleapis.com/scalingMode"
MANUAL_COUNT = "run.googleapis.com/manualInstanceCount"
SERVICE_MIN = "run.googleapis.com/minScale"


@dataclass(frozen=True)
class Scaling:
    """A service-level instance count: ``manual`` (the instances there are) or a minimum (kept warm)."""

    count: int
    manual: bool

    def describe(self) -> str:
        return f"manual scaling, {self.count} instances" if self.manual else f"service minimum {self.count}"


@dataclass(frozen=True)
class StepInstances:
    """The instances a step's traffic gives the candidate, its baseline (None: no baseline revision
    serves at that step) and the other serving revisions."""

    percent: int
    candidate: int
    others: int
    baseline: int | None = None

    def describe(self) -> str:
        twin = "" if self.baseline is None else f", baseline {self.baseline}"
        return f"{self.percent}%: candidate {self.candidate}{twin}, others {self.others}"

    @property
    def starved(self) -> bool:
        """A revision of ours that serves at this step but gets no instance: its requests fail."""
        return self.candidate == 0 or self.baseline == 0


def service_scaling(service: Obj) -> Scaling | None:
    """The service-level count of ``service``, None when it has none (revision-level scaling only)."""
    manual = (knative.annotation(service, SCALING_MODE) or "").lower() == "manual"
    text = knative.annotation(service, MANUAL_COUNT if manual else SERVICE_MIN)
    if text is None or not text.strip().isdigit():
        return None
    return Scaling(int(text), manual)


def split(count: int, block: traffic.Traffic) -> dict[str, int]:
    """Instances per serving revision: ``count`` divided by traffic share (largest remainder, as
    ``traffic.apportion``; Cloud Run does not document its rounding)."""
    share = {r: p for r, p in traffic.shares(block).items() if p > 0}
    return dict(zip(share, traffic.apportion(list(share.values()), count), strict=True))


def _base(service: Obj) -> traffic.Traffic:
    latest_ready = (service.get("status") or {}).get("latestReadyRevisionName")
    return traffic.pin_latest(knative.spec_traffic(service), latest_ready)


def _step(
    count: int, base: traffic.Traffic, candidate: str, tag: str, percent: int, baseline: str | None
) -> StepInstances:
    given = split(count, traffic.at_step(base, candidate, tag, percent, baseline))
    mine = given.get(candidate, 0)
    twin = given.get(baseline) if baseline else None  # split names every revision with a share
    return StepInstances(percent, mine, sum(given.values()) - mine - (twin or 0), twin)


def per_step(
    service: Obj, candidate: str, tag: str, steps: tuple[int, ...], baseline: str | None = None
) -> list[StepInstances]:
    """For each step with traffic, the candidate's, its baseline's (``baseline: revision``) and the
    others' instances (empty: no service-level scaling on ``service``)."""
    scaling = service_scaling(service)
    if scaling is None:
        return []
    base = _base(service)
    return [_step(scaling.count, base, candidate, tag, p, baseline) for p in steps if p > 0]


def check(
    service: Obj, candidate: str, tag: str, steps: tuple[int, ...], baseline: str | None = None
) -> tuple[str, str | None]:
    """(what each step gives, for the log and summary; why the plan is refused, or None)."""
    scaling = service_scaling(service)
    plan = per_step(service, candidate, tag, steps, baseline)
    if scaling is None or not plan:
        return "", None
    detail = f"{scaling.describe()}: " + "; ".join(s.describe() for s in plan)
    starved = [s.percent for s in plan if s.starved]
    if not scaling.manual or not starved:
        return detail, None
    base = _base(service)
    smallest = next(
        (p for p in range(1, 101) if not _step(scaling.count, base, candidate, tag, p, baseline).starved), 0
    )
    start = f"Start the steps at {smallest}% or more, or raise" if smallest else "Raise"
    whom = "the candidate or its baseline" if baseline else "the candidate"
    return detail, (
        f"with {scaling.describe()} on the service, the step(s) {', '.join(f'{p}%' for p in starved)} "
        f"would give {whom} no instance (a share of {scaling.count} that rounds to 0), so its requests "
        f"would fail ({detail}). {start} {MANUAL_COUNT} "
        "(gcloud beta run services update SERVICE --scaling N)."
    )
