"""Every error the action raises, under one base: catch ``DeployerError`` for "the action said why".

Each message is what the user reads. The modules that raise these re-export them under their old
names (``client.ApiError``, ``rollout.RolloutFailed``...); a module that only needs an exception
imports it from here, never from the module that raises it.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ApiError",
    "AuthError",
    "BucketError",
    "Cancelled",
    "Conflict",
    "ContainerError",
    "DeployerError",
    "ForeignChange",
    "JobFailed",
    "MonitoringError",
    "NotFound",
    "RevisionFailed",
    "RolloutFailed",
    "RolloutTakenOver",
    "TemplateError",
    "TrafficError",
    "TransportError",
    "UsageError",
]


class DeployerError(Exception):
    """The base of every error of the action: its message says what went wrong and what to do."""


# --- the Cloud Run API (deployer.client) -----------------------------------------------------------


class ApiError(DeployerError):
    """An error answer from the API (or a transport failure that outlived the retries)."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        field_violations: list[dict[str, Any]] | None = None,
        *,
        method: str = "",
        url: str = "",
    ) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        self.field_violations = list(field_violations or [])
        self.method = method
        self.url = url
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.status} {self.reason}: {self.message}"
        fields = "; ".join(
            f"field {v.get('field', '?')}: {v.get('description', '')}".rstrip(": ")
            for v in self.field_violations
        )
        return f"{text} ({fields})" if fields else text


class NotFound(ApiError):
    """404: the object does not exist."""


class Conflict(ApiError):
    """409: ALREADY_EXISTS, or ABORTED because our resourceVersion/etag was stale."""


class TransportError(ApiError):
    """No HTTP answer (connection failure or timeout) after all retries; status is 0."""


class Cancelled(DeployerError):
    """The caller's should_stop hook asked us to stop (deployer.retry)."""


class AuthError(DeployerError):
    """Credentials are missing or cannot do what the action needs (deployer.auth)."""


class MonitoringError(DeployerError):
    """A Cloud Monitoring query failed for good (after retries); the message says why."""


# --- the rollout (deployer.rollout, deployer.jobs) --------------------------------------------------


class RolloutFailed(DeployerError):
    """A reason to stop: the message is what the user reads."""


class RevisionFailed(RolloutFailed):
    """The candidate revision will never become ready (bad image, crash at start-up...)."""


class ForeignChange(RolloutFailed):
    """Someone else changed the traffic this run last wrote: their change wins, the run stops."""


class RolloutTakenOver(RolloutFailed):
    """Our rollout is no longer ours (another run, job or operator replaced or removed its record)."""


class JobFailed(RolloutFailed):
    """A job could not be written, or its execution did not succeed; the message says why."""


# --- what the inputs ask cannot be done (ValueError: parsers catch it as a bad value) ---------------


class TemplateError(DeployerError, ValueError):
    """The template cannot take the inputs (no such container, no ingress container)."""


class TrafficError(DeployerError, ValueError):
    """A traffic block Cloud Run would refuse."""


class ContainerError(DeployerError, ValueError):
    """The job's containers do not say which one the inputs apply to."""


class BucketError(DeployerError, ValueError):
    """A Distribution whose bucket options are missing or not as documented."""


class UsageError(DeployerError, ValueError):
    """Bad arguments of a command-line tool (``deployer.httpcheck``): exit 2 with the message."""
