"""The GitHub side: workflow commands as the runner parses them, files, summary, Deployments, PR comment."""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Iterator

import pytest

from deployer import github as gh
from deployer.github import Console, DeploymentTracker, GitHubReporter, files, render
from deployer.result import Outcome, Phase, RolloutResult, TrafficChange
from deployer.settings import Config, RunContext
from deployer.traffic import Target
from tests.fakes.github_api import FakeGitHub

# ---------------------------------------------------------------------------------------------
# A port of the runner's parsing (actions/runner ActionCommand.cs, ActionCommandManager.cs and the
# file-command reader), so tests check what GitHub would actually do with our output.
# ---------------------------------------------------------------------------------------------

REGISTERED = {
    "stop-commands", "set-env", "set-output", "save-state", "add-mask", "add-path", "add-matcher",
    "remove-matcher", "warning", "error", "notice", "debug", "group", "endgroup", "echo",
}  # fmt: skip
_NET_NOT_SPACE = set("\x1c\x1d\x1e\x1f")  # Python isspace() says yes, .NET char.IsWhiteSpace no


def _net_trim_start(s: str) -> str:
    i = 0
    while i < len(s) and s[i].isspace() and s[i] not in _NET_NOT_SPACE:
        i += 1
    return s[i:]


def _net_trim(s: str) -> str:
    s = _net_trim_start(s)
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
    msg = _net_trim_start(line)
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
        for prop in [p for p in _net_trim(info[space + 1 :]).split(",") if p]:
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


# ---------------------------------------------------------------------------------------------
# Workflow commands
# ---------------------------------------------------------------------------------------------


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(out), out


