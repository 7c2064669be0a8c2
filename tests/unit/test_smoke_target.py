"""Which URL a step smoke-checks (deployer.smoke.target)."""

from __future__ import annotations

from deployer import smoke

SVC = {
    "status": {
        "url": "https://web-abc-uc.a.run.app",
        "traffic": [
            {"revisionName": "web-v1", "percent": 100},
            {
                "revisionName": "web-v2",
                "percent": 0,
                "tag": "canary",
                "url": "https://canary---web-abc-uc.a.run.app",
            },
        ],
    }
}


def test_the_tag_url_of_the_runs_tag_never_the_service_url() -> None:
    assert smoke.target(None, SVC, "canary") == "https://canary---web-abc-uc.a.run.app"
    assert smoke.target(None, SVC, "blue") == ""  # no URL for that tag yet: the step fails, saying so


def test_a_url_known_from_an_earlier_step_is_kept() -> None:
    assert smoke.target("https://canary---web-abc-uc.a.run.app", {}, "canary") == (
        "https://canary---web-abc-uc.a.run.app"
    )
