"""deployer.baseline: the baseline revision's name and template, and what a step compares with;
and the summary's Canary analysis table that shows the verdicts."""

from __future__ import annotations

from deployer import baseline
from deployer.github.render import render_summary
from deployer.result import Outcome, RolloutResult, Verdict
from deployer.traffic import Target


def test_the_name_follows_the_candidate_and_stays_a_dns_label() -> None:
    assert baseline.revision_name("shop-abc1234-1") == "shop-abc1234-1-baseline"
    long = "s" * 40 + "-" + "x" * 20
    name = baseline.revision_name(long)
    assert len(name) <= 63 and name.endswith("-baseline") and name.startswith("s" * 40)


def test_the_template_copies_the_revision_without_what_the_server_stamps() -> None:
    revision = {
        "metadata": {
            "name": "shop-v1",
            "uid": "123",
            "labels": {
                "team": "blue",
                "serving.knative.dev/service": "shop",
                "cloud.googleapis.com/location": "us-central1",
            },
            "annotations": {"autoscaling.knative.dev/maxScale": "3", "serving.knative.dev/creator": "me"},
        },
        "spec": {
            "containers": [{"image": "gcr.io/p/app@sha256:" + "a" * 64, "env": [{"name": "A", "value": "1"}]}]
        },
        "status": {"conditions": []},
    }
    template = baseline.template_from_revision(revision, "shop-v2-baseline")
    assert template == {
        "metadata": {
            "name": "shop-v2-baseline",
            "labels": {"team": "blue"},
            "annotations": {"autoscaling.knative.dev/maxScale": "3"},
        },
        "spec": revision["spec"],
    }
    assert template["spec"] is not revision["spec"]  # a copy


DIGEST = "sha256:" + "b" * 64


def test_the_template_pins_each_image_to_the_digest_the_revision_resolved() -> None:
    """A tag (``:latest``) may have moved to the candidate's image since: the baseline runs what the
    revision runs, as gcloud's ``_SwitchToDigestChange`` does."""
    lone = {
        "spec": {"containers": [{"image": "gcr.io/p/app:latest"}]},
        "status": {"imageDigest": f"gcr.io/p/app@{DIGEST}"},
    }
    assert (
        baseline.template_from_revision(lone, "b")["spec"]["containers"][0]["image"]
        == f"gcr.io/p/app@{DIGEST}"
    )
    bare = {"spec": {"containers": [{"image": "host:5000/app:v1"}]}, "status": {"imageDigest": DIGEST}}
    assert (
        baseline.template_from_revision(bare, "b")["spec"]["containers"][0]["image"]
        == f"host:5000/app@{DIGEST}"
    )
    pair = {
        "spec": {
            "containers": [
                {"name": "app", "image": "app:1", "ports": [{}]},
                {"name": "proxy", "image": "px:2"},
            ]
        },
        "status": {
            "imageDigest": f"app@{DIGEST}",
            "containerStatuses": [
                {"name": "app", "imageDigest": f"app@{DIGEST}"},
                {"name": "proxy", "imageDigest": "px@sha256:" + "c" * 64},
            ],
        },
    }
    images = [c["image"] for c in baseline.template_from_revision(pair, "b")["spec"]["containers"]]
    assert images == [f"app@{DIGEST}", "px@sha256:" + "c" * 64]
    unresolved = {
        "spec": {"containers": [{"image": "app:1"}, {"image": "px:2"}]},
        "status": {"imageDigest": f"app@{DIGEST}"},
    }
    images = [c["image"] for c in baseline.template_from_revision(unresolved, "b")["spec"]["containers"]]
    assert images == ["app:1", "px:2"]  # which container the lone digest belongs to is unknown: as they are


def test_what_a_step_compares_with() -> None:
    base = (Target(revision="a", percent=70), Target(revision="b", percent=30), Target(revision="c", tag="x"))
    assert baseline.compared_with("revision", base, "cand-baseline") == ("cand-baseline",)
    assert baseline.compared_with("stable", base, "") == ("a", "b")
    assert baseline.compared_with("none", base, "cand-baseline") == ()


def test_the_summary_shows_each_steps_deciding_verdicts() -> None:
    result = RolloutResult(Outcome.ROLLED_BACK, "deploy", "shop", "us-central1", "p", reason="check failed")
    detail = (
        "latency: p50 151 ms vs 101 ms (+50 %), p95 312 ms vs 240 ms (+30 %), allowed +20 %, p=0.003: fail; "
        "candidate 212 requests, 0.0 % 5xx, p50/p95/p99 151/312/340 ms; baseline 208 requests"
    )
    result.analyses = [
        (10, Verdict("metrics", True, "error rate 0.0 %")),
        (10, Verdict("baseline", False, detail)),
    ]
    text = render_summary(result)
    assert "### Canary analysis" in text
    assert "| 10% | baseline | ❌ fail | latency: p50 151 ms vs 101 ms (+50 %)" in text
    assert "| 10% | metrics | ✅ pass |" in text
