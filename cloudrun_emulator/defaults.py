"""Knative's defaults for a revision template, and when two templates are the same revision."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from cloudrun_emulator.wire import prune


def default_template(template: dict[str, Any]) -> dict[str, Any]:
    """Fill the defaults Cloud Run writes back: concurrency, timeout, port, resources, startup probe."""
    result = copy.deepcopy(template)
    spec = result.setdefault("spec", {})
    spec.setdefault("timeoutSeconds", 300)
    containers = spec.get("containers", [])
    for container in containers:
        if len(containers) == 1:  # a lone container serves; among several, the one with ports does
            container.setdefault("ports", [{}])
        for port in container.get("ports", []):
            port.setdefault("name", "http1")
            port.setdefault("containerPort", 8080)
        limits = container.setdefault("resources", {}).setdefault("limits", {})
        limits.setdefault("cpu", "1000m")
        limits.setdefault("memory", "512Mi")
        if container.get("ports"):
            default_startup_probe(container)
    if not spec.get("containerConcurrency"):
        spec["containerConcurrency"] = default_concurrency(containers)
    return result


def default_concurrency(containers: list[dict[str, Any]]) -> int:
    """run.v1.json (``RevisionSpec.containerConcurrency``): "If not specified or 0, defaults to 80 when
    requested CPU >= 1 and defaults to 1 when requested CPU < 1" (the instance's CPU: every container's)."""
    cpu = sum(cpu_cores(c.get("resources", {}).get("limits", {}).get("cpu", "1")) for c in containers)
    return 80 if cpu >= 1 else 1


def cpu_cores(text: str) -> float:
    """A Kubernetes CPU quantity (``1``, ``0.5``, ``500m``) in cores; 1 when it does not parse."""
    try:
        return float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        return 1.0


def default_startup_probe(container: dict[str, Any]) -> None:
    """The ingress container's startup probe as Cloud Run stores it.

    https://cloud.google.com/run/docs/configuring/healthchecks: without a configured startup probe,
    Cloud Run uses a TCP probe on the container port (stored as ``tcpSocket.port``, timeout and
    period 240 s, failure threshold 1). A configured probe without a port probes the container
    port; gcloud's ``--port`` moves a probe that pointed at the old port
    (command_lib/run/config_changes.ContainerPortChange).
    """
    port = container["ports"][0]["containerPort"]
    probe = container.setdefault(
        "startupProbe", {"timeoutSeconds": 240, "periodSeconds": 240, "failureThreshold": 1}
    )
    if not any(kind in probe for kind in ("tcpSocket", "httpGet", "grpc")):
        probe["tcpSocket"] = {}
    for kind in ("tcpSocket", "httpGet", "grpc"):
        if kind in probe and isinstance(probe[kind], dict):
            probe[kind].setdefault("port", port)


def ingress_container(template: Mapping[str, Any]) -> dict[str, Any]:
    """The container that receives requests: the one declaring ``ports`` (the only one otherwise)."""
    containers: list[dict[str, Any]] = template.get("spec", {}).get("containers", [])
    return next((c for c in containers if c.get("ports")), containers[0])


def strip_name(template: Mapping[str, Any]) -> dict[str, Any]:
    """A template without its revision name, to compare what a revision actually runs."""
    result = copy.deepcopy(dict(template))
    result.get("metadata", {}).pop("name", None)
    if result.get("metadata") == {}:
        result.pop("metadata")
    return result


def same_template(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Equal templates once defaults are filled and empty values dropped.

    Cloud Run is a proto3 API: an empty map, list or string is the same as an absent field
    (https://protobuf.dev/programming-guides/proto3/#default), and Knative compares specs with
    Kubernetes' semantic equality, where empty and nil are equal
    (k8s.io/apimachinery/pkg/api/equality). So ``labels: {}`` or a container ``name: ""`` sent by
    gcloud must not make an unchanged template look different from the one stored with defaults.
    """
    return bool(prune(default_template(dict(a))) == prune(default_template(dict(b))))


def same_revision(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Would both templates run the same revision (same template apart from the revision name)?"""
    return same_template(strip_name(a), strip_name(b))
