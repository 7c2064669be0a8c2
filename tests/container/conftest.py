"""The container tests' session summary: what the session did about them (built, skipped or failed;
tests/container/image.py). The ``image`` fixture they share with tests/act is in tests/conftest.py."""

from __future__ import annotations

import pytest

from tests.container.image import outcome


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if outcome:
        terminalreporter.write_sep("-", "container tests")
        terminalreporter.write_line(outcome[0])
