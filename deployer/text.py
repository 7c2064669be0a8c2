"""Small text helpers shared by everything the log writers (GitHub's and the terminal's) print or write."""

from __future__ import annotations

from deployer.result import Phase


def split_lines(text: str) -> list[str]:
    """Split like the runner does (LF, CR, CRLF) and like any viewer might (the other separators)."""
    return text.splitlines() or [""]


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def one_line(text: str) -> str:
    return " ".join(split_lines(str(text))).replace("\t", " ")


def cap_bytes(text: str, limit: int) -> str:
    """Cut text to ``limit`` UTF-8 bytes, saying so, without splitting a character."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    note = "\n\n*(summary truncated)*\n"
    return data[: limit - len(note.encode())].decode("utf-8", errors="ignore") + note


PHASE_MARK = {True: "✅", False: "❌", None: "—"}


def phase_summary(phase: Phase) -> str:
    """A finished phase in one line: mark, name, duration and detail (truncated)."""
    detail = f": {phase.detail}" if phase.detail else ""
    line = f"{PHASE_MARK[phase.ok]} {phase.name} ({phase.duration:.1f} s){detail}"
    return one_line(truncate(line, 1000))
