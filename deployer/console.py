"""What the rest of the package needs from a log: the one interface both log writers implement.

Two implementations: ``deployer.github.Console`` writes workflow commands for the GitHub runner
(groups, annotations, ``::add-mask::``); ``deployer.terminal.TerminalConsole`` writes for a person at
a terminal or in another CI system (headings, marked errors, colour only on a TTY). ``deployer.main``
picks one by ``GITHUB_ACTIONS``; nothing else needs to know which.
"""

from __future__ import annotations

import contextlib
from typing import Protocol

from deployer.result import Phase


class Console(Protocol):
    """A log that neutralises every untrusted string it is given and redacts registered secrets."""

    def info(self, text: str) -> None: ...

    def debug(self, text: str) -> None: ...

    def error(self, text: str, title: str | None = None) -> None: ...

    def warning(self, text: str, title: str | None = None) -> None: ...

    def notice(self, text: str, title: str | None = None) -> None: ...

    def mask(self, secret: str | None) -> None: ...

    def start_group(self, title: str) -> None: ...

    def end_group(self) -> None: ...

    def group(self, title: str) -> contextlib.AbstractContextManager[None]: ...

    def phase_line(self, phase: Phase) -> None:
        """The one-line result of a finished phase (inside its group)."""
        ...


class PhaseReporter:
    """The rollout's Reporter on any Console: a group per phase, its lines and its result inside it."""

    def __init__(self, console: Console):
        self.console = console

    def phase_started(self, phase: Phase) -> None:
        self.console.start_group(phase.name)

    def phase_finished(self, phase: Phase) -> None:
        self.console.phase_line(phase)
        self.console.end_group()

    def info(self, text: str) -> None:
        self.console.info(text)

    def warning(self, text: str) -> None:
        self.console.warning(text)
