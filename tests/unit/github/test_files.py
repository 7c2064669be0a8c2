"""deployer.github.files: step outputs and post-step state, read back as the runner reads the files."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from deployer import github as gh
from deployer.github import files
from deployer.traffic import Target
from tests.runner_commands import read_file_commands
from tests.unit.github.results import rollout_result


def test_write_outputs_round_trip(tmp_path) -> None:
    path = tmp_path / "output"
    path.write_text("earlier=1\n")
    fake_delimiter = f"ghadelimiter_{uuid.uuid4()}"
    result = rollout_result(reason=None, revision=f"rev\n{fake_delimiter}\nx=1", previous_revision="")
    gh.write_outputs(result, str(path))
    parsed = read_file_commands(path.read_bytes().decode("utf-8"))
    assert parsed["earlier"] == "1"
    assert parsed["revision"] == f"rev\n{fake_delimiter}\nx=1"
    assert parsed["previous_revision"] == ""
    assert parsed["result"] == "promoted"
    assert parsed["url"] == "https://svc-xyz.a.run.app"
    assert parsed["tag_url"] == "https://canary---svc-xyz.a.run.app"
    assert json.loads(parsed["traffic"]) == [
        {
            "revisionName": "svc-abc",
            "percent": 100,
            "tag": "canary",
            "url": "https://canary---svc-xyz.a.run.app",
        },
        {"revisionName": "svc-old", "percent": 0, "tag": "stable"},
    ]
    assert re.search(r"^result<<ghadelimiter_[0-9a-f-]{36}$", path.read_text(), re.M)


def test_traffic_json_latest() -> None:
    assert json.loads(files.traffic_json((Target(None, 100, latest=True),))) == [
        {"percent": 100, "latestRevision": True}
    ]


def test_write_outputs_without_path_does_nothing(tmp_path) -> None:
    gh.write_outputs(rollout_result(), None)
    gh.write_outputs(rollout_result(), "")
    gh.save_state("x", "y", None)
    assert list(tmp_path.iterdir()) == []


def test_state_name_is_validated(tmp_path) -> None:
    with pytest.raises(ValueError):
        gh.save_state("a=b", "x", str(tmp_path / "state"))
