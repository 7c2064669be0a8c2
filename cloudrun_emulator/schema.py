"""Request-body validation against Google's own discovery document for ``run:v1``.

The emulator is only useful if it refuses what Cloud Run refuses, so the schema is loaded from the
installed ``google-api-python-client`` package instead of being restated (and drifting) here.
Messages copy the wording of Google's JSON parser so client code can be tested against them.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from cloudrun_emulator import secretrefs

DOCUMENT = "run.v1.json"
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
PROTO_TYPES = {
    ("integer", "int32"): "TYPE_INT32",
    ("integer", "uint32"): "TYPE_UINT32",
    ("string", "int64"): "TYPE_INT64",
    ("string", "uint64"): "TYPE_UINT64",
    ("number", "float"): "TYPE_FLOAT",
    ("number", "double"): "TYPE_DOUBLE",
    ("boolean", None): "TYPE_BOOL",
    ("string", None): "TYPE_STRING",
    ("string", "byte"): "TYPE_BYTES",
}


@dataclass(frozen=True)
class Violation:
    """One problem found in a request body, already worded like Google's parser."""

    field: str
    description: str


class SchemaError(Exception):
    """The body does not parse against the schema; carries every violation found."""

    def __init__(self, violations: list[Violation]) -> None:
        super().__init__("\n".join(v.description for v in violations))
        self.violations = violations


@lru_cache(maxsize=1)
def load_document() -> dict[str, Any]:
    """Read ``run.v1.json`` from the installed client library (cached: it is large)."""
    package = resources.files("googleapiclient") / "discovery_cache" / "documents" / DOCUMENT
    return json.loads(package.read_text(encoding="utf-8"))


def schemas() -> dict[str, Any]:
    """The ``schemas`` section of the discovery document."""
    return load_document()["schemas"]


def validate(body: Any, schema: str, root: str) -> Any:
    """Check ``body`` against ``schema`` and return it normalised; raise SchemaError otherwise.

    ``root`` is the name Google gives the body in messages (``service`` for services.create).
    Normalising converts what proto3 JSON also accepts (numeric strings for integers, nulls) so
    the store only ever sees canonical values.
    """
    violations: list[Violation] = []
    result = _walk(body, {"$ref": schema}, root, violations)
    if violations:
        raise SchemaError(violations)
    return result


def _walk(value: Any, spec: dict[str, Any], path: str, out: list[Violation]) -> Any:
    """Dispatch on the schema node's type; record violations instead of raising."""
    if "$ref" in spec:
        return _walk_message(value, spec["$ref"], path, out)
    kind = spec.get("type")
    if kind == "any":
        return value
    if kind == "object":
        return _walk_map(value, spec, path, out)
    if kind == "array":
        return _walk_array(value, spec, path, out)
    return _walk_scalar(value, kind, spec.get("format"), path, out)


def _invalid(value: Any, path: str, type_name: str) -> Violation:
    """Google's wording for a value of the wrong type."""
    text = f"Invalid value at '{path}' ({type_name}), {json.dumps(value, separators=(',', ':'))}"
    return Violation(path, text)


def _walk_message(value: Any, name: str, path: str, out: list[Violation]) -> Any:
    """Validate a JSON object against a named message schema: every key must be known."""
    if not isinstance(value, dict):
        out.append(_invalid(value, path, f"type.googleapis.com/google.cloud.run.v1.{name}"))
        return value
    props: dict[str, Any] = schemas()[name].get("properties", {})
    result: dict[str, Any] = {}
    for key, item in value.items():
        if key not in props:
            where = f" at '{path}'" if path else ""
            text = f'Invalid JSON payload received. Unknown name "{key}"{where}: Cannot find field.'
            out.append(Violation(path, text))
            continue
        if item is None:
            continue
        result[key] = _walk(item, props[key], _join(path, key), out)
    return result


