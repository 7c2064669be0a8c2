"""The baseline revision's rules (deployer.baseline) that the rollout applies: pure, no server."""

from __future__ import annotations

from deployer import baseline


def test_baseline_revision_refuses_without_a_revision_to_copy() -> None:
    assert baseline.missing_source("web", None) == (
        "baseline: revision needs a revision serving traffic to copy; service web has none"
    )
    assert baseline.missing_source("web", "web-v1").endswith("service web has no revision web-v1")


def test_the_baseline_name_follows_the_candidate_within_63_characters() -> None:
    assert baseline.revision_name("web-v2") == "web-v2-baseline"
    long = baseline.revision_name("w" * 60)
    assert len(long) == 63 and long.endswith("-baseline")
