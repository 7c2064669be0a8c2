"""The GitHub side: workflow commands, outputs, state, step summary, Deployments and the PR comment.

It renders a :class:`~deployer.result.RolloutResult`; it never talks to Cloud Run. Everything printed
or written here may contain untrusted text (server error messages, image and revision names, user
inputs), so every path out goes through one of the neutralising helpers below.

PyGithub is imported lazily (inside the functions that need it): it is slow to import and only used
when a token is given.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from actions_toolkit.command import Command, escape_data
from actions_toolkit.file_command import prepare_key_value_message

from deployer.config import Config, RunContext
from deployer.result import Outcome, Phase, RolloutResult
from deployer.traffic import Target, Traffic

if TYPE_CHECKING:
    from github.Deployment import Deployment
    from github.MainClass import Github

ANNOTATION_LIMIT = 10  # GitHub shows at most 10 of each kind per step; the rest would be lost
SUMMARY_LIMIT = 1024 * 1024  # bytes per step summary
_SUMMARY_BUDGET = 900_000  # stay well under the limit: other steps' masking can grow the text
DESCRIPTION_LIMIT = 140  # deployment status descriptions

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


def split_lines(text: str) -> list[str]:
    """Split like the runner does (LF, CR, CRLF) and like any viewer might (the other separators)."""
    return text.splitlines() or [""]


class Console:
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

    @contextlib.contextmanager
    def group(self, title: str) -> Iterator[None]:
        self.start_group(title)
        try:
            yield
        finally:
            self.end_group()


# ---------------------------------------------------------------------------------------------
# Outputs and state files
# ---------------------------------------------------------------------------------------------


def traffic_json(traffic: Traffic) -> str:
    """``status.traffic`` as the contract's JSON: camelCase keys, empty fields omitted."""
    return json.dumps([_target_dict(t) for t in traffic], separators=(",", ":"))


def _target_dict(target: Target) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if target.revision:
        entry["revisionName"] = target.revision
    entry["percent"] = target.percent
    if target.tag:
        entry["tag"] = target.tag
    if target.url:
        entry["url"] = target.url
    if target.latest:
        entry["latestRevision"] = True
    return entry


def outputs_for(result: RolloutResult) -> dict[str, str]:
    """The contract outputs as strings (missing values are empty strings)."""
    return {
        "url": result.url or "",
        "tag_url": result.tag_url or "",
        "revision": result.revision or "",
        "previous_revision": result.previous_revision or "",
        "result": str(result.outcome.value),
        "traffic": traffic_json(result.traffic_after),
    }


def _append_key_values(path: str, values: Mapping[str, str]) -> None:
    """Append ``name<<ghadelimiter_<uuid>`` heredocs; the random delimiter makes values inert."""
    text = "".join(prepare_key_value_message(k, v) + os.linesep for k, v in values.items())
    with open(path, "a", encoding="utf-8", newline="") as f:
        f.write(text)


def write_outputs(result: RolloutResult, path: str | None) -> None:
    """Append the contract outputs to ``$GITHUB_OUTPUT``; nothing to do outside Actions."""
    if path:
        _append_key_values(path, outputs_for(result))


_STATE_NAME = re.compile(r"[A-Za-z0-9_-]+")


def save_state(name: str, value: str, path: str | None) -> None:
    """Append to ``$GITHUB_STATE``: the post entrypoint reads it back as ``STATE_<name>``."""
    if not _STATE_NAME.fullmatch(name):  # '=', '<<' or a newline would corrupt the file
        raise ValueError(f"invalid state name {name!r}")
    if path:
        _append_key_values(path, {name: value})


def append_summary(markdown: str, path: str | None) -> None:
    """Append to ``$GITHUB_STEP_SUMMARY`` (truncated to stay under the 1 MiB step limit)."""
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(_cap_bytes(markdown, _SUMMARY_BUDGET) + "\n")


# ---------------------------------------------------------------------------------------------
# Markdown helpers
# ---------------------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
_MENTION = re.compile(r"(?<![A-Za-z0-9])@")
_SAFE_URL = re.compile(r"https?://[A-Za-z0-9.\-]+(?::\d+)?(?:/[A-Za-z0-9._~%/+=&?#\-]*)?")


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def _one_line(text: str) -> str:
    return " ".join(split_lines(str(text))).replace("\t", " ")


