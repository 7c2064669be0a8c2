"""The baseline a candidate is compared with (``baseline`` input): its revision name, its template
built from the revision that served most before the run, and which revisions a step compares with.

Kayenta's rule: compare the canary with a baseline of the current release deployed at the same
time, with the same share of traffic -- not with the stable revision itself, whose instances are
warm, whose load differs and whose data is older. ``stable`` is the weaker comparison with the
revisions from before the run, over the same window. Pure: no I/O.
"""

from __future__ import annotations

import copy
from typing import Any

from deployer.traffic import Traffic

Obj = dict[str, Any]
MAX_NAME = 63  # a revision name is a DNS label
SUFFIX = "-baseline"
# Set by the server on every revision (output only, or stamped from the service): never in a template.
SERVER_LABELS = ("serving.knative.dev/", "cloud.googleapis.com/location", "run.googleapis.com/")
SERVER_ANNOTATIONS = ("serving.knative.dev/creator", "serving.knative.dev/lastModifier")


def revision_name(candidate: str) -> str:
    """The baseline revision's name: the candidate's plus ``-baseline`` (a re-run of one attempt
    gets the same name, so it reuses the revision instead of making another)."""
    if len(candidate) + len(SUFFIX) <= MAX_NAME:
        return candidate + SUFFIX
    return (candidate[: MAX_NAME - len(SUFFIX)].rstrip("-") + SUFFIX)[:MAX_NAME]


def template_from_revision(revision: Obj, name: str) -> Obj:
    """A template that makes a new revision with exactly the settings of ``revision`` (image, env,
    resources, annotations such as scaling), named ``name``; what the server stamps is left out."""
    meta = revision.get("metadata") or {}
    labels = {
        k: v for k, v in (meta.get("labels") or {}).items() if not k.startswith(SERVER_LABELS) and k != "uid"
    }
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in SERVER_ANNOTATIONS}
    template_meta: Obj = {"name": name}
    if labels:
        template_meta["labels"] = labels
    if annotations:
        template_meta["annotations"] = annotations
    spec = copy.deepcopy(revision.get("spec") or {})
    pin_images(spec, revision.get("status") or {})
    return {"metadata": template_meta, "spec": spec}


def pin_images(spec: Obj, status: Obj) -> None:
    """Each container's image by the digest the revision resolved it to (``status.containerStatuses``,
    or ``status.imageDigest`` for a lone container), as gcloud does when it makes a revision from
    another (``_SwitchToDigestChange``): a tag such as ``:latest`` may have moved to the candidate's
    image since, and a baseline of the candidate compares nothing."""
    containers = spec.get("containers") or []
    digests = {c.get("name") or "": c.get("imageDigest") for c in status.get("containerStatuses") or []}
    for container in containers:
        image = str(container.get("image") or "")
        digest = digests.get(container.get("name") or "")
        if digest is None and len(containers) == 1:
            digest = status.get("imageDigest")
        if image and digest and "@sha256:" not in image:
            container["image"] = digest if "@" in digest else f"{_without_tag(image)}@{digest}"


def _without_tag(image: str) -> str:
    """``host:port/repo/name:tag`` without ``:tag`` (a port's colon comes before the last slash)."""
    colon = image.rfind(":")
    return image[:colon] if colon > image.rfind("/") else image


def compared_with(mode: str, base: Traffic, baseline_revision: str) -> tuple[str, ...]:
    """The revisions a step compares the candidate with: the baseline revision (``revision``), or
    the revisions from before the run that serve traffic (``stable``); none with ``none``."""
    if mode == "revision":
        return (baseline_revision,) if baseline_revision else ()
    if mode == "stable":
        return tuple(t.revision for t in base if t.revision and t.percent > 0)
    return ()


def missing_source(service: str, top: str | None) -> str:
    """Why ``baseline: revision`` cannot start: no revision serving traffic to copy (or it is gone)."""
    return f"baseline: revision needs a revision serving traffic to copy; service {service} has " + (
        f"no revision {top}" if top else "none"
    )
