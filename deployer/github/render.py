"""Markdown for people: the step summary (tables and a Mermaid traffic chart) and the PR comment. Every
untrusted value goes through the ``md_*`` helpers, which keep it from being read as markup or a mention.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from deployer.github.files import SUMMARY_BUDGET
from deployer.result import JobRun, Outcome, Phase, RolloutResult, Verdict, is_failure
from deployer.settings import Config
from deployer.text import PHASE_MARK, cap_bytes, one_line, truncate
from deployer.traffic import Target, Traffic

if TYPE_CHECKING:
    pass


# Markdown helpers
# ---------------------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
_MENTION = re.compile(r"(?<![A-Za-z0-9])@")
_SAFE_URL = re.compile(r"https?://[A-Za-z0-9.\-]+(?::\d+)?(?:/[A-Za-z0-9._~%/+=&?#\-]*)?")


def md_text(text: str | None, limit: int = 200) -> str:
    """Untrusted text as inert Markdown prose: one line, HTML escaped, Markdown punctuation escaped,
    ``@mentions`` broken (a zero-width space) so a name cannot ping anyone from a PR comment."""
    if not text:
        return "—"
    s = truncate(one_line(text), limit)
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
    s = truncate(one_line(text), limit).replace("<", "\u2039").replace(">", "\u203a")
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


# ---------------------------------------------------------------------------------------------
# Step summary
# ---------------------------------------------------------------------------------------------

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
    if (result.outcome in _FAILED or is_failure(result)) and result.reason:
        parts.append(f"**Reason:** {md_text(result.reason, 2000)}")
    if result.phases:
        parts.append("### Phases\n\n" + _phases_table(result.phases))
    if result.analyses:
        parts.append("### Canary analysis\n\n" + _analyses_table(result.analyses))
    if result.jobs:
        parts.append("### Cloud Run jobs\n\n" + _jobs_table(result.jobs))
    parts.append(_traffic_section("Traffic before", result.traffic_before))
    parts.append(_traffic_section("Traffic after", result.traffic_after))
    if result.history:
        parts.append("### Traffic over the rollout\n\n" + mermaid_chart(result))
    if result.plan:
        parts.append("### Planned traffic\n\n" + _plan_table(result.plan))
    if result.template_diff:
        parts.append("### Template changes\n\n" + diff_block(result.template_diff))
    return cap_bytes("\n\n".join(parts) + "\n", SUMMARY_BUDGET)


def _deployed_section(result: RolloutResult, config: Config | None) -> str:
    if result.mode == "job":
        job = result.jobs[0] if result.jobs else None
        rows: list[tuple[str, str]] = [
            ("Job", md_code(job.job if job else None)),
            ("Region", md_code(result.region)),
            ("Project", md_code(result.project)),
            ("Image", md_code(result.image, 300)),
            ("Execution", md_code(job.execution if job else None)),
        ]
        return "\n".join(f"- **{name}:** {value}" for name, value in rows)
    rows = [
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
    rows = [(_cell(p.name, 80), f"{p.duration:.1f}", PHASE_MARK[p.ok], _cell(p.detail, 300)) for p in phases]
    return _table(("Phase", "Duration (s)", "Result", "Detail"), rows)


def _analyses_table(analyses: Sequence[tuple[int, Verdict]]) -> str:
    """Each step's deciding verdicts, every number included (the comparison's detail names both
    sides' requests, 5xx %, p50/p95/p99, the p-value and the effect against its allowance)."""
    marks = {True: "✅ pass", False: "❌ fail", None: "⚠️ inconclusive"}
    rows = [(f"{p}%", _cell(v.name, 40), marks[v.ok], _cell(v.detail, 1500)) for p, v in analyses]
    return _table(("Step", "Check", "Verdict", "Why"), rows)


