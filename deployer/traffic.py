"""Traffic blocks and their arithmetic: pin, add the candidate, step, restore. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from deployer.errors import TrafficError as TrafficError

LATEST = "LATEST"
BASELINE_TAG = "baseline"  # the tag of the baseline revision a comparison deploys (baseline: revision)


@dataclass(frozen=True)
class Target:
    """One entry of a Knative traffic block (``spec.traffic[]`` or resolved ``status.traffic[]``)."""

    revision: str | None = None  # None only when latest is True
    percent: int = 0
    tag: str | None = None
    latest: bool = False
    url: str | None = None  # output-only (status); never sent in spec, ignored in comparisons

    def describe(self) -> str:
        who = self.revision or "LATEST"
        return f"{who} {self.percent}%" + (f" (tag {self.tag})" if self.tag else "")


Traffic = tuple[Target, ...]


def from_spec(entries: list[dict[str, Any]] | None) -> Traffic:
    """Read ``spec.traffic`` (or resolved ``status.traffic``) into targets; empty means "latest gets 100"."""
    if not entries:
        return (Target(latest=True, percent=100),)
    return tuple(
        Target(
            revision=e.get("revisionName") or None,
            percent=int(e.get("percent") or 0),
            tag=e.get("tag") or None,
            latest=bool(e.get("latestRevision")),
            url=e.get("url") or None,
        )
        for e in entries
    )


def to_spec(traffic: Traffic) -> list[dict[str, Any]]:
    """Write targets as ``spec.traffic`` entries (``url`` is output-only and never sent)."""
    out: list[dict[str, Any]] = []
    for t in traffic:
        entry: dict[str, Any] = {"latestRevision": True} if t.latest else {"revisionName": t.revision}
        entry["percent"] = t.percent
        if t.tag:
            entry["tag"] = t.tag
        out.append(entry)
    return out


def validate(traffic: Traffic) -> list[str]:
    """The rules Cloud Run applies to a traffic block, as messages (empty when valid)."""
    problems = []
    if any(not 0 <= t.percent <= 100 for t in traffic):
        problems.append("every percent must be between 0 and 100")
    if sum(t.percent for t in traffic) != 100:
        problems.append(f"percents must sum to 100, not {sum(t.percent for t in traffic)}")
    tags = [t.tag for t in traffic if t.tag]
    if len(tags) != len(set(tags)):
        problems.append("tags must be unique")
    if any(t.latest == bool(t.revision) for t in traffic):
        problems.append("each entry names a revision or follows the latest one, not both")
    return problems


def shares(traffic: Traffic) -> dict[str, int]:
    """Percent per revision (entries of the same revision added up; 'LATEST' for unpinned ones)."""
    out: dict[str, int] = {}
    for t in traffic:
        key = t.revision or LATEST
        out[key] = out.get(key, 0) + t.percent
    return out


def tags(traffic: Traffic) -> dict[str, str]:
    """tag -> revision it points at."""
    return {t.tag: t.revision or LATEST for t in traffic if t.tag}


def top_revision(traffic: Traffic) -> str | None:
    """The revision serving the most traffic (first one on a tie), or None if nothing serves."""
    serving = [(p, r) for r, p in shares(traffic).items() if p > 0 and r != LATEST]
    return max(serving, key=lambda pr: pr[0])[1] if serving else None


def pin_latest(traffic: Traffic, latest_ready: str | None) -> Traffic:
    """Replace ``latestRevision: true`` by the revision it resolves to now.

    Without this, the share held by "latest" would silently move to our new revision as soon as it is
    Ready (what ``gcloud run deploy --no-traffic`` guards against the same way).
    """
    if latest_ready is None:
        return traffic
    return tuple(replace(t, revision=latest_ready, latest=False) if t.latest else t for t in traffic)


def apportion(weights: list[int], total: int) -> list[int]:
    """Integers proportional to ``weights`` that sum to ``total`` (largest remainder, ties by order)."""
    whole = sum(weights)
    if whole <= 0:
        return [0] * len(weights)
    exact = [w * total / whole for w in weights]
    out = [int(x) for x in exact]
    rest = total - sum(out)
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - out[i]), i))
    for i in order[:rest]:
        out[i] += 1
    return out


def with_candidate(
    base: Traffic, candidate: str, tag: str, percent: int, baseline: str | None = None
) -> Traffic:
    """``base`` with ``candidate`` at ``percent`` under ``tag``; the others scaled down proportionally.

    Every tag but ours stays where it was (at 0 % if its revision no longer serves); our tag moves to
    the candidate. Entries that drop to 0 % stay, untagged, at 0 %: a revision the traffic block
    names cannot be deleted, so a rollback always finds every revision it must restore (see
    ``promoted`` for the block that finally lets them go). Percents always sum to 100.

    With a ``baseline`` revision, it gets the candidate's share too (``baseline_share``) under the
    tag ``baseline``, and the revisions from before the run share what is left.
    """
    if not 0 <= percent <= 100:
        raise TrafficError(f"percent {percent} is not between 0 and 100")
    others = _untagged(tuple(t for t in base if t.revision not in (candidate, baseline)), tag)
    if baseline:
        others = _untagged(tuple(others), BASELINE_TAG)
    kept_tags = [replace(t, percent=0) for t in base if t.revision == candidate and t.tag and t.tag != tag]
    if sum(t.percent for t in others) == 0:
        percent = 100  # nothing else serves: the candidate must take it all
    twin = baseline_share(percent) if baseline else 0
    scaled = apportion([t.percent for t in others], 100 - percent - twin)
    out = [replace(t, percent=p) for t, p in zip(others, scaled, strict=True)]
    paired = [Target(revision=baseline, percent=twin, tag=BASELINE_TAG)] if baseline and percent < 100 else []
    return (*out, *paired, *kept_tags, Target(revision=candidate, percent=percent, tag=tag))


def baseline_share(percent: int) -> int:
    """The baseline's share when the candidate has ``percent``: the same, or what is left above 50 %."""
    return min(percent, 100 - percent)


