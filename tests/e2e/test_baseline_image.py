"""The baseline revision runs the image the current release runs, by digest: a tag such as ``:latest``
may point at the candidate's image by now, and a baseline of the candidate would compare nothing."""

from __future__ import annotations

from pathlib import Path

from cloudrun_emulator import Emulator
from devtools import harness
from tests.cloudrun import Api
from tests.helpers import inputs


def test_the_baseline_runs_the_stable_revisions_image_digest_not_its_tag(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    api.create_service("tagged", "sample/hello:latest", "tagged-v1")
    stable = api.revision("tagged-v1").json()
    digest = stable["status"]["imageDigest"]
    assert "@sha256:" in digest and stable["spec"]["containers"][0]["image"] == "sample/hello:latest"
    result = harness.run(
        inputs(
            emulator,
            project,
            service="tagged",
            image="sample/hello:latest",  # the tag has moved to the new release
            env_vars="RELEASE=2",
            suffix="v2",
            steps="50,100",
            baseline="revision",
            max_error_rate_increase="1",
            on_inconclusive="pass",
        ),
        tmp_path=tmp_path,
    )
    assert result.outputs["result"] == "promoted", result.log
    twin = api.revision("tagged-v2-baseline").json()
    assert twin["spec"]["containers"][0]["image"] == digest
    assert [e for e in twin["spec"]["containers"][0].get("env", []) if e["name"] == "RELEASE"] == []