def _walk_map(value: Any, spec: dict[str, Any], path: str, out: list[Violation]) -> Any:
    """``additionalProperties`` maps (labels, annotations, limits) take any key."""
    if not isinstance(value, dict):
        out.append(_invalid(value, path, "TYPE_MESSAGE"))
        return value
    inner = spec.get("additionalProperties", {"type": "any"})
    return {key: _walk(item, inner, f"{path}[{key}]", out) for key, item in value.items()}


def _walk_array(value: Any, spec: dict[str, Any], path: str, out: list[Violation]) -> Any:
    """Repeated fields: a JSON array whose elements are checked with ``[i]`` in the path."""
    if not isinstance(value, list):
        out.append(_invalid(value, path, _describe(spec["items"])))
        return value
    return [_walk(item, spec["items"], f"{path}[{i}]", out) for i, item in enumerate(value)]


def _describe(spec: dict[str, Any]) -> str:
    """The type name Google prints for a schema node."""
    if "$ref" in spec:
        return f"type.googleapis.com/google.cloud.run.v1.{spec['$ref']}"
    return PROTO_TYPES.get((spec.get("type", ""), spec.get("format")), "TYPE_STRING")


def _walk_scalar(value: Any, kind: Any, fmt: Any, path: str, out: list[Violation]) -> Any:
    """Strings, integers, booleans and numbers with proto3 JSON's leniency and nothing more."""
    type_name = PROTO_TYPES.get((kind, fmt), "TYPE_STRING")
    if kind == "boolean":
        ok = isinstance(value, bool)
        result: Any = value
    elif kind == "integer" or (kind == "string" and fmt in ("int64", "uint64")):
        result = _as_integer(value, type_name)
        ok = result is not None
        if ok and kind == "string":
            result = str(result)
    elif kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        result = value
    else:
        ok = isinstance(value, str)
        result = value
    if not ok:
        out.append(_invalid(value, path, type_name))
        return value
    return result


def _as_integer(value: Any, type_name: str) -> int | None:
    """An integer within range, from a JSON number or numeric string; None when not acceptable."""
    if isinstance(value, bool):
        return None
    integral_float = isinstance(value, float) and math.isfinite(value) and value.is_integer()
    numeric_text = isinstance(value, str) and value.strip().lstrip("-").isdigit()
    if not (isinstance(value, int) or integral_float or numeric_text):
        return None
    number = int(value)
    low, high = _bounds(type_name)
    return number if low <= number <= high else None


def _bounds(type_name: str) -> tuple[int, int]:
    """Inclusive range of an integer proto type."""
    return {
        "TYPE_INT32": (INT32_MIN, INT32_MAX),
        "TYPE_UINT32": (0, 2**32 - 1),
        "TYPE_UINT64": (0, 2**64 - 1),
    }.get(type_name, (INT64_MIN, INT64_MAX))


def _join(path: str, key: str) -> str:
    """Dotted field path, as Google prints it."""
    return f"{path}.{key}" if path else key


# --- Cloud Run's semantic rules (what parses but is still refused) ---------------------------

DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_NAME = 63
MAX_TAG_PLUS_SERVICE = 46
MAX_CONTAINERS = 10
DEPENDENCIES = "run.googleapis.com/container-dependencies"
INGRESS = ("all", "internal", "internal-and-cloud-load-balancing")
SERVICE_ANNOTATIONS: dict[str, tuple[str, ...]] = {"run.googleapis.com/ingress": INGRESS}
TEMPLATE_ANNOTATIONS: dict[str, tuple[str, ...]] = {
    "run.googleapis.com/cpu-throttling": ("true", "false"),
    "run.googleapis.com/execution-environment": ("gen1", "gen2"),
    "run.googleapis.com/vpc-access-egress": ("all-traffic", "private-ranges-only"),
}
SCALE_ANNOTATIONS = ("autoscaling.knative.dev/minScale", "autoscaling.knative.dev/maxScale")


