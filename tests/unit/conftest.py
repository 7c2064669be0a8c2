"""Fixtures of the client's unit tests: a scripted loopback server, and retry jitter made deterministic."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from deployer import retry as retry_mod
from tests.unit.scripted import ScriptedServer, serving


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    """A scripted loopback server (tests/unit/scripted.py) for the test."""
    with serving() as scripted:
        yield scripted


@pytest.fixture
def no_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Full jitter made deterministic: always the cap (``pytestmark = pytest.mark.usefixtures(...)``)."""
    monkeypatch.setattr(retry_mod.random, "uniform", lambda lo, hi: hi)
