"""Which URLs the action's own load (``load_rps``) goes to (deployer.load.targets)."""

from __future__ import annotations

from deployer import load

TAG = "https://canary---web-abc.a.run.app"
BASELINE = "https://baseline---web-abc.a.run.app"
SERVICE = "https://web-abc.a.run.app"


def test_with_a_baseline_revision_load_goes_to_both_tag_urls_never_the_service_url() -> None:
    assert load.targets("revision", TAG, BASELINE, SERVICE) == (TAG, BASELINE)


def test_with_baseline_stable_the_stable_side_is_loaded_through_the_service_url() -> None:
    """The revisions from before the run have no tag URL: their data comes through the service URL."""
    assert load.targets("stable", TAG, "", SERVICE) == (TAG, SERVICE)


def test_without_a_baseline_only_the_candidate_is_loaded() -> None:
    assert load.targets("none", TAG, "", SERVICE) == (TAG,)
    assert load.targets("revision", "", "", SERVICE) == ()
