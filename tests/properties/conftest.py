"""The property suites' emulator: one per module, with quick revisions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cloudrun_emulator import Emulator
from tests import cloudrun


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(port=0, ready_delay=0.05, images=cloudrun.TEST_IMAGES) as emulator:
        yield emulator
