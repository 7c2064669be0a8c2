"""The promise across the whole job (issue 23): each test plays a sequence users meet every week --
the runner's post step after the main step, re-runs, operators acting between phases, racing runs --
and asserts where requests go afterwards, not only what the spec says.

``harness.run`` runs the post step after every main step, as the runner does (``post-if: always()``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cloudrun_emulator import Emulator
from devtools import harness
from tests.cloudrun import Api, hit, routing

FAST = {"step_interval": "1s", "wait_timeout": "30s", "smoke_timeout": "4s"}


def inputs(emu: Emulator, project: str, **extra: Any) -> dict[str, Any]:
    return {"api_endpoint": emu.url, "project_id": project, "region": "us-central1", **FAST, **extra}


def test_a_pause_survives_the_post_step_and_is_promoted_later(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    """Finding 1: the post step used to find its own token on the paused record and roll it back."""
    api = Api(emulator.url, project)
    api.create_service("pause", "sample/hello:v1", "pause-v1")
    paused = harness.run(
        inputs(emulator, project, service="pause", image="sample/hello:v2", suffix="v2", steps="10,50"),
        tmp_path=tmp_path / "1",
    )
    assert paused.outputs["result"] == "paused", paused.log
    assert paused.post is not None and paused.post.returncode == 0, paused.post and paused.post.log
    assert "paused at 50% on purpose" in paused.post.log
    svc = api.wait_routes("pause")
    assert routing(svc) == [("pause-v1", 50, ""), ("pause-v2", 50, "canary")]
    assert set(hit(svc["status"]["url"], 40)) == {"pause-v1", "pause-v2"}
    promoted = harness.run(
        inputs(emulator, project, service="pause", mode="promote"), tmp_path=tmp_path / "2"
    )
    assert promoted.outputs["result"] == "promoted", promoted.log
    assert promoted.post is not None and promoted.post.returncode == 0
    svc = api.wait_routes("pause")
    assert routing(svc) == [("pause-v2", 100, "canary")]
    assert hit(svc["status"]["url"], 10) == {"pause-v2": 10}
