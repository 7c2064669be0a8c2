"""act (nektos/act) against the emulator: the image built the project's way and tagged for act.

When they run: like the container tests (tests/container/image.py), always in CI (``CI=true``),
where a missing engine, a failed build or a missing act binary fails them; elsewhere when a Docker
engine answers, skipped with the reason otherwise.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools import act
from tests.container.image import Image, unavailable


@pytest.fixture(scope="session")
def act_image(image: Image) -> Iterator[Image]:
    """The action's image under the names act runs (tags are engine-wide: taken under a lock)."""
    try:
        act.find_act()
    except FileNotFoundError as exc:
        unavailable(str(exc))
    os.environ["DOCKER_HOST"] = image.docker_host  # act and the docker CLI use the same engine
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "run-canary"
    cache.mkdir(parents=True, exist_ok=True)
    # The names are engine-wide: every session that uses them holds the lock shared, so the workers
    # of one checkout (one image) run act side by side, and a checkout with another image waits to
    # retag until they are done. flock's conversions are not atomic: look again after each.
    with open(cache / "act-tag.lock", "w") as lock:
        while True:
            fcntl.flock(lock, fcntl.LOCK_SH)
            if act.tagged(image.id, image.docker_host):
                break
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not act.tagged(image.id, image.docker_host):
                act.tag_image(image.id, image.docker_host)
        yield image
