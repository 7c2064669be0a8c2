"""The job summary's traffic chart reads well on GitHub, light and dark, and says something; the post
step's summary says what happened.

The colours are checked numerically here (WCAG contrast against GitHub's light and dark page
backgrounds, CIE Lab distance between lines). scripts/render_summary.py renders a real summary with
the mermaid package in headless Chromium and measures the drawn strokes the same way (it needs
Chromium and npm, so it is a script, not part of the test suite).
"""

from __future__ import annotations

import itertools
import math
import signal
import time
from pathlib import Path

import pytest

from cloudrun_emulator import Emulator
from deployer.github import render
from deployer.result import Outcome, RolloutResult, TrafficChange
from deployer.traffic import Target
from devtools import harness
from tests.cloudrun import Api, routing

LIGHT, DARK = "#ffffff", "#0d1117"  # GitHub's page backgrounds


def _linear(channel: int) -> float:
    c = channel / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def luminance(colour: str) -> float:
    r, g, b = (_linear(c) for c in _rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def lab(colour: str) -> tuple[float, float, float]:
    r, g, b = (_linear(c) for c in _rgb(colour))
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def distance(a: str, b: str) -> float:
    """CIE76 colour difference: about 2.3 is just noticeable; over 20 reads as another colour."""
    return math.dist(lab(a), lab(b))


def test_every_line_colour_stands_out_on_light_and_dark_pages() -> None:
    for colour, name in render.PALETTE:
        assert contrast(colour, LIGHT) >= 3.0, (name, contrast(colour, LIGHT))  # WCAG for graphics
        assert contrast(colour, DARK) >= 3.0, (name, contrast(colour, DARK))


def test_line_colours_differ_from_each_other() -> None:
    colours = [c for c, _ in render.PALETTE]
    assert len(set(colours)) == len(colours)
    for a, b in itertools.combinations(colours, 2):
        assert distance(a, b) >= 20, (a, b, distance(a, b))
    # The first lines (a rollout has two or three revisions) differ the most.
    for a, b in itertools.combinations(colours[:4], 2):
        assert distance(a, b) >= 40, (a, b, distance(a, b))


def test_mermaids_default_first_colour_was_the_problem() -> None:
    # Mermaid's default theme starts its xychart palette with a pale lavender, invisible on white:
    # the check above would have refused it.
    assert contrast("#ECECFF", LIGHT) < 1.2


def _result(history: list[TrafficChange], **kw: object) -> RolloutResult:
    base: dict[str, object] = {
        "outcome": Outcome.PROMOTED,
        "mode": "deploy",
        "service": "svc",
        "region": "us-central1",
        "project": "p",
        "history": history,
    }
    base.update(kw)
    return RolloutResult(**base)  # type: ignore[arg-type]


def _mermaid(markdown: str) -> str:
    return markdown.split("```mermaid\n", 1)[1].split("\n```", 1)[0]


def test_chart_sets_the_palette_for_its_lines() -> None:
    history = [
        TrafficChange(0, "before", (Target("svc-a", 100),)),
        TrafficChange(1, "10%", (Target("svc-a", 90), Target("svc-b", 10, tag="canary"))),
        TrafficChange(2, "promoted", (Target("svc-b", 100, tag="canary"),)),
    ]
    chart = render.mermaid_chart(_result(history))
    mermaid = _mermaid(chart)
    assert mermaid.startswith("---\nconfig:\n  themeVariables:\n    xyChart:\n")
    assert '      plotColorPalette: "#1f6feb, #e8590c"\n---\nxychart-beta' in mermaid
    assert 'line "svc-a" [100, 90, 0]' in mermaid and 'line "svc-b" [0, 10, 100]' in mermaid
    assert "Lines: blue: `svc-a`, orange: `svc-b`" in chart


def test_first_deploy_draws_the_change_not_a_dot() -> None:
    history = [TrafficChange(0, "created", (Target("svc-first", 100, tag="canary"),))]
    mermaid = _mermaid(render.mermaid_chart(_result(history)))
    assert 'x-axis ["before", "created"]' in mermaid
    assert 'line "svc-first" [0, 100]' in mermaid


def test_revisions_that_never_served_get_no_line() -> None:
    history = [
        TrafficChange(0, "before", (Target("svc-a", 100), Target("svc-idle", 0, tag="pr-1"))),
        TrafficChange(1, "deployed", (Target("svc-a", 100), Target("svc-b", 0, tag="canary"))),
        TrafficChange(2, "rolled back", (Target("svc-a", 100), Target("svc-idle", 0, tag="pr-1"))),
    ]
    chart = render.mermaid_chart(_result(history))
    mermaid = _mermaid(chart)
    assert "svc-idle" not in mermaid and "svc-b" not in mermaid
    assert [line for line in mermaid.splitlines() if line.strip().startswith("line ")] == [
        '    line "svc-a" [100, 100, 100]'
    ]
    assert '"#1f6feb"' in mermaid  # one line, one colour


def test_more_revisions_than_colours_are_named_not_drawn() -> None:
    targets = tuple(Target(f"svc-{i}", 10) for i in range(10))
    chart = render.mermaid_chart(_result([TrafficChange(0, "before", targets)]))
    assert chart.count('    line "svc-') == len(render.PALETTE)
    assert "(2 more revisions not drawn)" in chart


# --- the post step's words ----------------------------------------------------------------------


def test_post_step_summary_says_the_main_step_died(emulator: Emulator, project: str, tmp_path: Path) -> None:
    api = Api(emulator.url, project)
    api.create_service("killed", "sample/hello:v1", "killed-v1")
    inputs = {
        "service": "killed",
        "image": "sample/hello:v2",
        "project_id": project,
        "api_endpoint": emulator.url,
        "suffix": "v2",
        "steps": "10,100",
        "step_interval": "30s",
    }
    with harness.start(inputs, tmp_path=tmp_path / "main") as running:
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if (
                dict((r, p) for r, p, _ in routing(api.service("killed")["spec"]["traffic"])).get("killed-v2")
                == 10
            ):
                break
            time.sleep(0.1)
        running.kill()
        main = running.wait()
    assert main.returncode == -signal.SIGKILL
    post = harness.run_post(main, inputs, tmp_path=tmp_path / "post", timeout=30)
    assert post.returncode == 0, post.log
    summary = post.summary
    assert "manual rollback" not in summary
    assert "the main step ended (killed, or timed out) during its rollout of killed-v2 at 10%" in summary
    assert "the post step restored the traffic from before the run" in summary
    assert "`post step`" in summary
    # Restored as it was: the spec follows the latest revision, which is killed-v1 again.
    svc = api.service("killed")
    assert {r: p for r, p, _ in routing(svc["spec"]["traffic"]) if p} == {"LATEST": 100}
    assert {r: p for r, p, _ in routing(svc) if p} == {"killed-v1": 100}


@pytest.mark.parametrize("colour", [c for c, _ in render.PALETTE])
def test_palette_entries_are_hex_colours(colour: str) -> None:
    assert len(colour) == 7 and colour.startswith("#") and int(colour[1:], 16) >= 0
