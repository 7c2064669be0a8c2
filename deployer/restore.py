"""What undoing a rollout writes, and whether the rollout is still ours to write to: decided on the
service as it is now, from explicit inputs (the recorded rollout, the revisions that exist and are
ready, what this run has written), so that every rule has its own unit test.

The way back never overwrites what someone else changed since: their traffic, their template, a
takeover all win; only what this run wrote is undone.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from deployer import knative, traffic
from deployer.errors import ForeignChange, RolloutFailed, RolloutTakenOver
from deployer.knative import Obj
from deployer.state import PREVIOUS_STABLE_ANNOTATION, STABLE_ANNOTATION, STATE_ANNOTATION, RolloutState
from deployer.traffic import Traffic

LAST_MODIFIER = "serving.knative.dev/lastModifier"


@dataclass
class Restore:
    """What undoing a rollout writes, decided on the service as it is now."""

    kind: str  # "restored" | "theirs" (their traffic kept, only ours undone) | "nothing" | "taken over"
    body: Obj | None = None
    traffic: Traffic = ()
    message: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Undoing:
    """What this run knows of the rollout it undoes, besides the service: the inputs of the decision."""

    service: str  # the service's name, for the messages
    revision: str = ""  # the candidate this run rolled out ("" : say "its revision")
    adopted: RolloutState | None = None  # a record of another run we finish or undo (promote, rollback)
    promoting: bool = False  # the promote write was sent: it may have landed
    pending: bool = False  # the first write was sent and never confirmed: it may not have landed
    keep_tag: bool = True  # False once the candidate failed: its tag keeps the routes unready


def restore_plan(
    svc: Obj,
    state: RolloutState,
    undoing: Undoing,
    revisions: Callable[[], Mapping[str, bool]],
    *,
    named: bool,
) -> Restore:
    """Decide the undo of ``state``'s rollout on ``svc`` as it is now; ``revisions()`` (read only when
    needed) the service's revisions, each with whether it is Ready; ``named``: write the template from
    before the run under its revision name (False after Cloud Run refused that name).

    - Our record is gone or another's: the first write never landed (nothing to do), the promote
      landed (undo it too), or someone else owns the service now (leave it).
    - The traffic is not what we last wrote: someone else changed it. Keep their traffic; remove
      our record and put the template back (when it is still ours and no entry follows latest).
    - Otherwise: traffic exactly as before the run (revisions deleted since: their share to the
      remaining ones), the template as before, our tag left on a healthy candidate if free.
    """
    recorded = RolloutState.from_service(svc)
    promote_landed = False
    if recorded is not None:
        if not (recorded.same_owner(state) or recorded == undoing.adopted):
            return Restore("taken over", message=taken_over_message(undoing.service, recorded))
        expected = recorded.written()
    elif undoing.promoting and knative.annotation(svc, STABLE_ANNOTATION) == state.candidate:
        promote_landed = True
        expected = traffic.promoted(state.base_traffic, state.candidate, state.tag)
    elif undoing.pending:
        return Restore("nothing", message="the first write never reached the service: nothing to undo")
    else:
        return Restore("taken over", message=taken_over_message(undoing.service, None))
    annotations: dict[str, str | None] = {STATE_ANNOTATION: None}
    if promote_landed:
        annotations[STABLE_ANNOTATION] = state.stable or None
        annotations[PREVIOUS_STABLE_ANNOTATION] = state.previous_stable or None
    now = knative.spec_traffic(svc)
    if cleaned := traffic.cleaned_tags(expected, now, {state.tag}):  # Cloud Run's tag-quota cleanup
        state, expected = forget_tags(state, cleaned), now
    if not traffic.same(now, expected):
        return _keep_theirs(svc, state, undoing, expected, annotations, named)
    ready = revisions()
    made = {state.candidate, state.baseline} - {""}  # the template is ours if it made either
    template_back = state.template is not None and knative.template_name(svc) in made
    latest_again = None  # the revision our template write makes the latest again, if any
    if template_back and named and state.template is not None:
        latest_again = (state.template.get("metadata") or {}).get("name")
    before, notes = restored_latest(state, latest_again)
    gone = {t.revision for t in before if t.revision and t.revision not in ready}
    if gone:
        before = traffic.without(before, gone)
        notes.append(
            f"Revision(s) {', '.join(sorted(gone))} no longer exist: their share went to the remaining "
            f"revisions from before the run ({', '.join(t.describe() for t in before)})."
        )
    keep = state.keep_tag and undoing.keep_tag and ready.get(state.candidate, False)
    restored = traffic.restore(before, state.candidate, state.tag, keep_tag=keep)
    body = knative.with_traffic(svc, restored, annotations)
    knative.undo_metadata(body, state.metadata)
    what = "traffic restored to where it was before the run"
    if template_back and state.template is not None:
        body["spec"]["template"] = template_as_written(state.template, named)
        what = "traffic and template restored to where they were before the run"
    elif state.template is not None:
        notes.append(
            f"The template of {undoing.service} was changed by someone else since this run deployed "
            f"{state.candidate}: it is kept."
        )
    return Restore("restored", body, restored, what, notes)


def _keep_theirs(
    svc: Obj,
    state: RolloutState,
    undoing: Undoing,
    expected: Traffic,
    annotations: dict[str, str | None],
    named: bool,
) -> Restore:
    """Someone else changed the traffic: keep it; remove our record, and our template while it is
    still the service's and no entry follows the latest revision (it would move their traffic)."""
    now = knative.spec_traffic(svc)
    body = knative.with_traffic(svc, now, annotations)
    knative.undo_metadata(body, state.metadata)
    ours = knative.template_name(svc) == state.candidate and not any(t.latest for t in now)
    if ours and state.template is not None:
        body["spec"]["template"] = template_as_written(state.template, named)
    message = (
        f"{change_message(svc, expected, undoing.service, undoing.revision)} Their traffic is kept; only "
        "this run's record"
        + (" and template were" if ours and state.template is not None else " was")
        + " removed."
    )
    return Restore("theirs", body, now, message)


