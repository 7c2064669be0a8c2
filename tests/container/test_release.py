"""The release process: a release's action.yml runs the image built for it by digest and keeps the post
step; the workflow builds once per release and moves the major tag only after a verified rollout."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from devtools import harness

ROOT = harness.ROOT
RELEASE_YML = ROOT / ".github" / "workflows" / "release.yml"
DIGEST = "sha256:" + "0123456789abcdef" * 4
IMAGE = f"ghcr.io/octo-org/run-canary@{DIGEST}"


def _release_action() -> ModuleType:
    spec = importlib.util.spec_from_file_location("release_action", ROOT / "scripts" / "release_action.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


release_action = _release_action()


def _tool(name: str) -> str | None:
    return shutil.which(name, path=str(Path(sys.executable).parent))


def _pinned(tmp_path: Path, image: str = IMAGE) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """Run the script as the workflow does, on a copy of action.yml."""
    copy = tmp_path / "action.yml"
    shutil.copy(harness.ACTION_YML, copy)
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "release_action.py"),
            "pin",
            "--image",
            image,
            "--file",
            str(copy),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return copy, proc


def test_release_action_yml_pins_the_digest_and_keeps_the_post_entrypoint(tmp_path: Path) -> None:
    released, proc = _pinned(tmp_path)
    assert proc.returncode == 0, proc.stderr
    before = yaml.safe_load(harness.ACTION_YML.read_text(encoding="utf-8"))
    after = yaml.safe_load(released.read_text(encoding="utf-8"))
    assert before["runs"]["image"] == "Dockerfile"  # unreleased refs build the Dockerfile
    assert after["runs"]["image"] == f"docker://{IMAGE}"
    assert after["runs"]["post-entrypoint"] == before["runs"]["post-entrypoint"] == "/app/post.py"
    assert after["runs"]["using"] == "docker"
    # Nothing else changes: the inputs, outputs and runs keys, and every other line (comments too).
    assert {k: v for k, v in after.items() if k != "runs"} == {k: v for k, v in before.items() if k != "runs"}
    assert set(after["runs"]) == set(before["runs"])
    old_lines = harness.ACTION_YML.read_text(encoding="utf-8").splitlines()
    new_lines = released.read_text(encoding="utf-8").splitlines()
    assert [line for line in old_lines if line not in new_lines] == ["  image: Dockerfile"]
    assert release_action.pinned_image(released.read_text(encoding="utf-8")) == IMAGE


def test_release_action_yml_is_valid_per_schema(tmp_path: Path) -> None:
    tool = _tool("check-jsonschema")
    if tool is None:
        pytest.skip("check-jsonschema is not installed (scripts/bootstrap installs it)")
    released, proc = _pinned(tmp_path)
    assert proc.returncode == 0, proc.stderr
    check = subprocess.run(
        [tool, "--builtin-schema", "vendor.github-actions", str(released)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/octo-org/run-canary:v1",  # a tag can be moved to another image
        "ghcr.io/octo-org/run-canary:v1@" + DIGEST,
        "ghcr.io/octo-org/run-canary@sha256:abc",
        "ghcr.io/Octo-Org/run-canary@" + DIGEST,  # registries want lower case
        "docker://ghcr.io/octo-org/run-canary@" + DIGEST,
        "ghcr.io/octo-org/run-canary@" + DIGEST + "\n  post-entrypoint: /bin/sh",
    ],
)
def test_pin_refuses_anything_but_a_digest(tmp_path: Path, image: str) -> None:
    released, proc = _pinned(tmp_path, image)
    assert proc.returncode == 1
    assert "sha256" in proc.stderr
    assert released.read_bytes() == harness.ACTION_YML.read_bytes()  # untouched


def test_pin_refuses_a_release_action_yml(tmp_path: Path) -> None:
    released, proc = _pinned(tmp_path)
    assert proc.returncode == 0, proc.stderr
    with pytest.raises(release_action.ReleaseError, match="already a release"):
        release_action.pin(released.read_text(encoding="utf-8"), IMAGE)
    with pytest.raises(release_action.ReleaseError, match="not docker://"):
        release_action.pinned_image(harness.ACTION_YML.read_text(encoding="utf-8"))


def test_notes_are_the_changelog_section_of_the_version() -> None:
    changelog = (
        "# Changelog\n\n## [Unreleased]\n- next\n\n## [1.2.3] - 2026-12-01\n### Fixed\n- a\n\n"
        "## [1.2.2] - 2026-11-01\n- b\n"
    )
    assert release_action.notes(changelog, "1.2.3") == "### Fixed\n- a\n"
    assert release_action.notes(changelog, "1.2.2") == "- b\n"
    with pytest.raises(release_action.ReleaseError, match=r"1\.2\b"):
        release_action.notes(changelog, "1.2")


# --------------------------------------------------------------------------------------------------
# The workflow


def _workflow() -> dict[Any, Any]:
    data = yaml.safe_load(RELEASE_YML.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_release_builds_once_per_semver_tag() -> None:
    triggers = _workflow()[True]  # YAML 1.1 reads the key `on` as True
    assert triggers == {"push": {"tags": ["v[0-9]+.[0-9]+.[0-9]+"]}}
    builds = [
        name
        for name, job in _workflow()["jobs"].items()
        for step in job["steps"]
        if str(step.get("uses", "")).startswith("docker/build-push-action")
    ]
    assert builds == ["image"]


def test_major_tag_moves_only_after_the_verified_rollout() -> None:
    jobs = _workflow()["jobs"]
    movers = [name for name, job in jobs.items() if "refs/tags/${major}" in yaml.safe_dump(job)]
    assert movers == ["publish"]
    assert "verify" in jobs["publish"]["needs"]
    verify = yaml.safe_dump(jobs["verify"])
    assert "needs.image.outputs.image" in verify and "RUN_CANARY_IMAGE" in verify
    assert "pytest -q tests/container" in verify
    assert jobs["verify"]["steps"][0]["with"]["ref"] == "${{ needs.pin.outputs.commit }}"


@pytest.mark.parametrize(
    "command",
    [
        ["check-jsonschema", "--builtin-schema", "vendor.github-workflows"],
        ["zizmor", "--offline", "--no-progress"],
        ["actionlint"],
    ],
    ids=lambda c: c[0],
)
def test_release_workflow_passes_the_linters(command: list[str]) -> None:
    tool = _tool(command[0])
    if tool is None:
        if command[0] == "actionlint":
            pytest.skip("actionlint is not in the venv")
        pytest.fail(f"{command[0]} is not installed (scripts/bootstrap installs it)")
    proc = subprocess.run(
        [tool, *command[1:], str(RELEASE_YML)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
