"""The baseline inputs: parsed, and refused before anything is written when they make no sense."""

from __future__ import annotations

import pytest

from deployer import inputs

BASE = {"INPUT_SERVICE": "api", "INPUT_IMAGE": "example/app:1", "INPUT_PROJECT_ID": "my-project"}


def load(**values: str) -> inputs.Config:
    env = dict(BASE)
    env.update({f"INPUT_{k.upper()}": v for k, v in values.items()})
    return inputs.load(env)[0]


def problems(**values: str) -> str:
    with pytest.raises(inputs.ConfigError) as caught:
        load(**values)
    return str(caught.value)


def test_defaults_compare_nothing() -> None:
    analysis = load().analysis
    assert analysis.baseline == "none"
    assert analysis.max_latency_increase is None and analysis.max_error_rate_increase is None
    assert analysis.confidence == 95.0 and analysis.load_rps is None
    assert not analysis.comparisons


def test_a_baseline_with_its_checks() -> None:
    analysis = load(
        baseline="revision",
        max_latency_increase="20",
        max_error_rate_increase="1",
        confidence="99",
        load_rps="5",
    ).analysis
    assert (analysis.baseline, analysis.max_latency_increase, analysis.max_error_rate_increase) == (
        "revision",
        20.0,
        1.0,
    )
    assert analysis.confidence == 99.0 and analysis.load_rps == 5.0
    assert analysis.metric_thresholds and analysis.inconclusive_action == "fail"


def test_a_comparative_check_needs_a_baseline() -> None:
    text = problems(max_latency_increase="20")
    assert "max_latency_increase" in text and "baseline" in text and "revision or stable" in text


def test_a_baseline_without_a_check_is_refused() -> None:
    assert "max_latency_increase or max_error_rate_increase" in problems(baseline="stable")


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("baseline", "canary", "none"),
        ("confidence", "100", "99.9"),
        ("confidence", "40", "50"),
        ("load_rps", "0", "above 0"),
        ("load_rps", "500", "at most 100"),
        ("max_error_rate_increase", "-1", "at least 0"),
    ],
)
def test_bad_values_name_the_input_and_what_is_valid(name: str, value: str, expected: str) -> None:
    extra = {"baseline": "revision", "max_latency_increase": "20"}
    extra[name] = value
    text = problems(**extra)
    assert name in text and expected in text


def test_the_baseline_tag_is_not_the_candidate_tag() -> None:
    text = problems(baseline="revision", max_latency_increase="20", tag="baseline")
    assert "tag" in text and "baseline" in text