def deployed(base: Traffic, candidate: str, tag: str, baseline: str | None = None) -> Traffic:
    """The first write: ``base`` unchanged but for our tag, which moves to ``candidate`` at 0 %
    (and, with a ``baseline`` revision, the tag ``baseline``, which moves to it at 0 %)."""
    out = tuple(replace(t, tag=None) if t.tag == tag and t.revision != candidate else t for t in base)
    if baseline:
        out = (*deployed(out, baseline, BASELINE_TAG),)
    if any(t.revision == candidate and t.tag == tag for t in out):
        return out  # the candidate is a revision from before (same settings), already ours
    return (*out, Target(revision=candidate, percent=0, tag=tag))


def deployed_detail(base: Traffic, candidate: str, tag: str) -> str:
    """What the first write did, in words that never call a serving revision one "with no traffic"
    (a candidate that is a revision from before keeps the share it had)."""
    share = shares(deployed(base, candidate, tag)).get(candidate, 0)
    if share:
        return f"revision {candidate} tagged {tag!r}, already serving {share} % before this run"
    return f"revision {candidate} tagged {tag!r} with no traffic"


def at_step(base: Traffic, candidate: str, tag: str, percent: int, baseline: str | None = None) -> Traffic:
    """What the rollout writes at ``percent`` (0: the first write). Every pre-run revision stays
    referenced (at 0 % if its share scaled to nothing) up to and including the 100 % step, so cleanup
    cannot delete what a rollback needs while the rollout bakes, pauses or runs its post job; only
    the promote lets them go (``promoted``), a write that moves no request (``same_routes``). The
    baseline revision, if any, has the candidate's share below 100 % and is gone at 100 %."""
    if percent == 0:
        return deployed(base, candidate, tag, baseline)
    return with_candidate(base, candidate, tag, percent, baseline)


def promoted(base: Traffic, candidate: str, tag: str) -> Traffic:
    """The promoted block: 100 % to the candidate, foreign tags kept, untagged 0 % entries dropped."""
    return routing(with_candidate(base, candidate, tag, 100))


def routing(block: Traffic) -> Traffic:
    """The entries that route something (a share or a tag): dropping the others changes no request's
    destination, only which revisions the block keeps referenced."""
    return tuple(t for t in block if t.percent or t.tag)


