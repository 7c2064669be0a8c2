"""A step's bake (deployer.bake): rounds, failure threshold, inconclusive, metric lag -- no server."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from deployer import bake
from deployer.errors import RolloutFailed
from deployer.hooks import Hooks
from deployer.result import Outcome, RolloutResult, StepInfo, Verdict
from deployer.settings import AnalysisSettings
from deployer.smoke import SmokeResult

OK = Verdict("error rate", True, "0.1% <= 1%")
BAD = Verdict("error rate", False, "7% > 1%")
UNSURE = Verdict("error rate", None, "12 requests < 100")


def test_round_every_third_of_the_bake_within_one_and_fifteen_seconds() -> None:
    assert [bake.round_every(s) for s in (1, 9, 30, 300)] == [1.0, 3.0, 10.0, 15.0]
    assert bake.metric_poll_every(240) == 5.0 and bake.metric_poll_every(1) == 0.25


def test_judge_warns_until_the_threshold_then_fails() -> None:
    assert bake.judge(10, [OK], 0, 2) == (0, "")
    failures, warning = bake.judge(10, [OK, BAD], 0, 2)
    assert failures == 1 and warning == "Check failed at 10% (1/2): error rate: 7% > 1%"
    with pytest.raises(RolloutFailed, match=r"check failed at 10%: error rate: 7% > 1%"):
        bake.judge(10, [BAD], failures, 2)


@pytest.mark.parametrize(
    ("action", "extensions", "expected"),
    [("pass", 0, True), ("extend", 0, False), ("extend", 2, False)],
)
def test_an_inconclusive_final_round_passes_or_extends(action: str, extensions: int, expected: bool) -> None:
    assert bake.after_final_round(10, [UNSURE], action, extensions) is expected
    assert bake.after_final_round(10, [OK], action, extensions) is True


@pytest.mark.parametrize(("action", "extensions"), [("fail", 0), ("extend", bake.MAX_EXTENSIONS)])
def test_an_inconclusive_final_round_fails(action: str, extensions: int) -> None:
    with pytest.raises(RolloutFailed, match=r"inconclusive at 25%: 12 requests < 100"):
        bake.after_final_round(25, [UNSURE], action, extensions)


def test_bake_detail_says_how_long_how_many_rounds_and_the_last_figures() -> None:
    assert (
        bake.bake_detail(30, 1, 95.4, 7, [OK])
        == "baked 60s + 95s for metrics, 7 rounds; error rate ok: 0.1% <= 1%"
    )
    assert bake.bake_detail(5, 0, 0.2, 3, []) == "baked 5s, 3 rounds"


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, text: str) -> None:
        self.lines.append(text)

    def warning(self, text: str) -> None:
        self.lines.append("warning: " + text)

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)


def run_bake(
    verdicts: list[list[Verdict]],
    *,
    ingested_after: float | None = None,
    time: FakeTime | None = None,
    load: Any = None,
    **analysis: Any,
) -> tuple[str, Log, list[StepInfo]]:
    time = time or FakeTime()
    asked: list[StepInfo] = []
    rounds = iter(verdicts)

    def checks(step: StepInfo) -> list[Verdict]:
        asked.append(step)
        return next(rounds)

    hooks = Hooks(
        smoke=lambda url: SmokeResult(True, 200, 1, "ok", 0.0),
        checks=checks,
        clock=time.clock,
        wall=time.clock,
        sleep=time.sleep,
        ingested=None
        if ingested_after is None
        else (lambda candidate, ended: time.now >= ended + ingested_after),
        metric_wait=240.0,
    )
    if load is not None:
        hooks.load = load
    info = StepInfo(
        percent=10,
        candidate="web-2",
        previous="web-1",
        tag_url="https://t",
        url="https://s",
        started=0,
        round=0,
    )
    step = bake.Bake(info, 9.0, AnalysisSettings(**analysis), ("https://t", "https://b"))
    result = RolloutResult(outcome=Outcome.FAILED, mode="deploy", service="web", region="r", project="p")
    log = Log()
    detail = bake.bake_rounds(step, hooks, log, result, time.sleep)
    assert result.analyses == [(10, v) for v in verdicts[len(asked) - 1]]
    return detail, log, asked


def test_a_bake_runs_a_round_every_third_of_it_and_a_final_one_that_judges_it_whole() -> None:
    detail, _, asked = run_bake([[OK], [OK], [OK], [OK]])
    assert [s.round for s in asked] == [1, 2, 3, 4]
    assert [s.ended for s in asked] == [None, None, None, pytest.approx(1009.0)]
    assert detail.startswith("baked 9s, 4 rounds")


def test_with_metric_thresholds_the_final_round_waits_for_the_metrics_only() -> None:
    detail, log, asked = run_bake([[OK], [OK], [OK]], ingested_after=30.0)
    # The round at the bake's end is the final one, once the metrics arrived (~30 s later).
    assert [s.round for s in asked] == [1, 2, 3]
    assert asked[-1].ended == pytest.approx(1009.0)
    assert re.search(r"\+ 3[0-5]s for metrics", detail)  # seen within one look (5 s at most) of arriving
    assert any("waiting up to 240s" in line for line in log.lines)


def test_a_failed_round_below_the_threshold_is_a_warning_and_the_step_goes_on() -> None:
    _, log, _ = run_bake([[BAD], [OK], [OK], [OK]], failure_threshold=2)
    assert "warning: Check failed at 10% (1/2): error rate: 7% > 1%" in log.lines


def test_an_inconclusive_step_is_baked_again_when_told_to_extend() -> None:
    detail, log, _ = run_bake([[OK], [OK], [OK], [UNSURE], [OK], [OK], [OK], [OK]], on_inconclusive="extend")
    assert "Inconclusive at 10%: baking 9s more (1/3)." in log.lines
    assert detail.startswith("baked 18s, 8 rounds")


def test_a_step_bakes_only_below_100_percent() -> None:
    assert [bake.bakes_at(p) for p in (1, 10, 50, 99, 100)] == [True, True, True, True, False]


class LoadSpy:
    """``Hooks.load``: when the load ran, on which URLs, and when the smoke check ran meanwhile."""

    def __init__(self, time: FakeTime) -> None:
        self.time = time
        self.windows: list[tuple[tuple[str, ...], float, float]] = []

    @contextlib.contextmanager
    def __call__(self, urls: tuple[str, ...]) -> Iterator[Callable[[], str]]:
        start, n = self.time.now, len(self.windows) + 1
        try:
            yield lambda: f"load_rps 5: sent {n}"
        finally:
            self.windows.append((urls, start, self.time.now))


def test_the_load_runs_only_inside_the_bake_window_not_while_metrics_are_awaited() -> None:
    """Requests after the window cannot be in its metrics: the load stops when the window ends, before
    the wait for Cloud Monitoring, and runs again only for an extension of the bake."""
    time = FakeTime()
    spy = LoadSpy(time)
    verdicts = [[OK], [OK], [UNSURE], [OK], [OK], [OK]]
    detail, log, asked = run_bake(
        verdicts, ingested_after=30.0, time=time, load=spy, on_inconclusive="extend"
    )
    finals = [s.ended for s in asked if s.ended is not None]
    assert len(spy.windows) == 2 and len(finals) == 2
    (urls, start1, end1), (_, start2, end2) = spy.windows
    assert urls == ("https://t", "https://b")
    assert start1 == pytest.approx(1000.0) and end1 == pytest.approx(1009.0) == finals[0]
    assert start2 > finals[0] + 30  # after the metric wait, not during it
    assert end2 == pytest.approx(start2 + 9.0) == finals[1]
    assert "10%: load_rps 5: sent 1" in log.lines and "10%: load_rps 5: sent 2" in log.lines
    assert detail.endswith("; load_rps 5: sent 1; load_rps 5: sent 2")
