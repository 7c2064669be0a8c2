"""Hunt with many examples and keep going past failures: ``python -m tests.properties.hunt 500``.

Plays scenarios drawn by ``tests.properties.scenarios`` (no shrinking), prints each distinct kind of
problem once with the first scenario that showed it (JSON, replayable with ``--replay``), and ends
with the counts, the time taken and the CPU seconds per example (this process and its children: the
emulator's revision and job processes).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import resource
import sys
import time
import traceback
from collections import Counter

from hypothesis import HealthCheck, Phase, given, seed, settings

from cloudrun_emulator import Emulator
from tests import cloudrun
from tests.properties.scenarios import scenarios
from tests.properties.world import RUN_ACTIONS, Event, Problem, RunSpec, Scenario, play


def signature(line: str) -> str:
    """A problem's kind: its text without revision names, numbers and run labels."""
    text = re.sub(r"seq-[a-z0-9-]+", "REV", line)
    text = re.sub(r"\[[^\]]*\]", "[...]", text)
    text = re.sub(r"\b(run|of run) [a-z0-9-]+", r"\1 X", text)
    return re.sub(r"\d+", "N", text)[:160]


def triggers(scenario: Scenario) -> set[int]:
    """The known findings (issue 23) a scenario may run into, to hunt past them with ``--avoid``."""
    run, events, follow_up = scenario.run, scenario.events, scenario.follow_up
    actions = {e.action for e in events}
    latest = any(e.get("latestRevision") for e in scenario.service["traffic"])
    jobs = run.pre_job or run.post_job
    found = set()
    if not run.steps.endswith("100"):
        found.add(1)
    if "lost" in actions and follow_up in ("rerun", "takeover"):
        found.add(2)
    if scenario.service["failed_latest"] or (latest and actions & {"op:labels", "op:env", "op:image"}):
        found.add(3)
    if run.public is not None:
        found.add(4)
    if jobs and actions & {"op:traffic", "op:latest", "op:split", "op:tag", "op:untag", *RUN_ACTIONS, "race"}:
        found.add(5)
    if "race" in actions:
        found.add(6)
    if any(e.action in ("cancel", "kill", "lost") and e.at.endswith(" run") for e in events) or any(
        e.action == "lost" and e.at.endswith(" started") for e in events
    ):
        found.add(7)  # an execution nobody knows of, or one only the lost runner's post step knew
    if run.post_job and "op:delete" in actions:
        found.add(8)
    return found


def from_json(text: str) -> Scenario:
    data = json.loads(text)
    return Scenario(
        data["service"], RunSpec(**data["run"]), tuple(Event(**e) for e in data["events"]), data["follow_up"]
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("examples", type=int, nargs="?", default=100)
    parser.add_argument("--seed", type=int, default=int(os.environ.get("RUN_CANARY_SEQUENCE_SEED", "1")))
    parser.add_argument("--replay", help="a scenario's JSON, as printed")
    parser.add_argument("--out", help="append each failing scenario and its problems here (JSON lines)")
    parser.add_argument("--avoid", default="", help="skip scenarios that may meet these findings: 1,3,4")
    args = parser.parse_args()
    kinds: Counter[str] = Counter()
    avoid = {int(n) for n in args.avoid.split(",") if n.strip()}
    failing = skipped = 0
    played = itertools.count(1)
    start, cpu = time.monotonic(), time.process_time()
    with Emulator(port=0, ready_delay=0.05, images=cloudrun.TEST_IMAGES) as emu:

        def one(scenario: Scenario) -> None:
            nonlocal failing, skipped
            if triggers(scenario) & avoid:
                skipped += 1
                return
            n = next(played)
            if n % 50 == 0:
                print(
                    f"... {n} examples played, {failing} failing, {time.monotonic() - start:.0f} s",
                    flush=True,
                )
            try:
                play(emu, f"hunt-{n}", scenario)
            except Problem as exc:
                failing += 1
                lines = str(exc).splitlines()
                if args.out:
                    with open(args.out, "a", encoding="utf-8") as out:
                        record = {"scenario": json.loads(lines[0]), "problems": lines[1:]}
                        out.write(json.dumps(record) + "\n")
                for line in lines[1:]:
                    kind = signature(line)
                    if kind not in kinds:
                        print(f"\n### new kind (example {n}): {line}\n{lines[0]}", flush=True)
                    kinds[kind] += 1
            except Exception as exc:  # a crash of the driver or the action: report, go on
                failing += 1
                kind = f"crash: {type(exc).__name__}: {signature(str(exc))}"
                if kind not in kinds:
                    print(f"\n### crash (example {n}): {exc!r}\n{scenario.describe()}", flush=True)
                    traceback.print_exc()
                kinds[kind] += 1

        if args.replay:
            one(from_json(args.replay))
        else:

            @seed(args.seed)
            @settings(
                max_examples=args.examples,
                deadline=None,
                database=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(scenarios())
            def hunt(scenario: Scenario) -> None:
                one(scenario)

            hunt()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = next(played) - 1
    used = time.process_time() - cpu + children.ru_utime + children.ru_stime
    took = time.monotonic() - start
    print(
        f"\n{total} examples ({skipped} more skipped by --avoid), {failing} failing, {took:.0f} s, "
        f"{used / max(total, 1):.2f} CPU s each"
    )
    for kind, count in kinds.most_common():
        print(f"{count:5d}  {kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
