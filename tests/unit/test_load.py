"""Which URLs the action's own load (``load_rps``) goes to (deployer.load.targets)."""

from __future__ import annotations

from deployer import load


def test_load_goes_to_the_tag_urls_never_the_service_url() -> None:
    assert load.targets("https://canary---web-abc.a.run.app", "") == ("https://canary---web-abc.a.run.app",)
    assert load.targets("https://canary---web-abc.a.run.app", "https://baseline---web-abc.a.run.app") == (
        "https://canary---web-abc.a.run.app",
        "https://baseline---web-abc.a.run.app",
    )
    assert load.targets("", "") == ()
