"""Workflow commands on the runner's log: groups, annotations, masking, and the Reporter the rollout
talks to. Every line printed here may carry untrusted text, so every path goes through the neutralising
helpers, which keep a line from being read as a command.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Mapping
from typing import TextIO

from actions_toolkit.command import Command, escape_data

from deployer.console import Console as LogConsole
from deployer.console import PhaseReporter
from deployer.result import Outcome, Phase, RolloutResult, is_failure
from deployer.text import phase_summary, split_lines, truncate

ANNOTATION_LIMIT = 10  # GitHub shows at most 10 of each kind per step; the rest would be lost

# ---------------------------------------------------------------------------------------------
# Workflow commands
# ---------------------------------------------------------------------------------------------

# Whitespace the runner's TrimStart() removes, plus invisible characters a viewer would not notice.
_COMMAND_START = re.compile(r"^[\s\u180e\u200b-\u200d\u2060\ufeff]*::")
_V1_PREFIX = "##["  # the runner also accepts ``##[command]data`` ANYWHERE in a line
_NEUTRAL_MARKER = "> "


def neutralise_line(line: str) -> str:
    """Make one plain log line inert: the runner must not parse it as a workflow command.

    The runner parses a line as a command when, after trimming leading whitespace, it starts with
    ``::`` (``::name props::data``), or when it contains ``##[name]`` anywhere (the legacy form).
    Our choice, visible in the log rather than silently altered:

    * a line that would start with ``::`` is prefixed with ``"> "`` (so ``::stop-commands::x``
      shows as ``> ::stop-commands::x`` and cannot pause command processing, which would make a
      later ``::add-mask::`` ineffective);
    * every ``##[`` becomes ``# #[``;
    * ESC becomes ``␛`` so ANSI sequences cannot rewrite what the log shows.
    """
    line = line.replace(_V1_PREFIX, "# #[").replace("\x1b", "\u241b")
    if _COMMAND_START.match(line):
        line = _NEUTRAL_MARKER + line
    return line


class Console(LogConsole):
    """Writes log lines and workflow commands to a stream, with every untrusted string neutralised.

    Registered secrets are redacted from everything this console prints (besides ``::add-mask::``
    telling the runner), so a secret that reaches an error message is not printed even before the
    runner's masker sees it. Error, warning and notice annotations are counted: past
    ``annotation_limit`` of a kind they become plain lines, because GitHub drops them anyway.
    """

    def __init__(self, stream: TextIO | None = None, *, annotation_limit: int = ANNOTATION_LIMIT):
        self._stream = stream
        self._limit = annotation_limit
        self._counts: Counter[str] = Counter()
        self._secrets: list[str] = []
        self._group_open = False

    # -- output primitives -------------------------------------------------------------------
    def _write(self, line: str) -> None:
        stream = self._stream or sys.stdout  # looked up late so test capture works
        stream.write(line + "\n")
        stream.flush()

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _command(self, name: str, message: str, properties: Mapping[str, str] | None = None) -> None:
        # actions_toolkit's Command escapes data and properties exactly like the runner unescapes.
        props = {k: self._redact(v) for k, v in (properties or {}).items() if v}
        self._write(str(Command(name, props, self._redact(message))))

    # -- public API --------------------------------------------------------------------------
    def info(self, text: str) -> None:
        """Print plain text: one line per input line, each neutralised (see :func:`neutralise_line`)."""
        for line in split_lines(self._redact(str(text))):
            self._write(neutralise_line(line))

    def debug(self, text: str) -> None:
        """A ``::debug::`` line (shown only with ACTIONS_STEP_DEBUG)."""
        self._command("debug", str(text))

    def error(self, text: str, title: str | None = None) -> None:
        self._annotate("error", text, title)

    def warning(self, text: str, title: str | None = None) -> None:
        self._annotate("warning", text, title)

    def notice(self, text: str, title: str | None = None) -> None:
        self._annotate("notice", text, title)

    def _annotate(self, kind: str, text: str, title: str | None) -> None:
        """Emit an annotation, or a plain line once GitHub would drop it anyway."""
        self._counts[kind] += 1
        if self._counts[kind] > self._limit:
            prefix = f"{kind.capitalize()}: " + (f"{title}: " if title else "")
            self.info(prefix + str(text))
            return
        # The runner trims the property list, so trailing spaces of a title would be lost anyway.
        self._command(kind, str(text), {"title": (title or "").strip()})

    def mask(self, secret: str | None) -> None:
        """Tell the runner to mask ``secret`` (and each of its lines) before it is ever used."""
        if not secret or not secret.strip():
            return
        values = [secret] + [line for line in split_lines(secret) if line.strip() and line != secret]
        for value in values:
            if value in self._secrets:
                continue
            self._write(f"::add-mask::{escape_data(value)}")
            self._secrets.append(value)
        self._secrets.sort(key=len, reverse=True)  # redact longest first

    def start_group(self, title: str) -> None:
        """Open a collapsible group; groups cannot nest, so an open one is closed first."""
        if self._group_open:
            self.end_group()
        self._command("group", str(title))
        self._group_open = True

    def end_group(self) -> None:
        if self._group_open:
            self._write("::endgroup::")
            self._group_open = False

    def phase_line(self, phase: Phase) -> None:
        """``✅ deploy (0.1 s): detail``, one line, as the last line of the phase's group."""
        self.info(phase_summary(phase))


# ---------------------------------------------------------------------------------------------
# Reporter and failure annotation
# ---------------------------------------------------------------------------------------------


class GitHubReporter(PhaseReporter):
    """The rollout's Reporter on the runner's log: one group per phase holding its lines and result."""


def report_failure(console: LogConsole, result: RolloutResult) -> None:
    """An ``::error`` annotation with the reason when the run failed or was rolled back."""
    if not is_failure(result):
        return
    what = "rolled back" if result.outcome is Outcome.ROLLED_BACK else "failed"
    title = f"Cloud Run rollout {what}: {result.service}"
    if result.mode == "job":
        title = f"Cloud Run job failed: {result.jobs[0].job if result.jobs else '?'}"
    console.error(truncate(result.reason or "no reason recorded", 4000), title=truncate(title, 200))


# ---------------------------------------------------------------------------------------------