def _jobs_table(jobs: Sequence[JobRun]) -> str:
    rows = []
    for job in jobs:
        tasks = f"{job.succeeded}/{job.tasks} ok" + (f", {job.failed} failed" if job.failed else "")
        tasks += f", {job.retried} retried" if job.retried else ""
        codes = ", ".join(f"task {i}: {c}" for i, c in job.exit_codes.items()) or "—"
        links = " ".join(
            md_link(url, label, table=True)
            for url, label in ((job.console_url, "console"), (job.log_url, "logs"))
            if url
        )
        rows.append(
            (
                _cell(job.when, 10),
                md_code(job.job, table=True),
                md_code(job.execution, table=True),
                _cell(job.result.replace("_", " "), 40),
                _cell(tasks if job.tasks else "—", 80),
                _cell(codes, 200),
                f"{job.duration:.1f}",
                links or "—",
            )
        )
    header = ("When", "Job", "Execution", "Result", "Tasks", "Exit codes", "Duration (s)", "Links")
    return _table(header, rows)


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
    s = _MERMAID_UNSAFE.sub("_", truncate(one_line(text), limit).replace("…", "..."))
    s = re.sub(r"%+", "%", s)
    return f'"{s or "-"}"'


# Line colours, in series order. GitHub draws Mermaid on white (light theme) or near-black (dark
# theme, #0d1117); Mermaid's own xychart palette starts with a pale colour that vanishes on white.
# Each of these has a contrast of at least 3:1 against both backgrounds and they differ clearly from
# each other (tests/e2e/test_summary_chart.py checks both; scripts/render_summary.py renders them).
PALETTE: tuple[tuple[str, str], ...] = (
    ("#1f6feb", "blue"),
    ("#e8590c", "orange"),
    ("#2da44e", "green"),
    ("#db61a2", "pink"),
    ("#7048e8", "purple"),
    ("#9a6700", "brown"),
    ("#6e7781", "grey"),
    ("#1b7c83", "teal"),
)
MAX_LINES = len(PALETTE)


def traffic_series(result: RolloutResult) -> tuple[list[str], dict[str, list[int]]]:
    """Per revision, its percent at each point of the history (labels, series in first-seen order).

    Revisions at 0 % all along get no series (a tag without traffic is not a line worth drawing);
    a history of one point (a new service: created at 100 %) starts from an empty "before" point,
    so the chart shows the change instead of a lone dot.
    """
    changes = list(result.history)
    labels = [change.label for change in changes]
    series: dict[str, list[int]] = {}
    for i, change in enumerate(changes):
        for target in change.traffic:
            values = series.setdefault(_revision_label(target), [0] * len(labels))
            values[i] += target.percent
    series = {name: values for name, values in series.items() if any(values)}
    if len(labels) == 1:
        labels = ["before", *labels]
        series = {name: [0, *values] for name, values in series.items()}
    return labels, series


def mermaid_chart(result: RolloutResult) -> str:
    """An ``xychart-beta`` of traffic per revision over the rollout, one ``line`` per revision, with
    explicit line colours (front matter) and a legend naming each colour's revision."""
    labels, series = traffic_series(result)
    shown = list(series.items())[:MAX_LINES]
    palette = ", ".join(colour for colour, _ in PALETTE[: max(len(shown), 1)])
    lines = [
        "```mermaid",
        "---",
        "config:",
        "  themeVariables:",
        "    xyChart:",
        f'      plotColorPalette: "{palette}"',
        "---",
        "xychart-beta",
        '    title "Traffic per revision"',
        "    x-axis [" + ", ".join(mermaid_str(label, 30) for label in labels) + "]",
        '    y-axis "traffic %" 0 --> 100',
    ]
    for name, values in shown:
        lines.append(f"    line {mermaid_str(name)} [" + ", ".join(str(v) for v in values) + "]")
    lines.append("```")
    legend = ", ".join(
        f"{colour_name}: {md_code(name)}" for (_, colour_name), (name, _) in zip(PALETTE, shown, strict=False)
    )
    note = f" ({len(series) - len(shown)} more revisions not drawn)" if len(series) > len(shown) else ""
    return "\n".join(lines) + f"\n\nLines: {legend or 'none (no revision served traffic)'}{note}"


# ---------------------------------------------------------------------------------------------


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
