"""IAM policies of a service: bindings' validation, policy versions and conditions, etags."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import re
from collections.abc import Mapping
from typing import Any

from cloudrun_emulator.errors import ApiError, invalid
from cloudrun_emulator.schema import Violation
from cloudrun_emulator.wire import prune

MEMBER = re.compile(r"^(allUsers|allAuthenticatedUsers|(user|serviceAccount|group|domain|principal\w*):.+)$")


def new_etag() -> str:
    """IAM etags are base64 bytes."""
    return base64.b64encode(os.urandom(8)).decode("ascii")


def same_bytes(given: str, stored: str) -> bool:
    """Do two base64 texts hold the same bytes?

    An IAM etag is a proto ``bytes`` field. Proto3's JSON mapping writes bytes as standard base64
    and accepts standard or URL-safe base64, with or without padding
    (https://protobuf.dev/programming-guides/proto3/#json); gcloud sends etags back URL-safe.
    """

    def decode(text: str) -> bytes | None:
        try:
            return base64.urlsafe_b64decode(text.replace("+", "-").replace("/", "_") + "=" * (-len(text) % 4))
        except ValueError:
            return None

    return decode(given) is not None and decode(given) == decode(stored)


def _without_condition(binding: Mapping[str, Any]) -> dict[str, Any]:
    """How a version 1 view shows a conditional binding: a marked role, no condition."""
    if "condition" not in binding:
        return dict(binding)
    digest = hashlib.sha256(json.dumps(binding["condition"], sort_keys=True).encode()).hexdigest()[:20]
    return {"role": f"{binding['role']}_withcond_{digest}", "members": list(binding.get("members", []))}


def check_bindings(bindings: list[dict[str, Any]]) -> list[Violation]:
    """IAM bindings need a role under roles/ (not a v1 ``_withcond_`` alias), well-formed members,
    and a condition, when there is one, with an expression."""
    problems = []
    for i, binding in enumerate(bindings):
        where = f"policy.bindings[{i}]"
        role = str(binding.get("role", ""))
        if not role.startswith("roles/") or "_withcond_" in role:
            problems.append(Violation(f"{where}.role", f"{where}.role: invalid role '{role}'"))
        condition = binding.get("condition")
        if condition is not None and not str(condition.get("expression", "")).strip():
            text = f"{where}.condition.expression: a condition needs an expression"
            problems.append(Violation(f"{where}.condition.expression", text))
        for j, member in enumerate(binding.get("members", [])):
            if not MEMBER.match(member):
                text = f"{where}.members[{j}]: Invalid member '{member}'"
                problems.append(Violation(f"{where}.members[{j}]", text))
    return problems


def read_policy(stored: dict[str, Any], etag: str, version: int) -> dict[str, Any]:
    """getIamPolicy: bindings plus the etag to send back on set.

    A policy with conditional bindings is only shown whole as version 3; asked for less, IAM
    answers version 1 with each conditional binding's role renamed ``<role>_withcond_<hash>`` and
    its condition left out (https://cloud.google.com/iam/docs/policies#versions).
    """
    policy = copy.deepcopy(stored)
    conditional = any("condition" in b for b in policy["bindings"])
    policy["version"] = 3 if conditional else 1
    if conditional and version < 3:
        policy = {"version": 1, "bindings": [_without_condition(b) for b in policy["bindings"]]}
    return prune({**policy, "etag": etag})


def requested_policy(request: Mapping[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    """A setIamPolicy request's version and bindings, or 400 listing what is wrong with them."""
    policy = request.get("policy", {})
    bindings: list[dict[str, Any]] = policy.get("bindings", [])
    problems = check_bindings(bindings)
    version = int(policy.get("version", 0) or 0)
    if version not in (0, 1, 3):
        problems.append(Violation("policy.version", f"policy.version: invalid policy version {version}"))
    elif version < 3 and any("condition" in b for b in bindings):
        text = "policy.version: conditional role bindings require policy version 3"
        problems.append(Violation("policy.version", text))
    if problems:
        raise invalid(problems)
    return version, bindings


def replaced_policy(
    stored: Mapping[str, Any],
    stored_etag: str,
    etag: str | None,
    version: int,
    bindings: list[dict[str, Any]],
) -> dict[str, Any]:
    """setIamPolicy (after ``requested_policy``): the whole policy that replaces ``stored``, refused when
    the etag is stale or when conditions would be overwritten by a policy older than version 3."""
    if etag and not same_bytes(etag, stored_etag):
        raise ApiError(
            409,
            "ABORTED",
            "There were concurrent policy changes. Please retry the whole read-modify-write "
            "with exponential backoff.",
        )
    if version < 3 and any("condition" in b for b in stored["bindings"]):
        raise invalid(
            [
                Violation(
                    "policy.version",
                    "policy.version: the policy has conditional role bindings; "
                    "set it with version 3 (read it with options.requestedPolicyVersion=3)",
                )
            ]
        )
    return {"version": version or 1, "bindings": copy.deepcopy(bindings)}
