"""Blue/green as a canary, on this machine: the emulator serves Cloud Run's API and really runs each
revision; the action's command line (``python -m deployer``) deploys, smoke-checks and shifts traffic
while we measure who answers.

1. deploy "blue" (a new service: 100 %),
2. run a database migration as a Cloud Run job (2 tasks, really executed as local processes) once green
   is Ready and smoke-checked, before any traffic moves; then roll out "green" in steps 10 %, 50 %,
   100 %, counting blue/green answers on the service URL live,
3. try a broken release: its smoke check fails and traffic stays exactly where it was,
4. roll back to blue by hand (mode rollback), as a workflow_dispatch would,
5. try a release 60 ms slower than blue: every absolute threshold (1 % 5xx, p95 500 ms, p99 1 s) lets
   it through, but a baseline revision of blue deployed beside it, with the same share, shows it is
   slower with significance, and it is rolled back at its first step; the summary says why.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
SERVICE = "color-api"


def start_emulator(ready_delay: float) -> tuple[subprocess.Popen[str], str]:
    # Cloud Monitoring's 60 s sampling and 180 s lag, scaled down to 1 s each for a demo.
    cmd = [sys.executable, "-m", "cloudrun_emulator", "--port", "0", "--ready-delay", str(ready_delay)]
    cmd += ["--metric-sampling", "1", "--metric-lag", "1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if "http" not in line:
        proc.kill()
        sys.exit(f"the emulator did not start: {line!r}")
    return proc, line.split()[-1]


def heading(title: str) -> None:
    """The demo's own headings: bold on a terminal, plain in a pipe or with NO_COLOR."""
    bold = sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
    print(f"\n\033[1m=== {title} ===\033[0m" if bold else f"\n=== {title} ===", flush=True)


def run_action(api: str, title: str, *, summary: str = "", **inputs: str) -> dict[str, str]:
    """Run the command line (``python -m deployer``) as a person would in a terminal: the log (for a
    person: headings, no workflow commands) goes to the terminal, the outputs come back as JSON.
    With ``summary``, the lines of the job summary that contain it are printed too."""
    heading(title)
    values = {"api_endpoint": api, "project_id": "demo-project", "service": SERVICE, **inputs}
    args = [sys.executable, "-m", "deployer"]
    for name, value in values.items():
        args += ["--" + name.replace("_", "-"), value]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "GITHUB_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as tmp:
        env["GITHUB_STEP_SUMMARY"] = str(Path(tmp) / "summary.md")
        proc = subprocess.run(
            [*args, "--output", "json"], env=env, cwd=tmp, stdout=subprocess.PIPE, text=True
        )
        written = Path(env["GITHUB_STEP_SUMMARY"])
        lines = written.read_text(encoding="utf-8").splitlines() if summary and written.exists() else []
        for line in (line for line in lines if summary in line):
            print(f"--> summary: {line.strip()}")
    try:
        outputs: dict[str, str] = json.loads(proc.stdout or "{}")
    except ValueError:
        outputs = {}
    result, revision = outputs.get("result"), outputs.get("revision")
    print(f"--> exit code {proc.returncode}, result: {result}, revision: {revision}")
    if outputs.get("job_execution"):
        print(f"--> job execution {outputs['job_execution']}: {outputs.get('job_result')}")
    return outputs


class Meter(threading.Thread):
    """Sends requests to the service URL and prints, every second, which color answered."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.stop, self.start_time = url, threading.Event(), time.monotonic()

    def run(self) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            counts: Counter[str] = Counter()
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                try:
                    counts[session.get(self.url, timeout=2).json()["env"].get("COLOR", "?")] += 1
                except (requests.RequestException, ValueError, KeyError):
                    counts["error"] += 1
            total = sum(counts.values()) or 1
            shares = "  ".join(f"{c}: {100 * n / total:5.1f} %" for c, n in sorted(counts.items()))
            print(
                f"    [meter t={time.monotonic() - self.start_time:4.0f}s] {total:4d} requests  {shares}",
                flush=True,
            )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--step-interval", default="4s", help="bake time at each step (default 4s)")
    parser.add_argument("--ready-delay", type=float, default=1.0, help="emulated time to readiness (s)")
    args = parser.parse_args()
    emulator, api = start_emulator(args.ready_delay)
    print(f"Cloud Run emulator at {api}")
    try:
        blue = run_action(
            api,
            "1. deploy blue (new service)",
            image="sample/hello:blue",
            env_vars="COLOR=blue\nAPP_VERSION=1.0.0",
        )
        if blue.get("result") != "promoted":
            return 1
        print(f"Service URL {blue['url']} answers: {requests.get(blue['url'], timeout=5).json()['message']}")
        meter = Meter(blue["url"])
        meter.start()
        green = run_action(
            api,
            "2. migration job, then canary green: 10 %, 50 %, 100 %",
            image="sample/hello:green",
            env_vars="COLOR=green\nAPP_VERSION=2.0.0",
            steps="10,50,100",
            step_interval=args.step_interval,
            pre_job="migrate-db",
            job_image="us-docker.pkg.dev/cloudrun/container/job",  # Google's sample job: sleeps, exits 0
            job_tasks="2",
            job_env_vars="SLEEP_MS=1500",
            job_env_override="SCHEMA_VERSION=2",
        )
        time.sleep(1.5)
        broken = run_action(
            api,
            "3. a broken release (answers 500): smoke check fails, traffic stays on green",
            image="sample/error",
            env_vars="COLOR=broken",
            smoke_timeout="3s",
        )
        time.sleep(1.5)
        back = run_action(api, "4. manual rollback to the previous stable revision (blue)", mode="rollback")
        time.sleep(1.5)
        slower = run_action(
            api,
            "5. a release 60 ms slower: every absolute threshold passes it, the baseline comparison stops it",
            summary="latency: p50",
            image="sample/slow",
            env_vars="COLOR=slow\nDELAY_MS=60",
            steps="50,100",
            step_interval=args.step_interval,
            max_error_rate="1",
            max_latency_p95="500",
            max_latency_p99="1000",
            baseline="revision",
            max_latency_increase="20",
            load_rps="20",
        )
        time.sleep(1.5)
        meter.stop.set()
        meter.join()
        print("\nFinal traffic:", json.dumps(json.loads(slower.get("traffic", "[]")), indent=1))
        results = (green, green, broken, back, slower)
        ok = tuple(
            r.get(k)
            for r, k in zip(results, ("result", "job_result", "result", "result", "result"), strict=True)
        ) == (
            "promoted",
            "succeeded",
            "rolled_back",
            "rolled_back",
            "rolled_back",
        )
        print("\nDemo", "succeeded" if ok else "did NOT go as expected")
        return 0 if ok else 1
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
