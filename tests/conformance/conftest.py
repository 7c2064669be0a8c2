"""The gcloud conformance suite: one emulator per module, a fresh project per test, real gcloud."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from cloudrun_emulator import Emulator
from tests import gcloud

READY_DELAY = 0.1
_ids = itertools.count()


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    """Skips (fails in CI) before starting anything when gcloud cannot run here."""
    gcloud.require()
    with Emulator(port=0, ready_delay=READY_DELAY, start_timeout=5.0) as emu:
        yield emu


@pytest.fixture
def gc(emulator: Emulator, request: pytest.FixtureRequest) -> gcloud.Gcloud:
    """gcloud on a project no other test uses."""
    return gcloud.Gcloud(emulator.url, f"gc-{next(_ids)}-{abs(hash(request.node.nodeid)) % 10000}")
