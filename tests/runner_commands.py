"""The runner's side of workflow commands, ported from actions/runner (ActionCommand.cs,
ActionCommandManager.cs and the file-command reader), so tests check what GitHub would actually do
with our output; and a Console writing to a buffer, whose output they parse."""

from __future__ import annotations

import io
import re

from deployer.github import Console

REGISTERED = {
    "stop-commands", "set-env", "set-output", "save-state", "add-mask", "add-path", "add-matcher",
    "remove-matcher", "warning", "error", "notice", "debug", "group", "endgroup", "echo",
}  # fmt: skip
_NET_NOT_SPACE = set("\x1c\x1d\x1e\x1f")  # Python isspace() says yes, .NET char.IsWhiteSpace no


def net_trim_start(s: str) -> str:
    i = 0
    while i < len(s) and s[i].isspace() and s[i] not in _NET_NOT_SPACE:
        i += 1
    return s[i:]


def net_trim(s: str) -> str:
    s = net_trim_start(s)
    j = len(s)
    while j > 0 and s[j - 1].isspace() and s[j - 1] not in _NET_NOT_SPACE:
        j -= 1
    return s[:j]


def unescape_data(s: str) -> str:
    return s.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def unescape_property(s: str) -> str:
    for token, repl in (("\r", "%0D"), ("\n", "%0A"), (":", "%3A"), (",", "%2C"), ("%", "%25")):
        s = s.replace(repl, token)
    return s


def parse_v2(line: str, registered: set[str]) -> tuple[str, dict[str, str], str] | None:
    """ActionCommand.TryParseV2: ``::name k=v,k=v::data`` after trimming leading whitespace."""
    msg = net_trim_start(line)
    if not msg.startswith("::"):
        return None
    end = msg.find("::", 2)
    if end < 0:
        return None
    info = msg[2:end]
    space = info.find(" ")
    name = info if space < 0 else info[:space]
    if name.lower() not in registered:
        return None
    props: dict[str, str] = {}
    if space > 0:
        for prop in [p for p in net_trim(info[space + 1 :]).split(",") if p]:
            pair = [x for x in prop.split("=", 1) if x]
            if len(pair) == 2:
                props[pair[0]] = unescape_property(pair[1])
    return name.lower(), props, unescape_data(msg[end + 2 :])


def parse_v1(line: str, registered: set[str]) -> str | None:
    """ActionCommand.TryParse: the legacy ``##[name props]data`` form, anywhere in the line."""
    start = line.find("##[")
    if start < 0:
        return None
    rb = line.find("]", start)
    if rb < 0:
        return None
    info = line[start + 3 : rb]
    name = info.split(" ", 1)[0]
    return name.lower() if name.lower() in registered else None


def parse_any(line: str, registered: set[str] = REGISTERED) -> str | None:
    v2 = parse_v2(line, registered)
    return v2[0] if v2 else parse_v1(line, registered)


class Runner:
    """Feeds stdout lines through the runner's command processing, stop-commands included."""

    def __init__(self) -> None:
        self.registered = set(REGISTERED)
        self.stopped_token: str | None = None
        self.masks: list[str] = []
        self.commands: list[tuple[str, dict[str, str], str]] = []

    def feed(self, text: str) -> None:
        for line in re.split(r"\r\n|\r|\n", text):
            self.line(line)

    def line(self, line: str) -> None:
        cmd = parse_v2(line, self.registered)
        if cmd is None:
            return
        name, _props, data = cmd
        if self.stopped_token is not None:
            if name == self.stopped_token.lower():
                self.registered.discard(name)
                self.stopped_token = None
            return
        if name == "stop-commands":
            self.stopped_token = data
            self.registered.add(data.lower())
            return
        if name == "add-mask":
            self.masks.append(data)
        self.commands.append(cmd)


def read_file_commands(text: str) -> dict[str, str]:
    """The runner's reader for $GITHUB_OUTPUT/$GITHUB_STATE (Linux: lines end at LF)."""
    out: dict[str, str] = {}
    index = 0

    def read_line() -> tuple[str | None, str | None]:
        nonlocal index
        if index >= len(text):
            return None, None
        lf = text.find("\n", index)
        if lf < 0:
            line, index = text[index:], len(text)
            return line, None
        line, index = text[index:lf], lf + 1
        return line, "\n"

    line, _ = read_line()
    while line is not None:
        if line:
            eq, hd = line.find("="), line.find("<<")
            if eq >= 0 and (hd < 0 or eq < hd):
                key, value = line.split("=", 1)
            elif hd >= 0:
                key, delimiter = line.split("<<", 1)
                assert key and delimiter
                start = end = index
                temp, newline = read_line()
                while temp != delimiter:
                    assert temp is not None, f"matching delimiter not found {delimiter!r}"
                    assert newline is not None, "EOF marker missing new line"
                    end = index - len(newline)
                    temp, newline = read_line()
                value = text[start:end] if end > start else ""
            else:
                raise AssertionError(f"invalid format {line!r}")
            out[key] = value
        line, _ = read_line()
    return out


def buffered_console() -> tuple[Console, io.StringIO]:
    """A Console and the buffer it writes to."""
    out = io.StringIO()
    return Console(out), out
