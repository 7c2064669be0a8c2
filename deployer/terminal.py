"""The log for a person: a terminal, or a CI system other than GitHub Actions (GitLab CI, Cloud Build).

Same facts as the runner's log, without workflow-command syntax: phases are headings, errors and
warnings are marked ``error:`` / ``warning:``, and colour is used only on a TTY and never when
``NO_COLOR`` is set (https://no-color.org). Every line may carry untrusted text (an image name, a
response body, an error from a server), so control characters are made visible instead of being sent
to the terminal: an ESC in a smoke-check body must not move the cursor, rewrite what was printed or
set the window title, and a bidi override must not reorder what the reader sees.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from typing import TextIO

from deployer.console import Console as LogConsole
from deployer.outputs import outputs_for
from deployer.result import Outcome, Phase, RolloutResult, is_failure
from deployer.text import phase_summary, split_lines

# C0 controls except TAB (line breaks are split off before), DEL, C1 controls (0x9b is an 8-bit CSI),
# and the invisible bidi and direction marks ("Trojan Source").
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# A line a GitHub runner would read as a workflow command if this log were replayed in a step.
_COMMAND_START = re.compile(r"^[\s\u180e\u200b-\u200d\u2060\ufeff]*::")

RESET, BOLD, DIM = "\x1b[0m", "\x1b[1m", "\x1b[2m"
RED, GREEN, YELLOW, CYAN = "\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[36m"
HEADING_WIDTH = 72


def _visible(char: str) -> str:
    """A control character as something a terminal prints but never acts on."""
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)  # control pictures: ESC -> ␛
    if code == 0x7F:
        return "\u2421"  # ␡
    return f"<U+{code:04X}>"


def clean_line(line: str) -> str:
    """One line made inert for a terminal (and for a runner, should this log be replayed there)."""
    line = _UNSAFE.sub(lambda m: _visible(m.group()), line)
    if _COMMAND_START.match(line):
        line = "> " + line
    return line


def use_colour(stream: TextIO, env: Mapping[str, str]) -> bool:
    """Colour only for a person at a terminal: a TTY, NO_COLOR unset or empty, and not TERM=dumb."""
    if env.get("NO_COLOR", "") != "" or env.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class TerminalConsole(LogConsole):
    """The ``deployer.console.Console`` for people: headings, marked errors, optional colour.

    Registered secrets are redacted from every line (there is no runner to mask them here). Debug
    lines are printed only when ``debug`` is true.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        colour: bool | None = None,
        debug: bool = False,
        env: Mapping[str, str] | None = None,
    ):
        self._stream = stream
        self._colour = colour
        self._env = os.environ if env is None else env
        self._debug = debug
        self._secrets: list[str] = []
        self._headings = 0

    # -- output primitives -------------------------------------------------------------------
    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stdout  # looked up late so test capture works

    @property
    def colour(self) -> bool:
        if self._colour is None:
            self._colour = use_colour(self.stream, self._env)
        return self._colour

    def _paint(self, text: str, *styles: str) -> str:
        return "".join(styles) + text + RESET if self.colour and styles else text

    def _write(self, line: str) -> None:
        stream = self.stream
        try:
            stream.write(line + "\n")
        except UnicodeEncodeError:  # a terminal that is not UTF-8: keep the line, lose the symbols
            encoding = getattr(stream, "encoding", None) or "ascii"
            stream.write((line + "\n").encode(encoding, "replace").decode(encoding))
        stream.flush()

    def _lines(self, text: str) -> list[str]:
        """Redacted, split and cleaned: the only way untrusted text reaches the stream."""
        text = str(text)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return [clean_line(line) for line in split_lines(text)]

    # -- Console -------------------------------------------------------------------------------
    def info(self, text: str) -> None:
        for line in self._lines(text):
            self._write(line)

    def debug(self, text: str) -> None:
        if self._debug:
            for line in self._lines(text):
                self._write(self._paint(f"debug: {line}", DIM))

    def error(self, text: str, title: str | None = None) -> None:
        self._marked("error", RED, text, title)

    def warning(self, text: str, title: str | None = None) -> None:
        self._marked("warning", YELLOW, text, title)

    def notice(self, text: str, title: str | None = None) -> None:
        self._marked("notice", CYAN, text, title)

    def _marked(self, kind: str, colour: str, text: str, title: str | None) -> None:
        """``error: title: first line``, further lines indented under it."""
        first, *rest = self._lines(text)
        heading = " ".join(self._lines(title.strip())) + ": " if title and title.strip() else ""
        self._write(self._paint(f"{kind}:", BOLD, colour) + f" {heading}{first}")
        for line in rest:
            self._write(f"  {line}")

    def mask(self, secret: str | None) -> None:
        """Redact ``secret`` (and each of its lines) from everything printed from now on."""
        if not secret or not secret.strip():
            return
        for value in [secret, *(line for line in split_lines(secret) if line.strip())]:
            if value not in self._secrets:
                self._secrets.append(value)
        self._secrets.sort(key=len, reverse=True)  # redact longest first

    def start_group(self, title: str) -> None:
        """A heading: ``── deploy ─────``, with a blank line before every heading but the first."""
        if self._headings:
            self._write("")
        self._headings += 1
        name = " ".join(self._lines(title))
        rule = "─" * max(HEADING_WIDTH - len(name) - 4, 3)
        self._write(self._paint(f"── {name} {rule}", BOLD, CYAN))

    def end_group(self) -> None:
        """Nothing to close: the next heading starts the next section."""

    def phase_line(self, phase: Phase) -> None:
        colour = {True: GREEN, False: RED, None: DIM}[phase.ok]
        for line in self._lines(phase_summary(phase)):
            self._write(self._paint(line, colour))

    # -- the end of a run ------------------------------------------------------------------------
    def show_result(self, result: RolloutResult) -> None:
        """The step's outputs under a heading (on GitHub they go to $GITHUB_OUTPUT and the summary)."""
        self.start_group("result")
        outputs = outputs_for(result)
        if not result.jobs:  # the job outputs only mean something when a job ran
            outputs = {k: v for k, v in outputs.items() if not k.startswith("job_")}
        if result.mode == "job":  # no service was involved
            outputs = {k: v for k, v in outputs.items() if k in ("result",) or k.startswith("job_")}
        unknown = "(unchanged)" if result.outcome is Outcome.PLANNED else "(not known)"
        if "traffic" in outputs:
            outputs["traffic"] = ", ".join(t.describe() for t in result.traffic_after) or unknown
        if result.reason and not is_failure(result):  # a failure's reason follows as an error line
            outputs["reason"] = result.reason
        width = max(len(name) for name in outputs)
        for name, value in outputs.items():
            first, *rest = self._lines(value)
            if name == "result":
                first = self._paint(first, BOLD, GREEN if result.exit_code == 0 else RED)
            self._write(f"{name.ljust(width)}  {first}".rstrip())
            for line in rest:
                self._write(f"{'':{width}}  {line}")
        if result.template_diff:
            self.info("template diff (dry run):")
            for line in result.template_diff:
                self.info(f"  {line}")
