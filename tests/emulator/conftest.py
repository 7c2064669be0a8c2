"""Shared fixtures: one in-process emulator per module, a fresh namespace (project) per test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from cloudrun_emulator import Emulator
from tests.cloudrun import Api

READY_DELAY = 0.15
_ids = itertools.count()


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator(port=0, ready_delay=READY_DELAY, start_timeout=5.0) as emu:
        yield emu


@pytest.fixture
def emu(emulator: Emulator) -> Iterator[Emulator]:
    """The module's emulator with no faults, an empty log and the default delay."""
    emulator.faults.clear()
    emulator.log.clear()
    emulator.set_ready_delay(READY_DELAY)
    yield emulator
    emulator.faults.clear()


@pytest.fixture
def api(emu: Emulator) -> Api:
    """A client on a namespace no other test uses."""
    return Api(emu.url, f"project-{next(_ids)}")
