"""deployer.github.render: the step summary (its tables, hostile names escaped, the dry-run plan and diff)."""

from __future__ import annotations

import re

from deployer import github as gh
from deployer.github import files, render
from deployer.result import Outcome, Phase, TrafficChange
from deployer.settings import Config
from deployer.traffic import Target
from tests.unit.github.results import rollout_result

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
    result = rollout_result(
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
    result = rollout_result(
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
    md = gh.render_summary(rollout_result(Outcome.PLANNED, plan=plan, template_diff=diff))
    assert "## Cloud Run rollout: planned" in md
    assert "| 1 | `old 90%`, `new 10% (tag canary)` |" in md
    assert "````diff\n--- a\n+++ b\n-  image: old\n+  image: new\n```\n+ x\n````" in md


def test_long_diff_is_truncated_and_summary_stays_small(tmp_path) -> None:
    diff = [f"+ line {i} " + "x" * 300 for i in range(20_000)]
    md = gh.render_summary(rollout_result(Outcome.PLANNED, template_diff=diff))
    assert len(md.encode()) < files.SUMMARY_LIMIT
    assert "more lines not shown" in md
    path = tmp_path / "summary.md"
    gh.append_summary(md, str(path))
    gh.append_summary("x" * 2_000_000, str(path))
    assert path.stat().st_size < 2 * files.SUMMARY_LIMIT
    gh.append_summary("ignored", None)
