"""Errors the HTTP layer turns into Google's error body, and the checks every replace shares."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cloudrun_emulator.schema import Violation


class ApiError(Exception):
    """An error the HTTP layer turns into Google's error body."""

    def __init__(self, code: int, status: str, message: str, violations: Iterable[Violation] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.violations = list(violations)


def invalid(violations: list[Violation]) -> ApiError:
    """400 INVALID_ARGUMENT listing every violation, the message naming them all."""
    return ApiError(400, "INVALID_ARGUMENT", "; ".join(v.description for v in violations), violations)


def url_name_mismatch(meta: dict[str, Any], name: str) -> list[Violation]:
    """A replace whose ``metadata.name`` is not the one in the URL (services and jobs alike)."""
    if meta.get("name") and meta["name"] != name:
        text = f"metadata.name: '{meta['name']}' does not match the name in the URL '{name}'"
        return [Violation("metadata.name", text)]
    return []


def check_version(meta: dict[str, Any], name: str, current_version: str) -> None:
    """Optimistic concurrency: a replace naming a stale ``resourceVersion`` is 409 ABORTED."""
    version = meta.get("resourceVersion")
    if version and version != current_version:
        raise ApiError(
            409,
            "ABORTED",
            f"Conflict for resource '{name}': version '{version}' was specified but current "
            f"version is '{current_version}'.",
        )


def not_found(kind: str, name: str) -> ApiError:
    """404 in Cloud Run's wording."""
    return ApiError(404, "NOT_FOUND", f"{kind} '{name}' not found.")