def still_ours(
    svc: Obj,
    state: RolloutState,
    adopted: RolloutState | None,
    service: str,
    revision: str,
    *,
    tag_write: bool = False,
) -> tuple[RolloutState, set[str]]:
    """Before every write: the rollout recorded on ``svc`` is still ``state``'s (or the ``adopted``
    record's) and its traffic is what we last wrote. Returns ``state`` without the tags Cloud Run's
    tag-quota cleanup deleted (not a person's change), and those tags; RolloutTakenOver or
    ForeignChange otherwise.

    Cloud Run cleans tags up only "for the service for which a new tag is being created", as part
    of that write: so only in the answer of our own write that created a tag (``tag_write``) can
    missing 0 % tags be its cleanup. Anywhere else they are a person's change (``--remove-tags``)."""
    recorded = RolloutState.from_service(svc)
    if recorded is None or not (recorded.same_owner(state) or recorded == adopted):
        raise RolloutTakenOver(taken_over_message(service, recorded))
    # What we last wrote, as we know it: the record on the service still names the tags a cleanup
    # deleted until our next write rewrites it (``state`` forgot them).
    written, now = state.written(), knative.spec_traffic(svc)
    cleaned = traffic.removed_tags(written, now) if tag_write else set()
    if mine := cleaned & state.own_tags():  # the quota took a tag this run needs (a tag URL to check or load)
        raise RolloutFailed(own_tags_cleaned_message(service, mine))
    if cleaned:
        return forget_tags(state, cleaned), cleaned
    if not traffic.same(now, written):
        raise ForeignChange(change_message(svc, written, service, revision))
    return state, set()


def restored_latest(state: RolloutState, latest_again: str | None) -> tuple[Traffic, list[str]]:
    """The traffic a rollback restores, judged by where requests go: a ``latestRevision`` entry sends
    requests to the latest *ready* revision. ``latest_again`` is the revision the rollback's template
    write makes the latest one again (the named template from before the run; None when the
    template is not written back). Only when that is the revision the entry reached before the run
    (``state.latest``) does the entry stay ``latestRevision``. Otherwise it is pinned there: someone
    changed the template since (Cloud Run made a revision from it: of the rolled-back release, say),
    or the latest created revision had failed before the run, so writing its template back leaves the
    newest ready revision -- the rolled-back candidate -- as the latest ready one."""
    before = state.before_traffic
    if latest_again == state.latest or not state.latest or not any(t.latest for t in before):
        return before, []
    pinned = traffic.pin_latest(before, state.latest)
    note = (
        f"The latest revision after the rollback would not be {state.latest}, where the traffic that "
        f"followed the latest revision went before the run: that traffic is pinned to {state.latest}."
    )
    return pinned, [note]


def forget_tags(state: RolloutState, tags: set[str]) -> RolloutState:
    """The rollout without the 0 % tags Cloud Run's tag-quota cleanup deleted (traffic.cleaned_tags):
    written back, they would be new tags and make the cleanup delete others."""
    before = state.before and traffic.to_spec(traffic.without_tags(state.before_traffic, tags))
    return replace(state, base=traffic.to_spec(traffic.without_tags(state.base_traffic, tags)), before=before)


