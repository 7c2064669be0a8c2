"""deployer.github.commands: workflow commands on the log as the runner parses them
(tests/runner_commands.py): escaped lines, masks, stop-commands, annotations and groups, and the
rollout's Reporter."""

from __future__ import annotations

import io

from deployer import github as gh
from deployer.github import Console, GitHubReporter
from deployer.result import Outcome, Phase
from tests.runner_commands import REGISTERED, Runner, buffered_console, parse_v2
from tests.unit.github.results import rollout_result


def _lines(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


def test_neutralised_lines_stay_readable() -> None:
    console, out = buffered_console()
    console.info("ok\n  ::error::forged\n::stop-commands::abc\nsee ##[error]x\n\x1b[31mred")
    assert _lines(out) == [
        "ok",
        ">   ::error::forged",
        "> ::stop-commands::abc",
        "see # #[error]x",
        "\u241b[31mred",
    ]


def test_stop_commands_trick_cannot_disable_masking() -> None:
    console, out = buffered_console()
    console.info("server said:\n::stop-commands::pwn")
    console.warning("::stop-commands::pwn2")
    console.mask("hunter2")
    runner = Runner()
    runner.feed(out.getvalue())
    assert runner.stopped_token is None
    assert runner.masks == ["hunter2"]


def test_mask_is_emitted_before_use_and_redacts() -> None:
    console, out = buffered_console()
    console.mask("")
    console.mask("s3cr%t\nline2")
    console.info("value s3cr%t\nline2 here")
    console.error("oops s3cr%t", title="t s3cr%t")
    lines = _lines(out)
    assert lines[0] == "::add-mask::s3cr%25t%0Aline2"
    assert lines[1] == "::add-mask::s3cr%25t"
    assert lines[2] == "::add-mask::line2"
    assert all("s3cr" not in line for line in lines[3:])
    assert "value ***" in lines[3]
    runner = Runner()
    runner.feed(out.getvalue())
    assert runner.masks == ["s3cr%t\nline2", "s3cr%t", "line2"]


def test_annotation_limit_falls_back_to_plain_lines() -> None:
    console, out = buffered_console()
    for i in range(12):
        console.error(f"e{i}", title="T")
    console.warning("w")
    lines = _lines(out)
    assert sum(1 for line in lines if line.startswith("::error ")) == 10
    assert lines[10] == "Error: T: e10"
    assert lines[12] == "::warning::w"


def test_group_context_manager_and_escaped_title() -> None:
    console, out = buffered_console()
    with console.group("deploy\n::error::x"):
        console.info("inside")
    assert _lines(out) == ["::group::deploy%0A::error::x", "inside", "::endgroup::"]


def test_reporter_groups_phases() -> None:
    console, out = buffered_console()
    reporter = GitHubReporter(console)
    phase = Phase("smoke", started=1.0)
    reporter.phase_started(phase)
    reporter.info("GET /")
    reporter.warning("slow\n::error::x")
    phase.ended, phase.ok, phase.detail = 3.25, False, "HTTP 500\n::error::forged"
    reporter.phase_finished(phase)
    lines = _lines(out)
    assert lines[0] == "::group::smoke"
    assert lines[1] == "GET /"
    assert lines[2] == "::warning::slow%0A::error::x"
    assert lines[3] == "❌ smoke (2.2 s): HTTP 500 ::error::forged"  # inside the group, neutralised
    assert lines[4] == "::endgroup::"
    assert len(lines) == 5


def test_reporter_satisfies_protocol() -> None:
    from deployer.result import Reporter

    reporter: Reporter = GitHubReporter(Console(io.StringIO()))
    assert reporter is not None


def test_report_failure() -> None:
    console, out = buffered_console()
    gh.report_failure(console, rollout_result(Outcome.PROMOTED))
    gh.report_failure(console, rollout_result(Outcome.ROLLED_BACK, mode="rollback"))
    assert out.getvalue() == ""
    gh.report_failure(console, rollout_result(Outcome.ROLLED_BACK, reason="smoke: 500\n::error::x, y"))
    parsed = parse_v2(out.getvalue().strip(), REGISTERED)
    assert parsed == ("error", {"title": "Cloud Run rollout rolled back: svc"}, "smoke: 500\n::error::x, y")
