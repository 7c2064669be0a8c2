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
    for p in steps:
        after = traffic.shares(traffic.with_candidate(base, CANDIDATE, OUR_TAG, p))
        for rev, share in before.items():
            exact = share * (100 - p) / 100
            assert abs(after.get(rev, 0) - exact) < 1 + 1e-9, (rev, share, p, after)


@given(starting_traffic(), steps_strategy)
def test_rollback_restores_every_share_and_tag_exactly(base: traffic.Traffic, steps: list[int]) -> None:
    restored = traffic.restore(base, CANDIDATE, OUR_TAG)
    assert traffic.validate(restored) == []
    base_shares = {r: p for r, p in traffic.shares(base).items() if p}
    assert {r: p for r, p in traffic.shares(restored).items() if p} == base_shares
    assert foreign_tags(restored) == foreign_tags(base)
    assert traffic.tags(restored)[OUR_TAG] == CANDIDATE
    # Whatever step the rollout had reached, the way back is that same write, and it loses no tag
    # that the step carried (nor brings one that was not there before the run).
    for p in steps:
        at_step = traffic.with_candidate(base, CANDIDATE, OUR_TAG, p)
        assert traffic.shares(at_step)[CANDIDATE] > 0
        assert traffic.tags(at_step) == traffic.tags(restored), (p, at_step, restored)


@given(starting_traffic())
def test_rollback_without_tag_leaves_no_trace_of_the_candidate(base: traffic.Traffic) -> None:
    restored = traffic.restore(base, CANDIDATE, OUR_TAG, keep_tag=False)
    assert CANDIDATE not in traffic.shares(restored)
    assert OUR_TAG not in traffic.tags(restored)
    assert traffic.validate(restored) == []


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
        Target(CANDIDATE, 100, OUR_TAG),
    )


def test_validate_reports_what_cloud_run_refuses() -> None:
    bad = (Target("a", 60, "x"), Target("b", 50, "x"), Target("c", 0, latest=True))
    problems = traffic.validate(bad)
    assert "percents must sum to 100, not 110" in problems
    assert "tags must be unique" in problems
    assert any("not both" in p for p in problems)
