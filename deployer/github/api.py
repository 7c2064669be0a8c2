"""GitHub's REST API: Deployments with statuses, and the PR comment with the tag URL.

PyGithub is imported lazily (inside the functions that need it): it is slow to import and only used
when a token is given.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from deployer.console import Console as LogConsole
from deployer.github.commands import Console
from deployer.github.render import comment_marker
from deployer.result import Outcome, RolloutResult
from deployer.settings import RunContext
from deployer.text import one_line, truncate

if TYPE_CHECKING:
    from github.Deployment import Deployment
    from github.MainClass import Github
    from github.Repository import Repository


DESCRIPTION_LIMIT = 140  # deployment status descriptions
PRODUCTION_NAMES = frozenset({"production", "prod"})
OPEN_STATES = frozenset({"queued", "pending", "in_progress"})
JOB_LOOKUP = 5  # newest deployments of the commit and environment looked at for the job's own

# GitHub API: Deployments and the PR comment
# ---------------------------------------------------------------------------------------------

_PR_EVENTS = {"pull_request", "pull_request_target"}


def is_pull_request(ctx: RunContext) -> bool:
    return ctx.event_name in _PR_EVENTS


def _describe_error(exc: BaseException) -> str:
    """A short error text that never includes request headers (where the token lives)."""
    status = getattr(exc, "status", None)
    data = getattr(exc, "data", None)
    if status is not None:
        message = data.get("message") if isinstance(data, dict) else data
        return f"HTTP {status}: {truncate(str(message or ''), 300)}"
    return f"{type(exc).__name__}: {truncate(str(exc), 300)}"


def build_client(
    token: str,
    ctx: RunContext,
    console: LogConsole,
    *,
    timeout: int = 10,
    retries: int = 2,
    write_interval: float | None = 1.0,
) -> Github:
    """A lazy PyGithub client for ``ctx.api_url`` (GitHub Enterprise too); the token is masked first.

    Retries are few and only for idempotent GETs on gateway errors: a GitHub hiccup must not stall
    a rollout (PyGithub's default retry waits up to minutes on rate limits).
    """
    console.mask(token)
    from github import Auth, Github
    from urllib3.util.retry import Retry

    retry = Retry(
        total=retries,
        status_forcelist=(502, 503, 504),
        allowed_methods=frozenset({"GET"}),
        backoff_factor=0.5,
        raise_on_status=False,
    )
    return Github(
        auth=Auth.Token(token),
        base_url=(ctx.api_url or "https://api.github.com").rstrip("/"),
        timeout=timeout,
        retry=retry,
        lazy=True,
        seconds_between_requests=None,
        seconds_between_writes=write_interval,
    )


class DeploymentTracker:
    """A GitHub Deployment for this run, with statuses following the rollout.

    Best effort: any API error becomes a warning; the rollout never fails because of GitHub.
    """

    def __init__(
        self,
        token: str,
        ctx: RunContext,
        environment: str,
        service: str,
        region: str,
        *,
        console: LogConsole | None = None,
        write_interval: float | None = 1.0,
        production: bool | None = None,
    ):
        self.production = production  # None: from the environment's name
        self.adopted = False  # True: we report on the deployment GitHub made for the job
        self.console: LogConsole = console or Console()
        self.console.mask(token)  # before anything else can print it
        self._token = token
        self.ctx = ctx
        self.environment = environment or f"{service}-{region}"
        self.service = service
        self.region = region
        self._write_interval = write_interval
        self._client: Github | None = None
        self.deployment: Deployment | None = None

    def _github(self) -> Github:
        if self._client is None:
            self._client = build_client(
                self._token, self.ctx, self.console, write_interval=self._write_interval
            )
        return self._client

    def _warn(self, what: str, exc: BaseException) -> None:
        self.console.warning(f"{what}: {_describe_error(exc)}", title="GitHub API")

    def start(self, ref: str, sha: str, description: str = "") -> bool:
        """Create the deployment and mark it in progress; False (with a warning) if GitHub refused."""
        target = sha or ref
        if not self._token:
            return False
        if not (target and self.ctx.repository):
            self.console.warning("no commit or repository known: not creating a GitHub deployment")
            return False
        pr = is_pull_request(self.ctx)
        try:
            repo = self._github().get_repo(self.ctx.repository)
            self.deployment = self._job_deployment(repo, target)
            if self.deployment is not None:
                self.adopted = True
                self.console.info(
                    f"This job's environment {self.environment!r} already has a deployment from GitHub "
                    f"(id {self.deployment.id}): reporting on it instead of creating another."
                )
            else:
                self.deployment = repo.create_deployment(
                    ref=target,
                    environment=self.environment,
                    auto_merge=False,
                    required_contexts=[],
                    transient_environment=pr,
                    production_environment=self.is_production(pr),
                    description=truncate(description or f"Cloud Run {self.service} ({self.region})", 140),
                    payload={"service": self.service, "region": self.region},
                )
            self._status("in_progress", "Rolling out to Cloud Run")
        except Exception as exc:  # best effort: GitHub must not break a rollout
            self._warn("could not create the GitHub deployment", exc)
            return False
        return True

    def is_production(self, pull_request: bool) -> bool:
        """``production_environment``: what the user said, else only an environment named
        production or prod (a staging or preview environment is not production)."""
        if self.production is not None:
            return self.production
        return not pull_request and self.environment.strip().lower() in PRODUCTION_NAMES

    def _job_deployment(self, repo: Repository, target: str) -> Deployment | None:
        """The deployment GitHub created for this job, when the job declares ``environment:`` with
        the same name: same commit and environment, still in progress, its status linking to a job
        of this run (``.../actions/runs/<run id>/job/<job id>``). None when there is none."""
        if not self.ctx.run_id:
            return None
        marker = f"/actions/runs/{self.ctx.run_id}/job/"
        try:
            found: list[Deployment] = list(
                repo.get_deployments(sha=target, environment=self.environment)[:JOB_LOOKUP]
            )
            for deployment in found:
                latest = next(iter(deployment.get_statuses()), None)
                urls = (latest.log_url or "", latest.target_url or "") if latest else ("", "")
                if latest and latest.state in OPEN_STATES and any(marker in url for url in urls):
                    return deployment
        except Exception as exc:  # best effort: without it we create our own
            self.console.debug(f"could not look for the job's deployment: {_describe_error(exc)}")
        return None

    def _status(self, state: str, description: str, environment_url: str | None = None) -> None:
        """POST a status; via the requester because PyGithub's create_status has no ``log_url``."""
        assert self.deployment is not None
        body: dict[str, Any] = {
            "state": state,
            "description": truncate(one_line(description), DESCRIPTION_LIMIT),
            "environment": self.environment,
            "auto_inactive": True,
        }
        if self.ctx.run_url:
            body["log_url"] = body["target_url"] = self.ctx.run_url
        if environment_url:
            body["environment_url"] = environment_url
        self.deployment.requester.requestJsonAndCheck(
            "POST",
            f"{self.deployment.url}/statuses",
            input=body,
            headers={"Accept": "application/vnd.github+json"},
        )

    def finish(self, result: RolloutResult) -> bool:
        """The final status for the outcome; False (with a warning) if it could not be set."""
        if self.deployment is None:
            return False
        state, description, url = deployment_status_for(result, is_pull_request(self.ctx))
        try:
            self._status(state, description, url)
        except Exception as exc:
            self._warn("could not update the GitHub deployment", exc)
            return False
        return True

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()


def deployment_status_for(result: RolloutResult, pull_request: bool) -> tuple[str, str, str | None]:
    """(state, description, environment_url) of the final deployment status for a result."""
    outcome = result.outcome
    revision = result.revision or "?"
    jobs = "".join(f"; {job.when} job {job.job}: {job.result.replace('_', ' ')}" for job in result.jobs)
    if any(job.fails_step for job in result.jobs):
        return (
            "failure",
            truncate(f"{outcome.value}: {revision}, but {result.reason or jobs}", DESCRIPTION_LIMIT),
            None,
        )
    if outcome is Outcome.EXECUTED:
        job = result.jobs[-1] if result.jobs else None
        text = f"job {job.job}: execution {job.execution} succeeded" if job else "job executed"
        return "success", truncate(text, DESCRIPTION_LIMIT), None
    if outcome in (Outcome.PROMOTED, Outcome.PAUSED, Outcome.DEPLOYED):
        preview = pull_request or outcome is Outcome.DEPLOYED
        url = (result.tag_url or result.url) if preview else (result.url or result.tag_url)
        return "success", truncate(f"{outcome.value}: {revision}{jobs}", DESCRIPTION_LIMIT), url
    if outcome is Outcome.PLANNED:
        return "inactive", "dry run: nothing was deployed", None
    if outcome is Outcome.ROLLED_BACK:
        if result.mode == "rollback":
            return "inactive", f"rolled back to {revision}", None
        return "failure", truncate(f"rolled back: {result.reason or 'see the run'}", DESCRIPTION_LIMIT), None
    state = "failure" if result.revision else "error"
    return state, truncate(f"failed: {result.reason or 'see the run'}", DESCRIPTION_LIMIT), None


# Same parameters as DeploymentTracker: both are best-effort REST calls for one run and one service.
def upsert_pr_comment(
    token: str,
    ctx: RunContext,
    body: str,
    *,
    service: str,
    region: str,
    console: LogConsole | None = None,
    write_interval: float | None = 1.0,
) -> int | None:
    """Create or update our comment on the pull request; returns its id, or None (with a warning)."""
    console = console or Console()
    console.mask(token)
    if ctx.pr_number is None or not ctx.repository:
        return None
    marker = comment_marker(service, region)
    text = f"{marker}\n{body}"
    gh = build_client(token, ctx, console, write_interval=write_interval)
    try:
        issue = gh.get_repo(ctx.repository).get_issue(ctx.pr_number)
        candidates = [c for c in issue.get_comments() if marker in (c.body or "")]
        candidates.sort(key=lambda c: getattr(c.user, "type", "") != "Bot")  # bots (us) first
        for comment in candidates:
            try:
                comment.edit(text)
                return int(comment.id)
            except Exception as exc:  # e.g. a human's comment quoting our marker: not ours to edit
                console.info(f"not editing comment {comment.id}: {_describe_error(exc)}")
        return int(issue.create_comment(text).id)
    except Exception as exc:
        console.warning(f"could not comment on the pull request: {_describe_error(exc)}", title="GitHub API")
        return None
    finally:
        with contextlib.suppress(Exception):
            gh.close()