def md_text(text: str | None, limit: int = 200) -> str:
    """Untrusted text as inert Markdown prose: one line, HTML escaped, Markdown punctuation escaped,
    ``@mentions`` broken (a zero-width space) so a name cannot ping anyone from a PR comment."""
    if not text:
        return "—"
    s = truncate(_one_line(text), limit)
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _MD_SPECIAL.sub(r"\\\1", s)
    return _MENTION.sub("@\u200b", s)


def md_code(text: str | None, limit: int = 200, *, table: bool = False) -> str:
    """Untrusted text as an inline code span: nothing inside is rendered as HTML, links or mentions.

    The fence is one backtick longer than any run inside; in a table ``|`` must still be escaped
    because GFM splits cells before it parses code spans. ``<`` and ``>`` (never part of a valid
    image, revision or URL) become U+2039 and U+203A angle quotes so no raw tag reaches the page even if a
    renderer got the span wrong.
    """
    if not text:
        return "—"
    s = truncate(_one_line(text), limit).replace("<", "\u2039").replace(">", "\u203a")
    longest = max((len(run) for run in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    if s.startswith("`") or s.endswith("`"):
        s = f" {s} "
    if table:
        s = s.replace("|", "\\|")
    return f"{fence}{s}{fence}"


def md_link(url: str | None, label: str | None = None, *, table: bool = False) -> str:
    """A clickable link only for plain http(s) URLs; anything else is shown as code."""
    if url and len(url) <= 500 and _SAFE_URL.fullmatch(url):
        return f"[{md_text(label or url, 500)}]({url})"
    return md_code(url, 200, table=table)


def _cell(text: str | None, limit: int = 200) -> str:
    return md_text(text, limit)


def _cap_bytes(text: str, limit: int) -> str:
    """Cut text to ``limit`` UTF-8 bytes, saying so, without splitting a character."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    note = "\n\n*(summary truncated)*\n"
    return data[: limit - len(note.encode())].decode("utf-8", errors="ignore") + note


# ---------------------------------------------------------------------------------------------
# Step summary
# ---------------------------------------------------------------------------------------------

_PHASE_MARK = {True: "✅", False: "❌", None: "—"}
_FAILED = {Outcome.FAILED, Outcome.ROLLED_BACK}
MAX_DIFF_LINES = 1500
MAX_DIFF_BYTES = 200_000
MAX_TABLE_ROWS = 200


def render_summary(result: RolloutResult, config: Config | None = None) -> str:
    """The step summary: status, what was deployed, why it failed, phases, traffic and its chart."""
    parts = [
        f"## Cloud Run rollout: {result.outcome.value.replace('_', ' ')}",
        _deployed_section(result, config),
    ]
    if result.outcome in _FAILED and result.reason:
        parts.append(f"**Reason:** {md_text(result.reason, 2000)}")
    if result.phases:
        parts.append("### Phases\n\n" + _phases_table(result.phases))
    parts.append(_traffic_section("Traffic before", result.traffic_before))
    parts.append(_traffic_section("Traffic after", result.traffic_after))
    if result.history:
        parts.append("### Traffic over the rollout\n\n" + mermaid_chart(result))
    if result.plan:
        parts.append("### Planned traffic\n\n" + _plan_table(result.plan))
    if result.template_diff:
        parts.append("### Template changes\n\n" + diff_block(result.template_diff))
    return _cap_bytes("\n\n".join(parts) + "\n", _SUMMARY_BUDGET)


def _deployed_section(result: RolloutResult, config: Config | None) -> str:
    rows: list[tuple[str, str]] = [
        ("Service", md_code(result.service)),
        ("Region", md_code(result.region)),
        ("Project", md_code(result.project)),
        ("Mode", md_code(result.mode)),
        ("Image", md_code(result.image, 300)),
        ("Revision", md_code(result.revision)),
        ("Tag URL", md_link(result.tag_url)),
        ("Service URL", md_link(result.url)),
        ("Previous revision", md_code(result.previous_revision)),
    ]
    if config is not None:
        rows.append(("Steps", md_text(" → ".join(f"{s}%" for s in config.steps))))
        rows.append(("Tag", md_code(config.tag)))
        if config.dry_run:
            rows.append(("Dry run", "yes: nothing was changed"))
    return "\n".join(f"- **{name}:** {value}" for name, value in rows)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    shown = rows[:MAX_TABLE_ROWS]
    lines += ["| " + " | ".join(row) + " |" for row in shown]
    if len(rows) > len(shown):
        lines.append(f"\n*({len(rows) - len(shown)} more rows not shown)*")
    return "\n".join(lines)


def _phases_table(phases: Sequence[Phase]) -> str:
    rows = [(_cell(p.name, 80), f"{p.duration:.1f}", _PHASE_MARK[p.ok], _cell(p.detail, 300)) for p in phases]
    return _table(("Phase", "Duration (s)", "Result", "Detail"), rows)


def _revision_label(target: Target) -> str:
    return target.revision or "LATEST"


def _traffic_rows(traffic: Traffic) -> list[tuple[str, str, str]]:
    rows = []
    for t in traffic:
        name = md_code(_revision_label(t), table=True) + (" (latest)" if t.latest and t.revision else "")
        rows.append((name, f"{t.percent}%", md_code(t.tag, table=True) if t.tag else ""))
    return rows


def _traffic_section(title: str, traffic: Traffic) -> str:
    if not traffic:
        return f"### {title}\n\n*(none)*"
    return f"### {title}\n\n" + _table(("Revision", "Percent", "Tag"), _traffic_rows(traffic))


def _plan_table(plan: Sequence[Traffic]) -> str:
    rows = []
    for i, traffic in enumerate(plan, start=1):
        cells = ", ".join(md_code(t.describe(), table=True) for t in traffic) or "—"
        rows.append((str(i), cells))
    return _table(("Step", "Traffic"), rows)


def diff_block(lines: Sequence[str]) -> str:
    """A ```diff block, truncated; the fence is longer than any backtick run inside."""
    kept: list[str] = []
    size = 0
    for raw in lines[:MAX_DIFF_LINES]:
        line = raw.rstrip("\r\n").replace("\r", "")
        size += len(line.encode()) + 1
        if size > MAX_DIFF_BYTES:
            break
        kept.append(line)
    if len(kept) < len(lines):
        kept.append(f"... ({len(lines) - len(kept)} more lines not shown)")
    longest = max((len(run) for line in kept for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}diff\n" + "\n".join(kept) + f"\n{fence}"


# -- Mermaid ------------------------------------------------------------------------------------

_MERMAID_UNSAFE = re.compile(r"[^A-Za-z0-9 ._:/+%\-]")


def mermaid_str(text: str, limit: int = 60) -> str:
    """A double-quoted Mermaid string that cannot end early or start a comment/directive.

    Mermaid strings end at the next ``"`` and ``%%`` starts a comment even mid-line, so only a
    small alphabet is kept (others become ``_``) and runs of ``%`` collapse to one.
    """
    s = _MERMAID_UNSAFE.sub("_", truncate(_one_line(text), limit).replace("…", "..."))
    s = re.sub(r"%+", "%", s)
    return f'"{s or "-"}"'


def traffic_series(result: RolloutResult) -> tuple[list[str], dict[str, list[int]]]:
    """Per revision, its percent at each point of the history (labels, series in first-seen order)."""
    labels = [change.label for change in result.history]
    series: dict[str, list[int]] = {}
    for i, change in enumerate(result.history):
        for target in change.traffic:
            values = series.setdefault(_revision_label(target), [0] * len(labels))
            values[i] += target.percent
    return labels, series


def mermaid_chart(result: RolloutResult) -> str:
    """An ``xychart-beta`` of traffic per revision over the rollout, one ``line`` per revision."""
    labels, series = traffic_series(result)
    lines = [
        "```mermaid",
        "xychart-beta",
        '    title "Traffic per revision"',
        "    x-axis [" + ", ".join(mermaid_str(label, 30) for label in labels) + "]",
        '    y-axis "traffic %" 0 --> 100',
    ]
    for name, values in list(series.items())[:20]:
        lines.append(f"    line {mermaid_str(name)} [" + ", ".join(str(v) for v in values) + "]")
    lines.append("```")
    legend = ", ".join(f"{i}: {md_code(name)}" for i, name in enumerate(list(series)[:20], start=1))
    return "\n".join(lines) + f"\n\nLines, in order: {legend}"


# ---------------------------------------------------------------------------------------------
# Reporter and failure annotation
# ---------------------------------------------------------------------------------------------


class GitHubReporter:
    """The rollout's Reporter: one log group per phase, a one-line result after it."""

    def __init__(self, console: Console):
        self.console = console

    def phase_started(self, phase: Phase) -> None:
        self.console.start_group(phase.name)

    def phase_finished(self, phase: Phase) -> None:
        self.console.end_group()
        detail = f": {phase.detail}" if phase.detail else ""
        line = f"{_PHASE_MARK[phase.ok]} {phase.name} ({phase.duration:.1f} s){detail}"
        self.console.info(_one_line(truncate(line, 1000)))

    def info(self, text: str) -> None:
        self.console.info(text)

    def warning(self, text: str) -> None:
        self.console.warning(text)


def is_failure(result: RolloutResult) -> bool:
    """Failed, or rolled back by a deploy (a rollback in mode rollback is what was asked for)."""
    return result.outcome is Outcome.FAILED or (
        result.outcome is Outcome.ROLLED_BACK and result.mode != "rollback"
    )


def report_failure(console: Console, result: RolloutResult) -> None:
    """An ``::error`` annotation with the reason when the run failed or was rolled back."""
    if not is_failure(result):
        return
    what = "rolled back" if result.outcome is Outcome.ROLLED_BACK else "failed"
    title = f"Cloud Run rollout {what}: {result.service}"
    console.error(truncate(result.reason or "no reason recorded", 4000), title=truncate(title, 200))


# ---------------------------------------------------------------------------------------------
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
    console: Console,
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
        console: Console | None = None,
        write_interval: float | None = 1.0,
    ):
        self.console = console or Console()
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
            self.deployment = repo.create_deployment(
                ref=target,
                environment=self.environment,
                auto_merge=False,
                required_contexts=[],
                transient_environment=pr,
                production_environment=not pr,
                description=truncate(description or f"Cloud Run {self.service} ({self.region})", 140),
                payload={"service": self.service, "region": self.region},
            )
            self._status("in_progress", "Rolling out to Cloud Run")
        except Exception as exc:  # best effort: GitHub must not break a rollout
            self._warn("could not create the GitHub deployment", exc)
            return False
        return True

    def _status(self, state: str, description: str, environment_url: str | None = None) -> None:
        """POST a status; via the requester because PyGithub's create_status has no ``log_url``."""
        assert self.deployment is not None
        body: dict[str, Any] = {
            "state": state,
            "description": truncate(_one_line(description), DESCRIPTION_LIMIT),
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
    if outcome in (Outcome.PROMOTED, Outcome.PAUSED, Outcome.DEPLOYED):
        preview = pull_request or outcome is Outcome.DEPLOYED
        url = (result.tag_url or result.url) if preview else (result.url or result.tag_url)
        return "success", f"{outcome.value}: {revision}", url
    if outcome is Outcome.PLANNED:
        return "inactive", "dry run: nothing was deployed", None
    if outcome is Outcome.ROLLED_BACK:
        if result.mode == "rollback":
            return "inactive", f"rolled back to {revision}", None
        return "failure", truncate(f"rolled back: {result.reason or 'see the run'}", DESCRIPTION_LIMIT), None
    state = "failure" if result.revision else "error"
    return state, truncate(f"failed: {result.reason or 'see the run'}", DESCRIPTION_LIMIT), None


def comment_marker(service: str, region: str) -> str:
    """Hidden marker identifying our comment for this service and region."""
    safe = [re.sub(r"[^A-Za-z0-9._-]", "_", part) for part in (service, region)]
    return f"<!-- run-canary:{safe[0]}:{safe[1]} -->"


def render_pr_comment(result: RolloutResult, run_url: str = "") -> str:
    """The PR comment body (without the marker): the tag URL, revision, result and a run link."""
    rows = [
        ("Result", md_text(result.outcome.value.replace("_", " "))),
        ("Service", f"{md_code(result.service, table=True)} ({md_code(result.region, table=True)})"),
        ("Revision", md_code(result.revision, table=True)),
        ("Preview (tag URL)", md_link(result.tag_url, table=True)),
        ("Image", md_code(result.image, 300, table=True)),
    ]
    if run_url:
        rows.append(("Run", md_link(run_url, "workflow run", table=True)))
    body = "### Cloud Run preview\n\n" + _table(("", ""), rows)
    if is_failure(result) and result.reason:
        body += f"\n\n**Reason:** {md_text(result.reason, 1000)}"
    return body


def upsert_pr_comment(
    token: str,
    ctx: RunContext,
    body: str,
    *,
    service: str,
    region: str,
    console: Console | None = None,
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