def check_service(service: dict[str, Any], name: str) -> list[Violation]:
    """Rules that need nothing but the body: names, containers, traffic shape, annotations."""
    meta = service.get("metadata", {})
    spec = service.get("spec", {})
    problems = _check_service_name(name)
    problems += _check_annotations(meta.get("annotations", {}), SERVICE_ANNOTATIONS, "metadata.annotations")
    problems += _check_template(spec.get("template", {}), name)
    problems += check_traffic(spec.get("traffic", []), name)
    return problems


def _check_service_name(name: str) -> list[Violation]:
    """Service names are DNS-1035 labels of at most 63 characters."""
    if not name:
        return [Violation("metadata.name", "metadata.name: name is required")]
    if len(name) > MAX_NAME or not DNS1035.match(name):
        text = (
            f"metadata.name: Invalid service name '{name}': must use only lowercase alphanumeric "
            "characters and dashes, begin with a letter, not end with a dash, and be at most 63 characters."
        )
        return [Violation("metadata.name", text)]
    return []


def _check_annotations(
    annotations: dict[str, str], allowed: dict[str, tuple[str, ...]], where: str
) -> list[Violation]:
    """Annotations with a closed set of values, and integer-valued scale bounds."""
    problems = []
    for key, values in allowed.items():
        if key in annotations and annotations[key] not in values:
            text = f"{where}[{key}]: '{annotations[key]}' is not one of {', '.join(values)}"
            problems.append(Violation(f"{where}[{key}]", text))
    return problems


def _check_scale(annotations: dict[str, str], where: str) -> list[Violation]:
    """minScale/maxScale are non-negative integers written as strings."""
    problems = []
    for key in SCALE_ANNOTATIONS:
        value = annotations.get(key)
        if value is not None and not value.isdigit():
            field = f"{where}[{key}]"
            problems.append(Violation(field, f"{field}: expected an integer, got '{value}'"))
    return problems


def _check_template(template: dict[str, Any], service: str) -> list[Violation]:
    """The revision template: its name, annotations, and the one serving container."""
    meta = template.get("metadata", {})
    spec = template.get("spec", {})
    problems = check_revision_name(meta.get("name", ""), service)
    where = "spec.template.metadata.annotations"
    problems += _check_annotations(meta.get("annotations", {}), TEMPLATE_ANNOTATIONS, where)
    problems += _check_scale(meta.get("annotations", {}), where)
    problems += _check_limits(spec)
    containers = spec.get("containers", [])
    problems += _check_containers(containers)
    for i, container in enumerate(containers):
        problems += _check_container(container, f"spec.template.spec.containers[{i}]")
    found = secretrefs.check(
        meta.get("annotations", {}), spec, "spec.template.metadata", "spec.template.spec"
    )
    problems += [Violation(field, text) for field, text in found]
    dependencies = meta.get("annotations", {}).get(DEPENDENCIES)
    if dependencies is not None:
        problems += _check_dependencies(dependencies, [c.get("name", "") for c in containers])
    return problems


def _check_dependencies(text: str, names: list[str]) -> list[Violation]:
    """``run.googleapis.com/container-dependencies``: container startup order among named containers.

    https://cloud.google.com/run/docs/configuring/services/containers#container-ordering: a JSON
    object mapping a container name to the names it waits for (gcloud's ``--depends-on``); every
    name must be a container of the template, and the order must not loop.
    """
    field = f"spec.template.metadata.annotations[{DEPENDENCIES}]"
    try:
        graph = json.loads(text)
    except ValueError:
        graph = None
    if not isinstance(graph, dict) or not all(
        isinstance(v, list) and all(isinstance(d, str) for d in v) for v in graph.values()
    ):
        return [Violation(field, f"{field}: must be a JSON object of container name to a list of names")]
    unknown = sorted({n for k, v in graph.items() for n in [k, *v]} - {n for n in names if n})
    if unknown:
        return [Violation(field, f"{field}: no container named {', '.join(map(repr, unknown))}")]
    if _has_cycle(graph):
        return [Violation(field, f"{field}: container dependencies must not form a cycle")]
    return []


