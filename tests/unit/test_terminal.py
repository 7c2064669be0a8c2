"""The log for a person (deployer.terminal) and the choice between it and the runner's log."""

from __future__ import annotations

import io
import re

from deployer import main
from deployer.console import PhaseReporter
from deployer.github import Console as GitHubConsole
from deployer.result import Outcome, Phase, RolloutResult
from deployer.terminal import TerminalConsole, clean_line, use_colour
from deployer.traffic import Target

HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x1b[1A::error::forged\x9b31m\u202eevil\u202c %0A ##[group]x"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_control_characters_are_shown_not_sent() -> None:
    line = clean_line(HOSTILE)
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e]", line), repr(line)
    assert line.startswith("␛]0;pwned␇␛[2J")
    assert "<U+202E>evil<U+202C>" in line and "<U+009B>31m" in line
    assert clean_line("::warning::x") == "> ::warning::x"  # inert if replayed on a runner
    assert clean_line("  \u200b::set-output name=x::y").startswith("> ")
    assert clean_line("tab\tkept 100 %") == "tab\tkept 100 %"  # nothing percent-escaped


def test_every_path_is_neutralised() -> None:
    out = Tty()
    console = TerminalConsole(out, colour=True, debug=True)
    console.info(HOSTILE + "\n::notice::second")
    console.debug(HOSTILE)
    console.error(HOSTILE + "\nline two", title="T\x1b[31m")
    console.warning(HOSTILE)
    console.start_group(HOSTILE)
    phase = Phase("smoke", started=0.0, ended=1.0, ok=False, detail=HOSTILE)
    console.phase_line(phase)
    text = out.getvalue()
    without_ours = re.sub(r"\x1b\[[0-9;]*m", "", text)  # our own colours are the only escapes
    assert "\x1b" not in without_ours and "\x07" not in without_ours and "\x9b" not in without_ours
    for line in without_ours.splitlines():
        assert not line.lstrip().startswith("::"), line
    assert "\nerror: T␛[31m: ␛]0;pwned" in without_ours
    assert "\n  line two\n" in without_ours  # further lines of a message are indented under it


def test_errors_and_warnings_are_marked_and_secrets_redacted() -> None:
    out = io.StringIO()
    console = TerminalConsole(out, env={})
    console.mask("s3cr3t-token")
    console.info("token is s3cr3t-token")
    console.error("denied for s3cr3t-token", title="GitHub API")
    console.warning("slow")
    console.notice("fyi")
    console.debug("hidden unless asked")
    assert out.getvalue().splitlines() == [
        "token is ***",
        "error: GitHub API: denied for ***",
        "warning: slow",
        "notice: fyi",
    ]


def test_colour_only_on_a_tty_without_no_color() -> None:
    assert use_colour(Tty(), {}) is True
    assert use_colour(Tty(), {"NO_COLOR": "1"}) is False
    assert use_colour(Tty(), {"NO_COLOR": ""}) is True  # no-color.org: set and not empty
    assert use_colour(Tty(), {"TERM": "dumb"}) is False
    assert use_colour(io.StringIO(), {}) is False
    tty = Tty()
    TerminalConsole(tty, env={"NO_COLOR": "yes"}).error("x")
    assert tty.getvalue() == "error: x\n"
    tty = Tty()
    TerminalConsole(tty, env={}).error("x")
    assert tty.getvalue() == "\x1b[1m\x1b[31merror:\x1b[0m x\n"


def test_phases_are_headings_with_their_result() -> None:
    out = io.StringIO()
    reporter = PhaseReporter(TerminalConsole(out, env={}))
    for name, ok in (("deploy", True), ("10%", False)):
        phase = Phase(name, started=0.0)
        reporter.phase_started(phase)
        reporter.info("Traffic (10%): a 90%, b 10% (tag canary)")
        phase.ended, phase.ok, phase.detail = 1.25, ok, "done"
        reporter.phase_finished(phase)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("── deploy ──") and len(lines[0]) == 72
    assert lines[1:3] == ["Traffic (10%): a 90%, b 10% (tag canary)", "✅ deploy (1.2 s): done"]
    assert lines[3] == "" and lines[4].startswith("── 10% ──")
    assert lines[6] == "❌ 10% (1.2 s): done"


def test_result_block_shows_the_outputs() -> None:
    out = io.StringIO()
    result = RolloutResult(
        Outcome.ROLLED_BACK,
        "deploy",
        "svc",
        "eu",
        "p",
        revision="svc-2",
        previous_revision="svc-1",
        url="https://svc",
        traffic_after=(Target("svc-1", 100), Target("svc-2", 0, "canary")),
        reason="smoke check failed",
    )
    TerminalConsole(out, env={}).show_result(result)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("── result ──")
    assert "result             rolled_back" in lines
    assert "traffic            svc-1 100%, svc-2 0% (tag canary)" in lines
    assert "tag_url" in lines  # empty outputs are listed too


def test_the_console_follows_github_actions() -> None:
    assert isinstance(main.make_console({"GITHUB_ACTIONS": "true"}), GitHubConsole)
    assert isinstance(main.make_console({}), TerminalConsole)
    assert isinstance(main.make_console({"GITHUB_ACTIONS": "false"}), TerminalConsole)


def test_cancel_reason_says_it_once() -> None:
    assert main.cancel_reason("cancelled", "SIGINT") == "cancelled by SIGINT"
    assert main.cancel_reason(None, "SIGTERM") == "cancelled by SIGTERM"
    assert (
        main.cancel_reason("cancelled; ROLLBACK FAILED: HTTP 503", "SIGINT")
        == "cancelled by SIGINT; ROLLBACK FAILED: HTTP 503"
    )
    assert (
        main.cancel_reason("smoke check failed", "SIGINT") == "smoke check failed; then cancelled by SIGINT"
    )
