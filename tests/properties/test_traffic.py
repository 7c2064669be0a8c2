"""Property tests: every block the planner produces is one Cloud Run accepts, and rollback is exact."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from deployer import traffic
from deployer.traffic import Target

OUR_TAG = "canary"
CANDIDATE = "svc-new"

revision_names = st.sampled_from([f"svc-{i:05d}" for i in range(1, 9)])
tag_names = st.sampled_from(["blue", "green", "stable", "pr-7", OUR_TAG])


@st.composite
def starting_traffic(draw: st.DrawFn) -> traffic.Traffic:
    """Any valid pinned traffic block, with zero-percent tagged entries and our own tag somewhere."""
    serving = draw(st.lists(revision_names, min_size=1, max_size=5))
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=len(serving) - 1, max_size=len(serving) - 1)))
    percents = [b - a for a, b in zip([0, *cuts], [*cuts, 100], strict=True)]
    tags = draw(st.lists(tag_names, unique=True, max_size=4))
    entries = [Target(revision=r, percent=p) for r, p in zip(serving, percents, strict=True)]
    for tag in tags:
        on_serving_entry: bool = draw(st.booleans())
        if entries and on_serving_entry:
            i = draw(st.integers(0, len(entries) - 1))
            if entries[i].tag is None:
                entries[i] = Target(revision=entries[i].revision, percent=entries[i].percent, tag=tag)
                continue
        entries.append(Target(revision=draw(revision_names), percent=0, tag=tag))
    return tuple(entries)


steps_strategy = st.lists(st.integers(1, 100), min_size=1, max_size=5, unique=True).map(sorted)


def foreign_tags(block: traffic.Traffic) -> dict[str, str]:
    return {t: r for t, r in traffic.tags(block).items() if t != OUR_TAG}


@given(starting_traffic(), steps_strategy)
def test_every_planned_block_is_valid_and_keeps_foreign_tags(base: traffic.Traffic, steps: list[int]) -> None:
    for block in traffic.plan(base, CANDIDATE, OUR_TAG, tuple(steps)):
        assert traffic.validate(block) == []
        assert foreign_tags(block) == foreign_tags(base)
        assert traffic.tags(block)[OUR_TAG] == CANDIDATE


@given(starting_traffic(), steps_strategy)
def test_candidate_gets_exactly_each_step(base: traffic.Traffic, steps: list[int]) -> None:
    blocks = traffic.plan(base, CANDIDATE, OUR_TAG, tuple(steps))
    assert traffic.shares(blocks[0]).get(CANDIDATE, 0) == 0
    for p, block in zip(steps, blocks[1:], strict=True):
        assert traffic.shares(block)[CANDIDATE] == p


@given(starting_traffic(), steps_strategy)
def test_others_scale_down_proportionally(base: traffic.Traffic, steps: list[int]) -> None:
    before = traffic.shares(base)
    # Each entry is rounded on its own (largest remainder), so a revision named by k entries (one per
    # tag, say) may be off by less than k points in all, never more.
    entries = {rev: sum(1 for t in base if t.revision == rev) for rev in before}
    for p in steps:
        after = traffic.shares(traffic.with_candidate(base, CANDIDATE, OUR_TAG, p))
        for rev, share in before.items():
            exact = share * (100 - p) / 100
            assert abs(after.get(rev, 0) - exact) < entries[rev] + 1e-9, (rev, share, p, after)


@given(starting_traffic(), steps_strategy)
def test_rollback_restores_every_entry_exactly(base: traffic.Traffic, steps: list[int]) -> None:
    restored = traffic.restore(base, CANDIDATE, OUR_TAG)
    assert traffic.validate(restored) == []
    if OUR_TAG in traffic.tags(base):  # another revision had our tag: it gets it back, the candidate none
        assert restored == base
    else:  # the candidate stays reachable under our tag, which nobody else had
        assert restored == (*base, Target(CANDIDATE, 0, OUR_TAG))
    # Whatever step the rollout had reached, the way back loses no foreign tag that the step carried
    # (nor brings one that was not there before the run).
    for p in steps:
        at_step = traffic.with_candidate(base, CANDIDATE, OUR_TAG, p)
        assert traffic.shares(at_step)[CANDIDATE] > 0
        assert foreign_tags(at_step) == foreign_tags(restored), (p, at_step, restored)


@given(starting_traffic())
def test_rollback_without_tag_is_the_traffic_before(base: traffic.Traffic) -> None:
    assert traffic.restore(base, CANDIDATE, OUR_TAG, keep_tag=False) == base


@given(starting_traffic(), steps_strategy)
def test_every_step_keeps_every_revision_from_before_named(base: traffic.Traffic, steps: list[int]) -> None:
    """No revision from before the run leaves the traffic block before the promote (the 100 % step
    included: its post job may still fail and roll back): none can be deleted. The promote only drops
    entries that route nothing, so it moves no route."""
    named = {t.revision for t in base}
    promoted = traffic.promoted(base, CANDIDATE, OUR_TAG)
    for p, block in zip((0, *steps), traffic.plan(base, CANDIDATE, OUR_TAG, tuple(steps)), strict=True):
        assert named <= {t.revision for t in block}
        if p == 100:
            assert traffic.same_routes(block, promoted)
    assert traffic.validate(promoted) == []
    assert all(t.percent or t.tag for t in promoted)


@given(starting_traffic(), st.sets(revision_names, min_size=1))
def test_shares_of_deleted_revisions_go_to_the_others_in_proportion(
    base: traffic.Traffic, gone: set[str]
) -> None:
    out = traffic.without(base, gone)
    assert traffic.validate(out) == [] or out == (Target(latest=True, percent=100),)
    assert not gone & {t.revision for t in out}
    kept = {t.revision for t in base} - gone
    if not kept:
        assert out == (Target(latest=True, percent=100),)
        return
    before = {r: p for r, p in traffic.shares(base).items() if r in kept}
    if sum(before.values()):
        for rev, share in before.items():
            exact = share * 100 / sum(before.values())
            assert abs(traffic.shares(out)[rev] - exact) < len(base) + 1e-9


def test_same_ignores_order_and_urls() -> None:
    a = (Target("a", 60, "x", url="https://x"), Target("b", 40))
    assert traffic.same(a, (Target("b", 40), Target("a", 60, "x")))
    assert not traffic.same(a, (Target("b", 40), Target("a", 60, "y")))


@given(st.lists(st.integers(0, 1000), min_size=1, max_size=10), st.integers(0, 100))
def test_apportion_sums_and_stays_within_one(weights: list[int], total: int) -> None:
    out = traffic.apportion(weights, total)
    if sum(weights) == 0:
        assert out == [0] * len(weights)
        return
    assert sum(out) == total
    for w, o in zip(weights, out, strict=True):
        assert abs(o - w * total / sum(weights)) < 1


def test_pinning_latest_keeps_its_share_and_tag() -> None:
    base = traffic.from_spec([{"latestRevision": True, "percent": 100, "tag": "current"}])
    pinned = traffic.pin_latest(base, "svc-00002")
    assert pinned == (Target(revision="svc-00002", percent=100, tag="current"),)
    assert traffic.to_spec(pinned) == [{"revisionName": "svc-00002", "percent": 100, "tag": "current"}]


def test_empty_spec_means_latest_gets_everything() -> None:
    assert traffic.from_spec([]) == (Target(latest=True, percent=100),)


def test_a_90_10_split_over_two_revisions_scales_to_the_step() -> None:
    base = (Target("svc-a", 90, "blue"), Target("svc-b", 10))
    assert traffic.with_candidate(base, CANDIDATE, OUR_TAG, 50) == (
        Target("svc-a", 45, "blue"),
        Target("svc-b", 5),
        Target(CANDIDATE, 50, OUR_TAG),
    )
    assert traffic.with_candidate(base, CANDIDATE, OUR_TAG, 100) == (
        Target("svc-a", 0, "blue"),
        Target("svc-b", 0),  # kept named until the promote, so that it cannot be deleted
        Target(CANDIDATE, 100, OUR_TAG),
    )
    assert traffic.promoted(base, CANDIDATE, OUR_TAG) == (
        Target("svc-a", 0, "blue"),
        Target(CANDIDATE, 100, OUR_TAG),
    )


def test_validate_reports_what_cloud_run_refuses() -> None:
    bad = (Target("a", 60, "x"), Target("b", 50, "x"), Target("c", 0, latest=True))
    problems = traffic.validate(bad)
    assert "percents must sum to 100, not 110" in problems
    assert "tags must be unique" in problems
    assert any("not both" in p for p in problems)


def test_the_deploy_detail_never_says_no_traffic_of_a_serving_revision() -> None:
    """A candidate that is a revision from before (same name and settings) keeps its share."""
    base = (Target(revision=CANDIDATE, percent=100),)
    detail = traffic.deployed_detail(base, CANDIDATE, OUR_TAG)
    assert "no traffic" not in detail and "already serving 100 %" in detail
    fresh = traffic.deployed_detail((Target(revision="svc-00001", percent=100),), CANDIDATE, OUR_TAG)
    assert fresh == f"revision {CANDIDATE} tagged 'canary' with no traffic"
