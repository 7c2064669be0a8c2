"""Secret Manager references as Cloud Run takes them: a secret of the service's own project by name,
one of another project through an alias defined in the ``run.googleapis.com/secrets`` annotation.

run.v1.json (``SecretKeySelector.name``): "If the secret is in another project, you must define an
alias ... The alias definitions must be set on the run.googleapis.com/secrets annotation", each as
``alias:projects/NUMBER/secrets/NAME``, comma-separated. gcloud does the same
(``command_lib/run/secrets_mapping.py``): it reuses an alias that already names the secret, adds one
otherwise, and drops the aliases no container uses any more (``PruneAnnotation``). Pure.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from deployer.settings import SecretRef

ANNOTATION = "run.googleapis.com/secrets"
# gcloud's ReachableSecret: a secret of another project is projects/NUMBER/secrets/NAME.
PROJECT_NUMBER = re.compile(r"[0-9]{1,19}", re.ASCII)


def local(secrets: Mapping[str, SecretRef], project: str | None) -> tuple[dict[str, SecretRef], list[str]]:
    """The references with the run's own project dropped (a same-project full path is just the name),
    and a message per reference Cloud Run cannot take: another project named by ID, not number."""
    out: dict[str, SecretRef] = {}
    problems = []
    for env, ref in secrets.items():
        if ref.project is None or ref.project == project:
            out[env] = SecretRef(ref.secret, ref.version)
            continue
        if not PROJECT_NUMBER.fullmatch(ref.project):
            own = f" {project!r}" if project else " (project_id is not set)"
            problems.append(
                f"{env}: the secret is in project {ref.project!r}, not this run's project{own}; Cloud Run "
                "reaches a secret of another project by project number only: use "
                f"projects/PROJECT_NUMBER/secrets/{ref.secret}:{ref.version} (the number: gcloud projects "
                f"describe {ref.project} --format 'value(projectNumber)')"
            )
            continue
        out[env] = ref
    return out, problems


def parse_annotation(text: str | None) -> dict[str, str]:
    """``alias:projects/N/secrets/S,...`` -> {alias: path}; entries we cannot read are kept as they are."""
    aliases: dict[str, str] = {}
    for item in (text or "").split(","):
        alias, sep, path = item.strip().partition(":")
        if sep and alias:
            aliases[alias] = path
    return aliases


def format_annotation(aliases: Mapping[str, str]) -> str:
    return ",".join(f"{alias}:{path}" for alias, path in sorted(aliases.items()))


def path(ref: SecretRef) -> str:
    return f"projects/{ref.project}/secrets/{ref.secret}"


def key_ref_name(ref: SecretRef, aliases: dict[str, str]) -> str:
    """``secretKeyRef.name`` for ``ref``: its name in the own project, else an alias (an existing one
    for the same secret, or a new one added to ``aliases``). New aliases are derived from the path,
    not random as gcloud's, so the same inputs make the same template (and reuse the revision)."""
    if ref.project is None:
        return ref.secret
    wanted = path(ref)
    for alias, existing in aliases.items():
        if existing == wanted:
            return alias
    alias = f"{ref.secret[:5]}-{hashlib.sha256(wanted.encode()).hexdigest()[:12]}"
    aliases[alias] = wanted
    return alias


def env_entry(name: str, ref: SecretRef, aliases: dict[str, str]) -> dict[str, Any]:
    """The container env entry of ``name`` taken from the secret ``ref``."""
    selector = {"name": key_ref_name(ref, aliases), "key": ref.version}
    return {"name": name, "valueFrom": {"secretKeyRef": selector}}


def in_use(spec: Mapping[str, Any]) -> set[str]:
    """Secret names a revision (or task) spec uses: env ``secretKeyRef`` and secret volumes."""
    names = {
        ((e.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name")
        for c in spec.get("containers") or []
        for e in c.get("env") or []
    }
    names |= {(v.get("secret") or {}).get("secretName") for v in spec.get("volumes") or []}
    return {n for n in names if n}


def set_annotation(meta: dict[str, Any], aliases: Mapping[str, str], used: Iterable[str]) -> None:
    """Write the aliases still used into ``meta``'s annotations (and remove the annotation if none is)."""
    kept = {alias: p for alias, p in aliases.items() if alias in set(used)}
    annotations = meta.setdefault("annotations", {})
    if kept:
        annotations[ANNOTATION] = format_annotation(kept)
    else:
        annotations.pop(ANNOTATION, None)
        if not annotations:
            del meta["annotations"]