def _has_cycle(graph: dict[str, list[str]]) -> bool:
    """Depth-first search for a loop in the dependency graph (a container waiting on itself too)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str) -> bool:
        if state.get(node) == 1:
            return True
        if state.get(node) == 2:
            return False
        state[node] = 1
        looped = any(visit(n) for n in graph.get(node, []))
        state[node] = 2
        return looped

    return any(visit(node) for node in graph)


def _check_containers(containers: list[dict[str, Any]]) -> list[Violation]:
    """One to ten containers; among several, exactly one ingress container and unique names.

    https://cloud.google.com/run/docs/deploying#sidecars: up to 10 containers per instance, and
    exactly one of them, the ingress container, declares the port that receives requests (gcloud's
    ``--container`` flags; a lone container gets the default port).
    """
    field = "spec.template.spec.containers"
    if not 1 <= len(containers) <= MAX_CONTAINERS:
        text = f"{field}: between 1 and {MAX_CONTAINERS} containers are required, got {len(containers)}"
        return [Violation(field, text)]
    problems = []
    if len(containers) > 1:
        ingress = [i for i, c in enumerate(containers) if c.get("ports")]
        if len(ingress) != 1:
            text = (
                f"{field}: exactly one container must declare a port (the ingress container), "
                f"got {len(ingress)}"
            )
            problems.append(Violation(field, text))
    seen: set[str] = set()
    for i, container in enumerate(containers):
        name = container.get("name", "")
        if name and name in seen:
            where = f"{field}[{i}].name"
            problems.append(Violation(where, f"{where}: duplicate container name '{name}'"))
        seen.add(name)
    return problems


def check_revision_name(name: str, service: str) -> list[Violation]:
    """Explicit revision names: DNS-1035, at most 63 characters, prefixed by ``<service>-``."""
    field = "spec.template.metadata.name"
    if not name:
        return []
    if len(name) > MAX_NAME or not DNS1035.match(name):
        text = f"{field}: Invalid revision name '{name}': must be a DNS-1035 label of at most 63 characters"
        return [Violation(field, text)]
    if not name.startswith(f"{service}-") or name == f"{service}-":
        return [Violation(field, f'{field}: "{name}" must have prefix "{service}-"')]
    return []


def _check_limits(spec: dict[str, Any]) -> list[Violation]:
    """Request timeout and concurrency bounds."""
    problems = []
    timeout = spec.get("timeoutSeconds")
    if timeout is not None and not 1 <= timeout <= 3600:
        field = "spec.template.spec.timeoutSeconds"
        problems.append(Violation(field, f"{field}: expected 1 <= {timeout} <= 3600"))
    concurrency = spec.get("containerConcurrency")
    if concurrency is not None and not 0 <= concurrency <= 1000:
        field = "spec.template.spec.containerConcurrency"
        problems.append(Violation(field, f"{field}: expected 0 <= {concurrency} <= 1000"))
    return problems


def _check_container(container: dict[str, Any], where: str) -> list[Violation]:
    """Image required; at most one port, in range, named http1 or h2c; env entries well formed."""
    problems = []
    if not container.get("image"):
        problems.append(Violation(f"{where}.image", f"{where}.image: image is required"))
    ports = container.get("ports", [])
    if len(ports) > 1:
        problems.append(Violation(f"{where}.ports", f"{where}.ports: at most one port may be specified"))
    for i, port in enumerate(ports):
        number = port.get("containerPort", 8080)
        if not 1 <= number <= 65535:
            field = f"{where}.ports[{i}].containerPort"
            problems.append(Violation(field, f"{field}: expected 1 <= {number} <= 65535"))
        if port.get("name", "http1") not in ("http1", "h2c"):
            field = f"{where}.ports[{i}].name"
            problems.append(Violation(field, f"{field}: must be http1 or h2c"))
    return problems + _check_env(container.get("env", []), f"{where}.env")


def _check_env(env: list[dict[str, Any]], where: str) -> list[Violation]:
    """Env vars need a name and either a value or a valueFrom, not both.

    run.v1.json (``Container.env``): "EnvVar with duplicate names are generally allowed; if
    referencing a secret, the name must be unique for the container. For non-secret EnvVar names,
    the Container will only get the last-declared one."
    """
    problems = []
    secret_names = {v.get("name") for v in env if "valueFrom" in v}
    seen: set[str] = set()
    for i, var in enumerate(env):
        name = var.get("name", "")
        if not name:
            problems.append(Violation(f"{where}[{i}].name", f"{where}[{i}].name: name is required"))
        elif name in seen and name in secret_names:
            text = f"{where}[{i}].name: duplicate name '{name}': a variable from a secret must be unique"
            problems.append(Violation(f"{where}[{i}].name", text))
        seen.add(name)
        if "value" in var and "valueFrom" in var:
            text = f"{where}[{i}]: expected exactly one, got both: value, valueFrom"
            problems.append(Violation(f"{where}[{i}]", text))
    return problems


def check_traffic(traffic: list[dict[str, Any]], service: str) -> list[Violation]:
    """Traffic targets: output-only url, one of revisionName/latestRevision, percents, tags."""
    problems: list[Violation] = []
    tags: set[str] = set()
    for i, target in enumerate(traffic):
        problems += _check_target(target, f"spec.traffic[{i}]", service, tags)
    total = sum(t.get("percent", 0) for t in traffic)
    if traffic and total != 100:
        problems.append(Violation("spec.traffic", f"spec.traffic: Traffic targets sum to {total}, want 100"))
    return problems


def _check_target(target: dict[str, Any], where: str, service: str, tags: set[str]) -> list[Violation]:
    """One traffic target; ``tags`` collects the tags seen so far to catch duplicates."""
    problems = []
    if target.get("url"):
        problems.append(Violation(f"{where}.url", f"{where}.url: url is an output-only field"))
    if target.get("configurationName"):
        text = f"{where}.configurationName: configurationName must be empty"
        problems.append(Violation(f"{where}.configurationName", text))
    if target.get("latestRevision") and target.get("revisionName"):
        text = f"{where}.latestRevision: may not set revisionName if latestRevision is true"
        problems.append(Violation(f"{where}.latestRevision", text))
    if not target.get("latestRevision") and not target.get("revisionName"):
        text = f"{where}: expected exactly one, got neither: latestRevision, revisionName"
        problems.append(Violation(where, text))
    percent = target.get("percent", 0)
    if not 0 <= percent <= 100:
        problems.append(Violation(f"{where}.percent", f"{where}.percent: expected 0 <= {percent} <= 100"))
    tag = target.get("tag")
    if tag is not None:
        problems += _check_tag(tag, f"{where}.tag", service, tags)
    return problems


def _check_tag(tag: str, field: str, service: str, tags: set[str]) -> list[Violation]:
    """Tags: DNS-1035, unique, and short enough to fit in a URL host with the service name."""
    if not DNS1035.match(tag):
        return [Violation(field, f"{field}: Invalid tag '{tag}': must be a DNS-1035 label")]
    if tag in tags:
        return [Violation(field, f"{field}: Multiple traffic targets with the same tag '{tag}'")]
    tags.add(tag)
    if len(tag) + len(service) > MAX_TAG_PLUS_SERVICE:
        text = (
            f"{field}: tag '{tag}' is too long: the tag and the service name together may have "
            f"at most {MAX_TAG_PLUS_SERVICE} characters"
        )
        return [Violation(field, text)]
    return []