def _lines(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


def test_neutralised_lines_stay_readable() -> None:
    console, out = _console()
    console.info("ok\n  ::error::forged\n::stop-commands::abc\nsee ##[error]x\n\x1b[31mred")
    assert _lines(out) == [
        "ok",
        ">   ::error::forged",
        "> ::stop-commands::abc",
        "see # #[error]x",
        "\u241b[31mred",
    ]


def test_stop_commands_trick_cannot_disable_masking() -> None:
    console, out = _console()
    console.info("server said:\n::stop-commands::pwn")
    console.warning("::stop-commands::pwn2")
    console.mask("hunter2")
    runner = Runner()
    runner.feed(out.getvalue())
    assert runner.stopped_token is None
    assert runner.masks == ["hunter2"]


def test_mask_is_emitted_before_use_and_redacts() -> None:
    console, out = _console()
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
    console, out = _console()
    for i in range(12):
        console.error(f"e{i}", title="T")
    console.warning("w")
    lines = _lines(out)
    assert sum(1 for line in lines if line.startswith("::error ")) == 10
    assert lines[10] == "Error: T: e10"
    assert lines[12] == "::warning::w"


def test_group_context_manager_and_escaped_title() -> None:
    console, out = _console()
    with console.group("deploy\n::error::x"):
        console.info("inside")
    assert _lines(out) == ["::group::deploy%0A::error::x", "inside", "::endgroup::"]


def test_reporter_groups_phases() -> None:
    console, out = _console()
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
    console, out = _console()
    gh.report_failure(console, _result(Outcome.PROMOTED))
    gh.report_failure(console, _result(Outcome.ROLLED_BACK, mode="rollback"))
    assert out.getvalue() == ""
    gh.report_failure(console, _result(Outcome.ROLLED_BACK, reason="smoke: 500\n::error::x, y"))
    parsed = parse_v2(out.getvalue().strip(), REGISTERED)
    assert parsed == ("error", {"title": "Cloud Run rollout rolled back: svc"}, "smoke: 500\n::error::x, y")


# ---------------------------------------------------------------------------------------------
# Outputs and state
# ---------------------------------------------------------------------------------------------


def _result(outcome: Outcome = Outcome.PROMOTED, **kw: object) -> RolloutResult:
    base: dict[str, object] = {
        "outcome": outcome,
        "mode": "deploy",
        "service": "svc",
        "region": "us-central1",
        "project": "proj",
        "image": "sample/hello:1",
        "revision": "svc-abc",
        "previous_revision": "svc-old",
        "url": "https://svc-xyz.a.run.app",
        "tag_url": "https://canary---svc-xyz.a.run.app",
        "traffic_before": (Target("svc-old", 100, tag="stable"),),
        "traffic_after": (
            Target("svc-abc", 100, tag="canary", url="https://canary---svc-xyz.a.run.app"),
            Target("svc-old", 0, tag="stable"),
        ),
    }
    base.update(kw)
    return RolloutResult(**base)  # type: ignore[arg-type]


def test_write_outputs_round_trip(tmp_path) -> None:
    path = tmp_path / "output"
    path.write_text("earlier=1\n")
    fake_delimiter = f"ghadelimiter_{uuid.uuid4()}"
    result = _result(reason=None, revision=f"rev\n{fake_delimiter}\nx=1", previous_revision="")
    gh.write_outputs(result, str(path))
    parsed = read_file_commands(path.read_bytes().decode("utf-8"))
    assert parsed["earlier"] == "1"
    assert parsed["revision"] == f"rev\n{fake_delimiter}\nx=1"
    assert parsed["previous_revision"] == ""
    assert parsed["result"] == "promoted"
    assert parsed["url"] == "https://svc-xyz.a.run.app"
    assert parsed["tag_url"] == "https://canary---svc-xyz.a.run.app"
    assert json.loads(parsed["traffic"]) == [
        {
            "revisionName": "svc-abc",
            "percent": 100,
            "tag": "canary",
            "url": "https://canary---svc-xyz.a.run.app",
        },
        {"revisionName": "svc-old", "percent": 0, "tag": "stable"},
    ]
    assert re.search(r"^result<<ghadelimiter_[0-9a-f-]{36}$", path.read_text(), re.M)


def test_traffic_json_latest() -> None:
    assert json.loads(files.traffic_json((Target(None, 100, latest=True),))) == [
        {"percent": 100, "latestRevision": True}
    ]


def test_write_outputs_without_path_does_nothing(tmp_path) -> None:
    gh.write_outputs(_result(), None)
    gh.write_outputs(_result(), "")
    gh.save_state("x", "y", None)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Step summary
# ---------------------------------------------------------------------------------------------

EVIL = 'evil|</td><script>alert(1)</script>`x`\n# heading @admin %%{init}%% "q"'


def _history() -> list[TrafficChange]:
    old, new = "svc-old", "svc-abc"
    return [
        TrafficChange(0.0, "before", (Target(old, 100),)),
        TrafficChange(5.0, "deployed", (Target(old, 100), Target(new, 0, tag="canary"))),
        TrafficChange(9.0, "10%", (Target(old, 90), Target(new, 10, tag="canary"))),
        TrafficChange(20.0, "promoted", (Target(new, 100, tag="canary"),)),
    ]


def _table_rows(markdown: str, header: str) -> list[str]:
    lines = markdown.splitlines()
    start = lines.index(header)
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def _cells(row: str) -> int:
    return len(re.findall(r"(?<!\\)\|", row)) - 1


def test_summary_contents() -> None:
    result = _result(
        history=_history(),
        phases=[Phase("deploy", 0.0, 4.96, True, "created svc-abc"), Phase("smoke", 5.0, None, None)],
    )
    md = gh.render_summary(result, Config(service="svc", steps=(10, 100)))
    assert md.startswith("## Cloud Run rollout: promoted\n")
    for text in ("`svc`", "`us-central1`", "`proj`", "`sample/hello:1`", "`svc-abc`", "`svc-old`"):
        assert text in md
    assert "[https://canary---svc-xyz.a.run.app](https://canary---svc-xyz.a.run.app)" in md
    assert "| deploy | 5.0 | ✅ | created svc\\-abc |" not in md  # '-' is not escaped
    assert "| deploy | 5.0 | ✅ | created svc-abc |" in md
    assert "| smoke | 0.0 | — | — |" in md
    assert "| Revision | Percent | Tag |" in md
    assert "| `svc-old` | 100% | `stable` |" in md
    assert "```mermaid\n---\nconfig:\n" in md and "\n---\nxychart-beta\n" in md
    assert 'x-axis ["before", "deployed", "10%", "promoted"]' in md
    assert 'y-axis "traffic %" 0 --> 100' in md
    assert 'line "svc-old" [100, 100, 90, 0]' in md
    assert 'line "svc-abc" [0, 0, 10, 100]' in md
    assert "Reason" not in md


def test_summary_escapes_hostile_names() -> None:
    result = _result(
        Outcome.ROLLED_BACK,
        image=EVIL,
        revision=EVIL,
        reason=EVIL,
        traffic_after=(Target(EVIL, 100, tag=EVIL),),
        history=[TrafficChange(0.0, EVIL, (Target(EVIL, 100),))],
        phases=[Phase(EVIL, 0.0, 1.0, False, EVIL)],
    )
    md = gh.render_summary(result)
    assert "<script" not in md and "</td>" not in md
    assert "\n# heading" not in md
    prose = re.sub(r"(`+).*?\1", "", md.split("```mermaid")[0])  # code spans are inert anyway
    assert "@admin" not in prose and "@\u200badmin" in prose  # mentions broken in prose
    assert "**Reason:** evil\\|&lt;/td&gt;" in md
    for header in ("| Phase | Duration (s) | Result | Detail |", "| Revision | Percent | Tag |"):
        for row in _table_rows(md, header):
            assert _cells(row) == (4 if "Phase" in header else 3), row
    mermaid = md.split("```mermaid\n", 1)[1].split("\n```", 1)[0]
    for line in mermaid.splitlines():
        assert line.count('"') % 2 == 0
        assert "%%" not in line
    assert re.search(r'line "evil_[A-Za-z0-9 ._:/+%\-]*" \[0, 100\]', mermaid)


def test_summary_code_spans_survive_backticks() -> None:
    assert render.md_code("a``b") == "```a``b```"
    assert render.md_code("`x") == "`` `x ``"
    assert render.md_code("a|b", table=True) == "`a\\|b`"
    assert render.md_code(None) == "—"
    assert render.md_link("javascript:alert(1)") == "`javascript:alert(1)`"


def test_dry_run_plan_and_diff() -> None:
    diff = ["--- a", "+++ b", "-  image: old", "+  image: new", "```", "+ x"]
    plan = [(Target("old", 90), Target("new", 10, tag="canary")), (Target("new", 100, tag="canary"),)]
    md = gh.render_summary(_result(Outcome.PLANNED, plan=plan, template_diff=diff))
    assert "## Cloud Run rollout: planned" in md
    assert "| 1 | `old 90%`, `new 10% (tag canary)` |" in md
    assert "````diff\n--- a\n+++ b\n-  image: old\n+  image: new\n```\n+ x\n````" in md


def test_long_diff_is_truncated_and_summary_stays_small(tmp_path) -> None:
    diff = [f"+ line {i} " + "x" * 300 for i in range(20_000)]
    md = gh.render_summary(_result(Outcome.PLANNED, template_diff=diff))
    assert len(md.encode()) < files.SUMMARY_LIMIT
    assert "more lines not shown" in md
    path = tmp_path / "summary.md"
    gh.append_summary(md, str(path))
    gh.append_summary("x" * 2_000_000, str(path))
    assert path.stat().st_size < 2 * files.SUMMARY_LIMIT
    gh.append_summary("ignored", None)


# ---------------------------------------------------------------------------------------------
# Deployments and PR comments against the fake GitHub API
# ---------------------------------------------------------------------------------------------

TOKEN = "ghs_SuperSecretToken123"


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub(token=TOKEN, prefix="/api/v3") as server:  # GitHub Enterprise-style base URL
        yield server


def _ctx(fake: FakeGitHub, event: str = "push", pr: int | None = None) -> RunContext:
    return RunContext(
        sha="0123abcd",
        ref="refs/heads/main",
        repository="octo/app",
        run_id="42",
        run_attempt="2",
        api_url=fake.url,
        event_name=event,
        pr_number=pr,
    )


def _posts(fake: FakeGitHub, suffix: str) -> list[dict]:
    return [r["json"] for r in fake.requests if r["method"] == "POST" and r["path"].endswith(suffix)]


def test_deployment_lifecycle(fake: FakeGitHub, capsys) -> None:
    ctx = _ctx(fake)
    tracker = DeploymentTracker(TOKEN, ctx, "production", "svc", "us-central1", write_interval=None)
    assert tracker.start(ctx.ref, ctx.sha, "deploy sample/hello:1")
    assert tracker.finish(_result())
    tracker.close()
    (body,) = _posts(fake, "/deployments")
    assert body["ref"] == "0123abcd" and body["environment"] == "production"
    assert body["auto_merge"] is False and body["required_contexts"] == []
    assert body["production_environment"] is True and body["transient_environment"] is False
    first, second = _posts(fake, "/statuses")
    assert first["state"] == "in_progress"
    assert first["log_url"] == first["target_url"] == "https://github.com/octo/app/actions/runs/42/attempts/2"
    assert second["state"] == "success"
    assert second["environment_url"] == "https://svc-xyz.a.run.app"
    assert all(r["path"].startswith("/api/v3/") for r in fake.requests)
    # lazy: the only read is the look-up of a deployment GitHub made for the job
    assert [r["path"] for r in fake.requests if r["method"] == "GET"] == [
        "/api/v3/repos/octo/app/deployments"
    ]
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"::add-mask::{TOKEN}"
    assert out.count(TOKEN) == 1


@pytest.mark.parametrize(
    ("environment", "flag", "production"),
    [
        ("production", None, True),
        ("Prod", None, True),
        ("staging", None, False),
        ("svc-us-central1", None, False),
        ("staging", True, True),
        ("production", False, False),
    ],
)
def test_production_environment_only_where_the_user_says_so(
    fake: FakeGitHub, environment: str, flag: bool | None, production: bool
) -> None:
    ctx = _ctx(fake)
    tracker = DeploymentTracker(
        TOKEN,
        ctx,
        environment,
        "svc",
        "us-central1",
        console=Console(io.StringIO()),
        write_interval=None,
        production=flag,
    )
    assert tracker.start(ctx.ref, ctx.sha)
    (body,) = _posts(fake, "/deployments")
    assert body["production_environment"] is production


def test_the_deployment_github_made_for_the_job_is_used_not_duplicated(fake: FakeGitHub) -> None:
    ctx = _ctx(fake)
    runs = "https://github.com/octo/app/actions/runs"
    fake.job_deployment("octo/app", "0123abcd", "production", f"{runs}/41/job/6")  # another run
    job = fake.job_deployment("octo/app", "0123abcd", "production", f"{runs}/42/job/7")
    fake.job_deployment("octo/app", "0123abcd", "staging", f"{runs}/42/job/8")  # another environment
    out = io.StringIO()
    tracker = DeploymentTracker(
        TOKEN, ctx, "production", "svc", "us-central1", console=Console(out), write_interval=None
    )
    assert tracker.start(ctx.ref, ctx.sha)
    assert tracker.finish(_result())
    assert tracker.adopted and _posts(fake, "/deployments") == []  # no duplicate
    states = [s["state"] for s in fake.statuses[job]]
    assert states == ["success", "in_progress", "in_progress"]  # newest first: ours on GitHub's
    assert fake.statuses[job][0]["environment_url"] == "https://svc-xyz.a.run.app"
    assert f"already has a deployment from GitHub (id {job})" in out.getvalue()


def test_a_finished_job_deployment_of_an_earlier_attempt_is_not_reused(fake: FakeGitHub) -> None:
    ctx = _ctx(fake)
    old = fake.job_deployment(
        "octo/app", "0123abcd", "production", "https://github.com/octo/app/actions/runs/42/job/5"
    )
    fake.statuses[old][0]["state"] = "failure"
    tracker = DeploymentTracker(
        TOKEN, ctx, "production", "svc", "us-central1", console=Console(io.StringIO()), write_interval=None
    )
    assert tracker.start(ctx.ref, ctx.sha)
    assert not tracker.adopted and len(_posts(fake, "/deployments")) == 1


def test_pull_request_preview_uses_tag_url(fake: FakeGitHub) -> None:
    ctx = _ctx(fake, "pull_request", 7)
    console = Console(io.StringIO())
    tracker = DeploymentTracker(
        TOKEN, ctx, "pr-7", "svc", "us-central1", console=console, write_interval=None
    )
    assert tracker.start(ctx.ref, "", "")
    assert tracker.finish(_result(Outcome.DEPLOYED))
    body = _posts(fake, "/deployments")[0]
    assert body["ref"] == "refs/heads/main"
    assert body["transient_environment"] is True and body["production_environment"] is False
    assert _posts(fake, "/statuses")[-1]["environment_url"] == "https://canary---svc-xyz.a.run.app"


@pytest.mark.parametrize(
    ("result", "state"),
    [
        (_result(Outcome.ROLLED_BACK, reason="smoke failed: " + "x" * 300), "failure"),
        (_result(Outcome.ROLLED_BACK, mode="rollback"), "inactive"),
        (_result(Outcome.FAILED, revision=None, reason="quota"), "error"),
        (_result(Outcome.FAILED, reason="not ready"), "failure"),
        (_result(Outcome.PAUSED), "success"),
    ],
)
def test_final_states(fake: FakeGitHub, result: RolloutResult, state: str) -> None:
    ctx = _ctx(fake)
    tracker = DeploymentTracker(
        TOKEN, ctx, "", "svc", "eu", console=Console(io.StringIO()), write_interval=None
    )
    assert tracker.start("", ctx.sha)
    assert tracker.finish(result)
    final = _posts(fake, "/statuses")[-1]
    assert final["state"] == state
    assert len(final["description"]) <= 140
    assert _posts(fake, "/deployments")[0]["environment"] == "svc-eu"
    if result.outcome is Outcome.ROLLED_BACK and result.mode == "deploy":
        assert final["description"].startswith("rolled back")


def test_api_errors_do_not_raise(fake: FakeGitHub, capsys) -> None:
    ctx = _ctx(fake, "pull_request", 3)
    fake.fail("POST", r"/deployments$", 500)
    tracker = DeploymentTracker(TOKEN, ctx, "prod", "svc", "eu", write_interval=None)
    assert tracker.start(ctx.ref, ctx.sha) is False
    assert tracker.finish(_result()) is False
    assert tracker.start(ctx.ref, ctx.sha) is True
    fake.fail("POST", r"/statuses$", 500)
    assert tracker.finish(_result()) is False
    fake.fail("GET", r"/comments$", 500)
    assert gh.upsert_pr_comment(TOKEN, ctx, "hi", service="svc", region="eu", write_interval=None) is None
    out = capsys.readouterr().out
    assert "::warning title=GitHub API::could not create the GitHub deployment: HTTP 500" in out
    assert TOKEN not in out.replace(f"::add-mask::{TOKEN}", "")


def test_bad_token_is_a_warning_and_never_printed(fake: FakeGitHub, capsys) -> None:
    wrong = "ghs_WrongToken%456"
    ctx = _ctx(fake, "pull_request", 3)
    tracker = DeploymentTracker(wrong, ctx, "prod", "svc", "eu", write_interval=None)
    assert tracker.start(ctx.ref, ctx.sha) is False
    assert gh.upsert_pr_comment(wrong, ctx, "hi", service="svc", region="eu", write_interval=None) is None
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "::add-mask::ghs_WrongToken%25456"
    assert "HTTP 401: Bad credentials" in out
    assert wrong not in out
    assert fake.requests[0]["headers"]["Authorization"] == f"token {wrong}"


def test_pr_comment_is_updated_on_rerun(fake: FakeGitHub) -> None:
    ctx = _ctx(fake, "pull_request", 7)
    console = Console(io.StringIO())
    fake.add_comment(7, "LGTM")
    fake.add_comment(7, "<!-- run-canary:svc:us-central1 --> quoted by a human", login="mallory")
    fake.add_comment(8, "<!-- run-canary:svc:us-central1 -->\nother PR", login="github-actions[bot]")
    body1 = gh.render_pr_comment(_result(Outcome.DEPLOYED), ctx.run_url)
    first = gh.upsert_pr_comment(TOKEN, ctx, body1, service="svc", region="us-central1", console=console)
    ours = [c for c in fake.comments_on(7) if c["user"]["login"] == "github-actions[bot]"]
    assert len(ours) == 1 and ours[0]["id"] == first
    body2 = gh.render_pr_comment(_result(Outcome.ROLLED_BACK, reason="smoke"), ctx.run_url)
    second = gh.upsert_pr_comment(TOKEN, ctx, body2, service="svc", region="us-central1", console=console)
    ours = [c for c in fake.comments_on(7) if c["user"]["login"] == "github-actions[bot]"]
    assert second == first and len(ours) == 1
    assert ours[0]["body"].startswith("<!-- run-canary:svc:us-central1 -->\n")
    assert "rolled back" in ours[0]["body"] and "**Reason:** smoke" in ours[0]["body"]
    assert "[workflow run](https://github.com/octo/app/actions/runs/42/attempts/2)" in ours[0]["body"]
    assert "https://canary---svc-xyz.a.run.app" in ours[0]["body"]
    # another service/region gets its own comment
    third = gh.upsert_pr_comment(TOKEN, ctx, "x", service="svc", region="eu", console=console)
    assert third != first


def test_pr_comment_only_on_pull_requests(fake: FakeGitHub) -> None:
    assert (
        gh.upsert_pr_comment(TOKEN, _ctx(fake), "x", service="s", region="r", console=Console(io.StringIO()))
        is None
    )
    assert fake.requests == []


def test_state_name_is_validated(tmp_path) -> None:
    with pytest.raises(ValueError):
        gh.save_state("a=b", "x", str(tmp_path / "state"))
