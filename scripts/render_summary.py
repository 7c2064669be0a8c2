#!/usr/bin/env python3
"""Render real job summaries' traffic charts the way GitHub does (the mermaid npm package, in
headless Chromium, light and dark theme), save screenshots, and check every drawn line is
distinguishable: each stroke against the page background and against every other stroke.

    python scripts/render_summary.py [--out build/summary-render] [--mermaid-dir build/mermaid]

Needs Chromium (Debian: `apt-get install chromium`; or set CHROMIUM) and npm (mermaid is installed
into --mermaid-dir on first use). Runs three rollouts against the local emulator: a first deploy, a
10/50/100 canary over a service already split between two revisions, and a canary that fails and
rolls back. Exit 0 when every line passes, 1 otherwise (the measurements are printed either way).
The test suite checks the palette numerically (tests/e2e/test_summary_chart.py); this script checks
what a browser actually draws.
"""

from __future__ import annotations

import argparse
import html
import itertools
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cloudrun_emulator import Emulator  # noqa: E402

MERMAID_VERSION = "11.17.2"
BACKGROUNDS = {"default": "#ffffff", "dark": "#0d1117"}  # GitHub's light and dark pages
MIN_CONTRAST = 3.0  # WCAG 2.1 non-text contrast
MIN_DISTANCE = 20.0  # CIE76: clearly another colour
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--allow-file-access-from-files",
]


# --- colours ------------------------------------------------------------------------------------


def _linear(channel: int) -> float:
    c = channel / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def _rgb(colour: str) -> tuple[int, int, int]:
    colour = colour.strip().lower()
    if re.fullmatch(r"#[0-9a-f]{3}", colour):
        colour = "#" + "".join(c * 2 for c in colour[1:])
    match = re.fullmatch(r"rgb\((\d+),\s*(\d+),\s*(\d+)\)", colour)
    if match:
        r, g, b = (int(x) for x in match.groups())
        return r, g, b
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def contrast(a: str, b: str) -> float:
    def lum(c: str) -> float:
        r, g, bl = (_linear(x) for x in _rgb(c))
        return 0.2126 * r + 0.7152 * g + 0.0722 * bl

    high, low = sorted((lum(a), lum(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def distance(a: str, b: str) -> float:
    def lab(c: str) -> tuple[float, float, float]:
        r, g, bl = (_linear(x) for x in _rgb(c))
        x = (0.4124 * r + 0.3576 * g + 0.1805 * bl) / 0.95047
        y = 0.2126 * r + 0.7152 * g + 0.0722 * bl
        z = (0.0193 * r + 0.1192 * g + 0.9505 * bl) / 1.08883

        def f(t: float) -> float:
            return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

        return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))

    return math.dist(lab(a), lab(b))


# --- summaries from real rollouts ---------------------------------------------------------------


def run_action(emu: Emulator, workdir: Path, **inputs: str) -> str:
    """Run entrypoint.py like the rehearsal in the README; return the step summary it wrote."""
    summary = workdir / f"summary-{len(list(workdir.iterdir()))}.md"
    summary.write_text("")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GITHUB_STEP_SUMMARY": str(summary),
        **{f"INPUT_{k.upper()}": v for k, v in inputs.items()},
    }
    defaults = {"INPUT_API_ENDPOINT": emu.url, "INPUT_PROJECT_ID": "render", "INPUT_SMOKE_PATH": "/healthz"}
    for key, value in defaults.items():
        env.setdefault(key, value)
    subprocess.run(
        [sys.executable, str(ROOT / "entrypoint.py")],
        env=env,
        cwd=workdir,
        check=False,
        capture_output=True,
        timeout=120,
    )
    return summary.read_text()