def same_routes(a: Traffic, b: Traffic) -> bool:
    """Whether two blocks send every request (and every tag) to the same revisions: they differ at
    most by entries that route nothing, so writing one over the other needs no wait for routes."""
    return same(routing(a), routing(b))


def restore(before: Traffic, candidate: str, tag: str, *, keep_tag: bool = True) -> Traffic:
    """Traffic exactly as ``before`` (shares, tags -- ours included, if another revision had it --
    and ``latestRevision`` entries), plus our tag on ``candidate`` at 0 % when ``keep_tag`` and no
    entry of ``before`` uses that tag: the failed candidate stays reachable for debugging only under
    a tag nobody else had."""
    if keep_tag and tag not in tags(before):
        return (*before, Target(revision=candidate, percent=0, tag=tag))
    return before


def without(block: Traffic, gone: set[str]) -> Traffic:
    """``block`` without the entries of revisions that no longer exist, their share given to the
    remaining entries in proportion to theirs (equally if those all serve 0 %); with nothing left,
    the latest revision gets everything."""
    kept = [t for t in block if t.latest or t.revision not in gone]
    if not kept:
        return (Target(latest=True, percent=100),)
    weights = [t.percent for t in kept]
    if sum(weights) == 0:
        weights = [1] * len(kept)
    extra = apportion(weights, 100 - sum(t.percent for t in kept))
    return tuple(replace(t, percent=t.percent + e) for t, e in zip(kept, extra, strict=True))


def same(a: Traffic, b: Traffic) -> bool:
    """Whether two blocks route the same (entry order and URLs aside)."""

    def key(block: Traffic) -> list[tuple[str, int, str, bool]]:
        return sorted((t.revision or "", t.percent, t.tag or "", t.latest) for t in block)

    return key(a) == key(b)


def plan(
    base: Traffic, candidate: str, tag: str, steps: tuple[int, ...], baseline: str | None = None
) -> list[Traffic]:
    """Traffic after the first write and after each step."""
    return [at_step(base, candidate, tag, p, baseline) for p in (0, *(p for p in steps if p))]


def _untagged(traffic: Traffic | list[Target], tag: str) -> list[Target]:
    """``traffic`` with our tag removed (the entry stays, untagged, so its revision stays named)."""
    return [replace(t, tag=None) if t.tag == tag else t for t in traffic]


def cleaned_tags(written: Traffic, now: Traffic, ours: set[str]) -> set[str]:
    """The tags Cloud Run's tag-quota cleanup removed between ``written`` and ``now`` that are not
    ``ours`` (tags this run wrote): empty when anything else changed, one of ours included (see
    removed_tags)."""
    gone = removed_tags(written, now)
    return set() if gone & ours else gone


def removed_tags(written: Traffic, now: Traffic) -> set[str]:
    """The tags gone between ``written`` and ``now`` as Cloud Run's tag-quota cleanup removes them:
    empty when anything else changed.

    Cloud Run's quotas page (revision tags, 2,000 per project and region): "When the revision tag limit
    is exceeded, Cloud Run executes tag cleanup on the service. For the service for which a new tag is
    being created, tags that don't have a specified traffic percentage are automatically deleted in
    historical order." So only entries with a tag and 0 % may be gone, and every other entry is exactly
    as written.
    """
    remaining = list(now)
    gone: list[Target] = []
    for target in written:
        match = next((t for t in remaining if _key(t) == _key(target)), None)
        if match is None:
            gone.append(target)
        else:
            remaining.remove(match)
    if remaining or not gone:
        return set()
    if any(t.percent or not t.tag for t in gone):
        return set()
    return {t.tag for t in gone if t.tag}


def only_tag_cleanup(written: Traffic, now: Traffic, ours: set[str]) -> bool:
    """Whether ``now`` is ``written`` less some tags Cloud Run's tag cleanup removed (see cleaned_tags)."""
    return bool(cleaned_tags(written, now, ours))


def without_tags(block: Traffic, tags: set[str]) -> Traffic:
    """``block`` without the 0 % entries of ``tags`` (Cloud Run deleted them: writing them back would
    create them anew and make the cleanup delete other tags instead)."""
    return tuple(t for t in block if not (t.tag in tags and not t.percent))


def _key(t: Target) -> tuple[str, int, str, bool]:
    return (t.revision or "", t.percent, t.tag or "", t.latest)
