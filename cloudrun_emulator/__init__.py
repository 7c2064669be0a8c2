"""A local Cloud Run (Admin API v1) for tests and demos: strict control plane, real local processes.

``Emulator`` runs in-process; ``python -m cloudrun_emulator`` runs it as a server. See
docs/emulator.md.
"""

from cloudrun_emulator.server import Emulator

__all__ = ["Emulator"]
