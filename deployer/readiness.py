"""When a change to a service, a revision or a job has settled, failed for good, or is still under way,
and the one wait loop (schedule, deadline, progress lines) the rollout and the jobs poll with.

The rules are gcloud's poller's: a False condition for the current generation is final, and its
reason and message are the error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol, TypeVar

from deployer import knative
from deployer.errors import JobFailed, RevisionFailed, RolloutFailed
from deployer.knative import Obj

T = TypeVar("T")

# Polling (see poll_delays): every 0.25 s for the first 2 s, then backing off to one read a second;
# once a change of the same kind has settled in this rollout, around the time it took.
POLL_FIRST, POLL_FAST_FOR, POLL_FACTOR, POLL_MAX = 0.25, 2.0, 1.5, 1.0
POLL_LEAD, POLL_NEAR, POLL_NEAR_MIN, POLL_NEAR_UNTIL = 0.95, 0.05, 0.1, 1.15
POLL_LEARN_FROM = 0.75  # quicker changes cost three reads or fewer anyway: keep the plain schedule
PROGRESS_EVERY = 5.0


class Revisions(Protocol):
    """What readiness reads besides the service: one revision (``client.CloudRun`` has it)."""

    def get_revision(self, name: str) -> Obj | None: ...


def poll_delays(expected: float = 0.0) -> Iterator[float]:
    """The sleeps between reads of a change that has not settled yet (the PUT's answer is the first look).

    With nothing to go by: every POLL_FIRST s for the first POLL_FAST_FOR s (most traffic changes settle
    then), then backing off by POLL_FACTOR to one read every POLL_MAX s. With ``expected``, the time an
    earlier change of the same kind took in this rollout (they take about as long): the first read at
    POLL_LEAD of it, then every POLL_NEAR of it (POLL_NEAR_MIN s at least) up to POLL_NEAR_UNTIL of it,
    then as above. A rollout's later traffic steps then cost two or three reads each instead of one per
    0.25 s, and are still seen within a twentieth of their time (0.1 s at least).
    """
    elapsed = 0.0
    if expected > POLL_FIRST:
        near = max(POLL_NEAR * expected, POLL_NEAR_MIN)
        elapsed = POLL_LEAD * expected
        yield elapsed
        while elapsed < POLL_NEAR_UNTIL * expected:
            yield near
            elapsed += near
    delay = POLL_FIRST
    while True:
        yield delay
        elapsed += delay
        if elapsed >= POLL_FAST_FOR:
            delay = min(delay * POLL_FACTOR, POLL_MAX)


class Progress:
    """When a wait says how it is going: every ``every`` seconds, and (``on_change``) as soon as the
    status changed, at most that often."""

    def __init__(self, say: Callable[[float, str], None], every: float, on_change: float | None = None):
        self.say, self.every, self.on_change = say, every, on_change
        self.last_at, self.last_text = 0.0, ""

    def __call__(self, elapsed: float, status: str) -> None:
        since = elapsed - self.last_at
        changed = self.on_change is not None and status != self.last_text and since >= self.on_change
        if since >= self.every or changed:
            self.say(elapsed, status)
            self.last_at, self.last_text = elapsed, status


def wait(
    look: Callable[[], tuple[T | None, str]],
    *,
    timeout: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    expired: Callable[[str], BaseException],
    delays: Iterator[float] | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> T:
    """Look until ``look`` returns what was waited for (it raises when that will never come); between
    looks, sleep by ``delays`` (``poll_delays()``), never past ``timeout``; then raise ``expired(status)``."""
    delays = delays or poll_delays()
    start = clock()
    while True:
        done, status = look()
        if done is not None:
            return done
        elapsed = clock() - start
        if elapsed >= timeout:
            raise expired(status)
        if progress is not None:
            progress(elapsed, status)
        sleep(min(next(delays), timeout - elapsed))


def service_readiness(svc: Obj, candidate: str, api: Revisions, service: str) -> tuple[bool, str]:
    """(done, what we are waiting for) for a fresh status; raises as soon as anything failed.

    As gcloud's poller: a False condition of the service for the current generation is final,
    and its reason and message are the error. After a deploy that is any of Ready,
    ConfigurationsReady and RoutesReady. A traffic change (step, rollback) does not touch the
    configuration: a failed latest revision keeps ConfigurationsReady, and so Ready, False after
    traffic went back to good revisions, so there only the routes count.
    """
    if candidate:
        waiting = candidate_readiness(svc, candidate, api)
        if waiting:
            return False, waiting
        kinds: tuple[str, ...] = ("ConfigurationsReady", "RoutesReady", "Ready")
    elif knative.condition(svc, "ConfigurationsReady").status == "False":
        kinds = ("RoutesReady",)
    else:
        kinds = ("RoutesReady", "Ready")
    for kind in kinds:
        found = knative.condition(svc, kind)
        if found.status == "False":
            raise RolloutFailed(f"service {service} failed: {found.describe()}")
    routes = knative.condition(svc, "RoutesReady")
    return routes.status == "True", routes.describe()


def candidate_readiness(svc: Obj, candidate: str, api: Revisions) -> str:
    """What the candidate still waits for ("" once Ready); RevisionFailed when it never will be."""
    configs = knative.condition(svc, "ConfigurationsReady")
    latest_ready = (svc.get("status") or {}).get("latestReadyRevisionName")
    if configs.status == "Unknown" and latest_ready != candidate:
        return f"revision {candidate}: {configs.describe()}"
    revision = api.get_revision(candidate)
    ready = knative.condition(revision, "Ready")
    if ready.status == "False":
        raise RevisionFailed(f"revision {candidate} is not ready: {ready.reason}: {ready.message}".strip())
    if configs.status == "False":
        created = "was never created" if revision is None else "is not ready"
        raise RevisionFailed(f"revision {candidate} {created}: {configs.describe()}")
    if revision is None:
        raise RevisionFailed(
            f"revision {candidate} was never created (the configuration is {configs.describe()})"
        )
    return "" if ready.status == "True" else f"revision {candidate}: {ready.describe()}"


def job_readiness(job: Obj, generation: int, name: str) -> tuple[bool, str]:
    """(ready, its Ready condition) of a job we wrote (``generation``); JobFailed once it never will be."""
    ready = knative.condition(job, "Ready")
    if knative.is_fresh(job, generation) and ready.status == "True":
        return True, ready.describe()
    if knative.is_fresh(job, generation) and ready.status == "False":
        raise JobFailed(f"job {name} is not ready: {ready.reason}: {ready.message}".rstrip(": "))
    return False, ready.describe()


def learned(expected: float | None, took: float) -> float | None:
    """The time the next change of the same kind is expected to take (``poll_delays``): the shortest
    so far, learned only from changes slower than POLL_LEARN_FROM s (None: nothing learned yet)."""
    if took < POLL_LEARN_FROM:
        return expected
    return took if expected is None else min(expected, took)
