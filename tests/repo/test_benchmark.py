"""The benchmark command runs a real rollout and reports sane figures.

Speed targets are the benchmark's business (printed PASS/FAIL), not this test's: a loaded CI
machine must not turn a slow run into a red build. Here only the shape and sanity of the results.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks import run as bench

ROOT = Path(__file__).resolve().parents[2]

KEYS = {
    "scenario",
    "wall_s",
    "ideal_s",
    "ratio",
    "overhead_s",
    "first_request_s",
    "reads",
    "reads_per_s",
    "writes",
    "errors",
    "by_call",
    "peak_rss_mb",
    "cpu_s",
    "results",
    "targets",
}


def test_quick_benchmark_writes_sane_json(tmp_path):
    out = tmp_path / "bench.json"
    md = tmp_path / "bench.md"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--json", str(out), "--markdown", str(md)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(out.read_text())
    assert [r["scenario"] for r in results] == ["single"]
    r = results[0]
    assert not KEYS - set(r), KEYS - set(r)
    assert r["wall_s"] > r["ideal_s"] > 0
    assert r["ratio"] > 1
    assert abs(r["overhead_s"] - (r["wall_s"] - r["ideal_s"])) < 0.01
    assert r["first_request_s"] is not None and 0 < r["first_request_s"] < r["wall_s"]
    assert r["reads"] > 0
    assert abs(r["reads_per_s"] - r["reads"] / r["wall_s"]) < 0.01
    assert r["writes"] >= 4  # deploy, three steps (the promote write makes five)
    assert r["peak_rss_mb"] > 0
    assert r["results"] == ["promoted"]
    assert {t["target"] for t in r["targets"]} >= {"peak RSS < 80 MB", "first API request <= 0.5 s"}
    assert all(isinstance(t["pass"], bool) for t in r["targets"])
    assert "| single |" in md.read_text()
    assert "PASS" in proc.stdout or "FAIL" in proc.stdout


def test_ideal_time_counts_each_ready_change_and_bakes():
    scn = bench.Scenario("x", "", ready_delay=1.0, step_interval=2.0)
    assert scn.phases == 7
    assert scn.overhead_budget == 4.5
    assert scn.ideal == 4 * 1.0 + 2 * 2.0  # deploy + 3 steps become ready; 10 % and 50 % bake
    paused = bench.Scenario("y", "", ready_delay=1.0, step_interval=2.0, steps="10")
    assert paused.ideal == 2 * 1.0 + 2.0


def test_request_log_is_attributed_to_its_service():
    base = "/apis/serving.knative.dev/v1/namespaces/p"
    entries = [
        {"method": "GET", "path": f"{base}/services/bench-01"},
        {"method": "PUT", "path": f"{base}/services/bench-01"},
        {"method": "GET", "path": f"{base}/revisions/bench-01-abc"},
        {"method": "POST", "path": f"{base}/services", "body": {"metadata": {"name": "bench-01"}}},
        {"method": "GET", "path": "/v1/projects/p/locations/r/services/bench-01:getIamPolicy"},
        {"method": "GET", "path": f"{base}/revisions", "query": {"labelSelector": "a/service=bench-01"}},
        {"method": "GET", "path": f"{base}/services/bench-010"},
        {"method": "GET", "path": f"{base}/revisions/bench-010-abc"},
        {"method": "POST", "path": f"{base}/services", "body": {"metadata": {"name": "bench-02"}}},
    ]
    assert [bench.belongs(e, "bench-01") for e in entries] == [True] * 6 + [False] * 3
    assert bench.call_kind(entries[0]) == "GET service"
    assert bench.call_kind(entries[4]) == "GET getIamPolicy"
    assert bench.call_kind(entries[5]) == "GET revisions"


def test_targets_pass_and_fail():
    scn = bench.Scenario("latency", "", 1.0, 2.0, api_latency=0.1)
    figures = {"overhead_s": 3.5, "first_request_s": 0.2, "peak_rss_mb": 90.0, "reads_per_s": 2.5}
    verdicts = {t["target"]: t["pass"] for t in bench.targets(scn, figures)}
    assert verdicts == {
        "overhead <= 4.5 s": True,
        "first API request <= 0.5 s": True,
        "peak RSS < 80 MB": False,
        "reads/s <= 2": False,
        "overhead < 3 s": False,
    }
