"""Who may take over a service that has an unfinished rollout recorded on it: this run's earlier
attempt may (a re-run), another run only with ``takeover: true``; two runs never fight over one
service. Pure rules, no I/O: the rollout reads the service and acts on the answer."""

from __future__ import annotations

from deployer.settings import RunContext
from deployer.state import RolloutState


def attempt_number(text: str) -> int:
    """A run attempt as a number (0 when unreadable: older than any real attempt)."""
    return int(text) if text.isdigit() else 0


def takeover_refusal(recorded: RolloutState, ctx: RunContext, *, takeover: bool, service: str) -> str:
    """ "" when this run may undo ``recorded`` before deploying (an earlier attempt of this run, or
    ``takeover``); else why not, saying who started it and what the user can do."""
    same_run = bool(recorded.run_id) and recorded.run_id == ctx.run_id
    earlier = same_run and attempt_number(recorded.run_attempt) < attempt_number(ctx.run_attempt)
    if earlier or takeover:
        return ""
    sibling = same_run and recorded.run_attempt == ctx.run_attempt
    who = f"another job of this workflow run ({recorded.owner()})" if sibling else recorded.owner()
    return (
        f"service {service} has an unfinished rollout of {recorded.candidate} at {recorded.step}% "
        f"started by {who}. Finish it with mode 'promote' or "
        "'rollback', or set 'takeover: true' to undo it and deploy."
    )


def takeover_warning(recorded: RolloutState) -> str:
    """What the log says when this run undoes another rollout before deploying."""
    return (
        f"Undoing the unfinished rollout of {recorded.candidate} at {recorded.step}% "
        f"(started by {recorded.owner()}) before deploying."
    )


def rival_refusal(found: RolloutState | None, token: str, service: str, *, dry_run: bool) -> str:
    """ "" when our first write (re-applied after a 409) may land on the service as it is now; else why
    not: another run's rollout started since we read the service, and that run owns it now
    (``takeover`` applies only to what a run finds when it starts). Nothing of ours landed."""
    if found is None or found.token == token or dry_run:
        return ""
    return (
        f"another rollout of service {service} ({found.candidate}, started by {found.owner()}) began "
        "while this run was deploying; this run wrote nothing. Re-run it once that rollout is finished "
        "(or with 'takeover: true' to undo it)."
    )
