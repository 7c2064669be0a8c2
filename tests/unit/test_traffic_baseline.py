"""Baseline traffic arithmetic: the baseline revision gets the candidate's share (what is left above
50 %), the revisions from before the run the rest; promote and restore leave no trace of it."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deployer import traffic
from deployer.traffic import BASELINE_TAG, Target

BASE = (Target(revision="svc-a", percent=80), Target(revision="svc-b", percent=20, tag="old"))


def shares(block: traffic.Traffic) -> dict[str, int]:
    return traffic.shares(block)


def test_first_write_tags_both_new_revisions_at_zero() -> None:
    block = traffic.deployed(BASE, "svc-new", "canary", "svc-base")
    assert shares(block) == {"svc-a": 80, "svc-b": 20, "svc-base": 0, "svc-new": 0}
    assert traffic.tags(block) == {"old": "svc-b", BASELINE_TAG: "svc-base", "canary": "svc-new"}
    assert not traffic.validate(block)


@pytest.mark.parametrize(
    ("percent", "expected"),
    [
        (10, {"svc-a": 64, "svc-b": 16, "svc-base": 10, "svc-new": 10}),
        (50, {"svc-a": 0, "svc-b": 0, "svc-base": 50, "svc-new": 50}),
        (75, {"svc-a": 0, "svc-b": 0, "svc-base": 25, "svc-new": 75}),
    ],
)
def test_each_step_gives_the_baseline_the_candidates_share(percent: int, expected: dict[str, int]) -> None:
    block = traffic.at_step(BASE, "svc-new", "canary", percent, "svc-base")
    assert shares(block) == expected
    assert traffic.tags(block)[BASELINE_TAG] == "svc-base"
    assert not traffic.validate(block)


def test_promoted_and_restored_blocks_drop_the_baseline() -> None:
    at_100 = traffic.at_step(BASE, "svc-new", "canary", 100, "svc-base")
    assert "svc-base" not in shares(at_100) and BASELINE_TAG not in traffic.tags(at_100)
    assert traffic.same_routes(at_100, traffic.promoted(BASE, "svc-new", "canary"))  # pre-run revisions named
    restored = traffic.restore(BASE, "svc-new", "canary", keep_tag=False)
    assert restored == BASE


def test_a_tag_named_baseline_from_before_moves_to_our_baseline_and_comes_back() -> None:
    base = (Target(revision="svc-a", percent=100), Target(revision="svc-x", percent=0, tag=BASELINE_TAG))
    block = traffic.at_step(base, "svc-new", "canary", 10, "svc-base")
    assert traffic.tags(block)[BASELINE_TAG] == "svc-base"
    assert not traffic.validate(block)
    assert traffic.restore(base, "svc-new", "canary", keep_tag=False) == base


def test_without_a_baseline_nothing_changes() -> None:
    for percent in (0, 10, 50, 100):
        assert traffic.at_step(BASE, "n", "canary", percent) == traffic.at_step(
            BASE, "n", "canary", percent, None
        )
    assert traffic.plan(BASE, "n", "canary", (10, 100), "b")[1] == traffic.at_step(
        BASE, "n", "canary", 10, "b"
    )


@given(st.integers(1, 99), st.lists(st.integers(0, 100), min_size=1, max_size=4))
def test_every_step_is_a_valid_block_with_equal_shares(percent: int, weights: list[int]) -> None:
    if sum(weights) == 0:
        weights[0] = 1
    cut = traffic.apportion(weights, 100)
    base = tuple(Target(revision=f"r{i}", percent=p) for i, p in enumerate(cut))
    block = traffic.at_step(base, "cand", "canary", percent, "twin")
    assert not traffic.validate(block)
    got = shares(block)
    assert got["cand"] == percent
    assert got["twin"] == traffic.baseline_share(percent) == min(percent, 100 - percent)
    assert {f"r{i}" for i in range(len(cut))} <= set(got)  # every pre-run revision stays referenced


def test_the_record_of_a_rollout_says_what_it_wrote_with_its_baseline() -> None:
    from deployer.state import RolloutState

    state = RolloutState(candidate="svc-new", tag="canary", base=traffic.to_spec(BASE), steps=[10, 100])
    first = replace(state, baseline="svc-base", baseline_only=True)
    # Only the baseline's write (the one before the candidate's) has landed: no candidate yet.
    assert first.written() == traffic.deployed(BASE, "svc-base", BASELINE_TAG)
    both = replace(first, baseline_only=False)
    assert both.written() == traffic.deployed(BASE, "svc-new", "canary", "svc-base")
    assert both.at_step(10).written() == traffic.at_step(BASE, "svc-new", "canary", 10, "svc-base")
    assert RolloutState.from_service(
        {"metadata": {"annotations": {"run-canary.dev/rollout": both.at_step(10).to_annotation()}}}
    ) == both.at_step(10)
