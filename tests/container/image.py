"""The action's image, built from this checkout by scripts/container, for the container tests.

When they run: always in CI (``CI=true``, which .ci/run and GitHub set): there a missing engine or a
failed build fails them, never skips them. Elsewhere they run when a Docker engine answers
(``DOCKER_HOST``, the default socket, or one started by ``scripts/container engine``) and are skipped
with the reason printed otherwise, or when ``RUN_CANARY_CONTAINER_TESTS=0``.

``RUN_CANARY_IMAGE=<reference>`` runs them on that image instead of building one (the release
workflow: the image a release's action.yml pins, by digest).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools import harness

SCRIPT = harness.ROOT / "scripts" / "container"
outcome: list[str] = []  # what the session did about the container tests, for the summary


@dataclass(frozen=True)
class Image:
    id: str
    docker_host: str


def required() -> bool:
    return os.environ.get("CI") == "true"


def unavailable(reason: str) -> None:
    """Fail in CI, skip elsewhere; either way say so plainly."""
    if required():
        outcome.append(f"FAILED: {reason}")
        pytest.fail(f"container tests: {reason} (CI=true: they are never skipped)", pytrace=False)
    outcome.append(f"skipped: {reason}")
    pytest.skip(f"container tests skipped: {reason}")


def build_once(record: Path) -> Image:
    """``build()`` once for the processes that share ``record`` (a path in the session's directory):
    the first builds and writes the image and engine there, under a lock; the others read them."""
    with open(record.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if record.exists():
            image_id, docker_host = record.read_text().split("\n")
            outcome.append(f"ran on {docker_host} with image {image_id[:19]}")
            return Image(image_id, docker_host)
        made = build()  # a skip or a failure writes nothing: the next process looks again
        record.write_text(f"{made.id}\n{made.docker_host}")
        return made


def build() -> Image:
    """Build the image (cached layers make a re-run take about a second); its ID and the engine.
    The session's ``image`` fixture (tests/conftest.py) builds it once for tests/container and tests/act."""
    if not required() and os.environ.get("RUN_CANARY_CONTAINER_TESTS") == "0":
        unavailable("RUN_CANARY_CONTAINER_TESTS=0")
    if not required():
        found = subprocess.run([str(SCRIPT), "env"], capture_output=True, text=True, timeout=120)
        if found.returncode != 0:
            unavailable("no Docker engine answers (start one with scripts/container engine)")
    given = os.environ.get("RUN_CANARY_IMAGE")
    # In CI this also starts the engine if .ci/run has not.
    command = "engine" if given else "build"
    made = subprocess.run([str(SCRIPT), command], capture_output=True, text=True, timeout=900)
    if made.returncode != 0:
        outcome.append(f"FAILED: scripts/container {command}")
        pytest.fail(f"scripts/container {command} failed:\n{made.stderr}", pytrace=False)
    image_id = given or made.stdout.strip().splitlines()[-1]
    host = subprocess.run([str(SCRIPT), "env"], capture_output=True, text=True, timeout=120, check=True)
    docker_host = host.stdout.strip().removeprefix("DOCKER_HOST=")
    outcome.append(f"ran on {docker_host} with image {image_id[:19]}")
    return Image(image_id, docker_host)
