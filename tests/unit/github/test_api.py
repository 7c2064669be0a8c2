"""deployer.github.api: Deployments and their statuses, and the PR comment, against a loopback GitHub API."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from deployer import github as gh
from deployer.github import Console, DeploymentTracker
from deployer.result import Outcome, RolloutResult
from deployer.settings import RunContext
from tests.fakes.github_api import FakeGitHub
from tests.unit.github.results import rollout_result

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
    assert tracker.finish(rollout_result())
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
    assert tracker.finish(rollout_result())
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
    assert tracker.finish(rollout_result(Outcome.DEPLOYED))
    body = _posts(fake, "/deployments")[0]
    assert body["ref"] == "refs/heads/main"
    assert body["transient_environment"] is True and body["production_environment"] is False
    assert _posts(fake, "/statuses")[-1]["environment_url"] == "https://canary---svc-xyz.a.run.app"


@pytest.mark.parametrize(
    ("result", "state"),
    [
        (rollout_result(Outcome.ROLLED_BACK, reason="smoke failed: " + "x" * 300), "failure"),
        (rollout_result(Outcome.ROLLED_BACK, mode="rollback"), "inactive"),
        (rollout_result(Outcome.FAILED, revision=None, reason="quota"), "error"),
        (rollout_result(Outcome.FAILED, reason="not ready"), "failure"),
        (rollout_result(Outcome.PAUSED), "success"),
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
    assert tracker.finish(rollout_result()) is False
    assert tracker.start(ctx.ref, ctx.sha) is True
    fake.fail("POST", r"/statuses$", 500)
    assert tracker.finish(rollout_result()) is False
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
    body1 = gh.render_pr_comment(rollout_result(Outcome.DEPLOYED), ctx.run_url)
    first = gh.upsert_pr_comment(TOKEN, ctx, body1, service="svc", region="us-central1", console=console)
    ours = [c for c in fake.comments_on(7) if c["user"]["login"] == "github-actions[bot]"]
    assert len(ours) == 1 and ours[0]["id"] == first
    body2 = gh.render_pr_comment(rollout_result(Outcome.ROLLED_BACK, reason="smoke"), ctx.run_url)
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