def named_template(svc: Obj) -> Obj | None:
    """The service's template, named after the revision it made (Knative leaves the name empty when
    the server chose it): written back, it makes that revision the latest again instead of a new one."""
    template = (svc.get("spec") or {}).get("template")
    if template is None:
        return None
    named = copy.deepcopy(template)
    latest = (svc.get("status") or {}).get("latestCreatedRevisionName")
    if not knative.template_name(svc) and latest and knative.is_fresh(svc, knative.generation(svc)):
        named.setdefault("metadata", {})["name"] = latest
    return named


def template_as_written(template: Obj, named: bool) -> Obj:
    """The recorded template to write back: under its revision name, or (``named`` False) unnamed, so
    that Cloud Run makes a new revision with the settings from before the run."""
    out = copy.deepcopy(template)
    if not named:
        out.get("metadata", {}).pop("name", None)
    return out


def taken_over_message(service: str, recorded: RolloutState | None) -> str:
    who = f"another run ({recorded.owner()})" if recorded else "another run or an operator"
    return f"{who} took over service {service}; this run leaves it as it is"


def change_message(svc: Obj, expected: Traffic, service: str, revision: str) -> str:
    who = knative.annotation(svc, LAST_MODIFIER) or "someone else"
    had = ", ".join(t.describe() for t in expected)
    now = ", ".join(t.describe() for t in knative.spec_traffic(svc))
    return (
        f"the traffic of service {service} was changed by {who} while this run was rolling out "
        f"{revision or 'its revision'}: this run had written [{had}], the service now has [{now}]."
    )


def cleanup_message(service: str, tags: set[str]) -> str:
    return (
        f"Cloud Run's tag cleanup removed the tag(s) {', '.join(sorted(tags))} of {service} (the project "
        "reached its revision-tag quota, 2,000 per region; tags without a traffic percentage are deleted "
        "oldest first). Not a person's change: the rollout carries on without them."
    )


def own_tags_cleaned_message(service: str, tags: set[str]) -> str:
    return (
        f"Cloud Run's tag cleanup removed this run's own tag(s) {', '.join(sorted(tags))} of {service}: the "
        "project reached its revision-tag quota (2,000 per region; tags without a traffic percentage are "
        "deleted oldest first). Not a person's change. Remove tags no longer needed (gcloud run services "
        "update-traffic SERVICE --remove-tags TAG, e.g. closed pull requests' previews) and run again."
    )


def join_reasons(reason: str | None, more: str) -> str:
    """The run's reason followed by what the way back found, each sentence once: the way back often
    restates the reason (the operator's change that stopped the run, a takeover) and adds to it."""
    if not reason or more.startswith(reason):
        return more
    if more in reason:
        return reason
    return f"{reason}; {more}"


def is_public(policy: Obj) -> bool:
    """Whether an IAM policy lets ``allUsers`` invoke the service."""
    return any(
        b.get("role") == "roles/run.invoker" and "allUsers" in (b.get("members") or [])
        for b in policy.get("bindings") or []
    )


def with_public(policy: Obj, allow: bool) -> Obj | None:
    """``policy`` with ``allUsers`` added as invoker (or removed); None when it already is so."""
    out = copy.deepcopy(policy)
    bindings: list[Obj] = out.setdefault("bindings", [])
    invoker = next((b for b in bindings if b.get("role") == "roles/run.invoker"), None)
    members = set((invoker or {}).get("members", []))
    if ("allUsers" in members) == allow:
        return None
    if invoker is None:
        invoker = {"role": "roles/run.invoker", "members": []}
        bindings.append(invoker)
    invoker["members"] = sorted(members | {"allUsers"} if allow else members - {"allUsers"})
    if not invoker["members"]:
        bindings.remove(invoker)
    return out


def access_to_write(found: Obj, allow: bool, *, forward: bool) -> Obj | None:
    """The access policy to write to allow (or stop) unauthenticated calls; None: nothing to write.

    ``forward``: the rollout's own change. The way back (``forward=False``) puts back the access from
    before the run only while it is still what this run set: someone who changed it since wins."""
    if not forward and is_public(found) != (not allow):
        return None
    return with_public(found, allow)


def undo_landed(kind: str, wrote: bool) -> bool:
    """Whether an undo put our rollout back (ROLLED_BACK); not when the traffic is someone else's
    (``theirs``, ``taken over``) or nothing of ours was there to write."""
    return wrote and kind not in ("theirs", "taken over")


def after_refused_undo(conflict: bool, status: int, reason: str, named: bool) -> tuple[bool, bool]:
    """After the undo's write was refused (``conflict``: a 409): whether to re-read and decide again,
    and whether to write the recorded template by name. A 409 ``ALREADY_EXISTS``: the name belongs
    to a revision whose settings differ, so write it unnamed (Cloud Run makes a new revision with the
    settings from before the run); another 409: someone wrote meanwhile; a 400 may be a revision
    deleted since we listed them."""
    if conflict:
        return True, named and reason != "ALREADY_EXISTS"
    return status == 400, named