def summaries(workdir: Path) -> dict[str, str]:
    with Emulator(port=0, ready_delay=0.1) as emu:
        first = run_action(emu, workdir, service="first", image="sample/hello:v1", steps="100")
        out = {"first-deploy": first}
        run_action(emu, workdir, service="web", image="sample/hello:v1", steps="100", suffix="v1")
        # v2 paused at 30 %: the canary of v3 takes it over (undoes it), so three revisions served.
        run_action(emu, workdir, service="web", image="sample/hello:v2", steps="30", suffix="v2")
        out["canary"] = run_action(
            emu,
            workdir,
            service="web",
            image="sample/hello:v3",
            steps="10,50,100",
            step_interval="1s",
            suffix="v3",
            takeover="true",
        )
        # v4 serves 10 %, then its check fails at 50 %: back to v3.
        out["rolled-back"] = run_action(
            emu,
            workdir,
            service="web",
            image="sample/hello:v4",
            steps="10,50,100",
            step_interval="1s",
            suffix="v4",
            check_command='test "$STEP" -lt 50',
        )
    return out


# --- rendering --------------------------------------------------------------------------------------


def mermaid_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```mermaid\n(.*?)^```", markdown, re.S | re.M)


def page(blocks: list[str], theme: str, script: Path) -> str:
    charts = "\n".join(f'<pre class="mermaid">{html.escape(b)}</pre>' for b in blocks)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><style>
body {{ background: {BACKGROUNDS[theme]}; margin: 16px; font-family: sans-serif; }}
pre.mermaid {{ width: 760px; }}
</style></head><body>
{charts}
<script src="{script.as_uri()}"></script>
<script>
mermaid.initialize({{ startOnLoad: false, theme: {json.dumps(theme)} }});
mermaid.run({{ querySelector: "pre.mermaid" }}).then(() => document.body.dataset.done = "yes");
</script></body></html>
"""


def chromium(binary: str, profile: Path, *args: str) -> str:
    cmd = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=15000", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    return done.stdout


def strokes(dom: str) -> list[list[str]]:
    """Per chart, the stroke colours of its line plots (``<g class="line-plot-N"><path stroke=...>``)."""
    return [
        re.findall(r'<g class="line-plot-\d+">\s*<path\b[^>]*\bstroke="([^"]+)"', svg)
        for svg in re.findall(r"<svg\b.*?</svg>", dom, re.S)
    ]


def ensure_mermaid(directory: Path) -> Path:
    script = directory / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"
    if not script.is_file():
        directory.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "npm",
                "install",
                "--prefix",
                str(directory),
                "--no-audit",
                "--no-fund",
                f"mermaid@{MERMAID_VERSION}",
            ],
            check=True,
            timeout=600,
        )
    return script


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "summary-render")
    parser.add_argument("--mermaid-dir", type=Path, default=ROOT / "build" / "mermaid")
    args = parser.parse_args()
    binary = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not binary:
        print("render_summary: no Chromium (apt-get install chromium, or set CHROMIUM)", file=sys.stderr)
        return 2
    script = ensure_mermaid(args.mermaid_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for name, markdown in summaries(workdir).items():
            (args.out / f"{name}.md").write_text(markdown)
            blocks = mermaid_blocks(markdown)
            if not blocks:
                print(f"{name}: FAIL no chart in the summary")
                ok = False
                continue
            for theme, background in BACKGROUNDS.items():
                html_file = args.out / f"{name}-{theme}.html"
                html_file.write_text(page(blocks, theme, script))
                profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=tmp))
                dom = chromium(binary, profile, "--dump-dom", html_file.as_uri())
                shot = args.out / f"{name}-{theme}.png"
                chromium(binary, profile, f"--screenshot={shot}", "--window-size=820,560", html_file.as_uri())
                drawn = [colour for chart in strokes(dom) for colour in chart]
                worst_bg = min((contrast(c, background) for c in drawn), default=0.0)
                pairs = [(a, b, distance(a, b)) for a, b in itertools.combinations(drawn, 2)]
                worst_pair = min((d for _, _, d in pairs), default=math.inf)
                passed = bool(drawn) and worst_bg >= MIN_CONTRAST and worst_pair >= MIN_DISTANCE
                ok = ok and passed
                print(
                    f"{name} [{theme}]: {'ok' if passed else 'FAIL'} lines {drawn}; "
                    f"lowest contrast to {background} {worst_bg:.2f} (min {MIN_CONTRAST}); "
                    f"closest pair {worst_pair:.1f} (min {MIN_DISTANCE}); screenshot {shot}"
                )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
