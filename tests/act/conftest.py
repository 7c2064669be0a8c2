"""act (nektos/act) against the emulator: the image built the project's way and tagged for act.

When they run: like the container tests (tests/container/image.py), always in CI (``CI=true``),
where a missing engine, a failed build or a missing act binary fails them; elsewhere when a Docker
engine answers, skipped with the reason otherwise.
"""

from __future__ import annotations

import fcntl
import os
import random
import time
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
    # retag until they are done. Never queued for the exclusive lock: a worker of this session that
    # tagged first holds its shared lock until the session ends, and a worker queued behind it would
    # wait that long for names that are already right (measured: act tests set up in 190 s). So
    # each try takes the exclusive lock only when free, and looks at the names again in between.
    with open(cache / "act-tag.lock", "w") as lock:
        while True:
            fcntl.flock(lock, fcntl.LOCK_SH)
            if act.tagged(image.id, image.docker_host):
                break
            try:  # a failed conversion leaves no lock held (flock's conversions are not atomic)
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fcntl.flock(lock, fcntl.LOCK_UN)
                time.sleep(random.uniform(0.05, 0.3))  # apart from a worker trying the same
                continue
            if not act.tagged(image.id, image.docker_host):
                act.tag_image(image.id, image.docker_host)
        yield image
