"""Status conditions as the emulator stores them (services, revisions, jobs and executions alike)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cloudrun_emulator.wire import now_iso


@dataclass
class StoredCondition:
    """One status condition as the emulator stores it; lastTransitionTime only moves when the status does."""

    type: str
    status: str = "Unknown"
    reason: str | None = None
    message: str | None = None
    last_transition: str = field(default_factory=now_iso)

    def set(self, status: str, reason: str | None = None, message: str | None = None) -> bool:
        """Update in place; True when anything visible changed."""
        if (status, reason, message) == (self.status, self.reason, self.message):
            return False
        if status != self.status:
            self.last_transition = now_iso()
        self.status, self.reason, self.message = status, reason, message
        return True

    def to_json(self) -> dict[str, Any]:
        """Wire form."""
        return {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": self.last_transition,
        }
