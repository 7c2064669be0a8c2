"""Secret Manager references in revision and execution templates, as run.v1.json documents them.

``SecretKeySelector.name`` / ``SecretVolumeSource.secretName``: "By default, the secret is assumed
to be in the same project. If the secret is in another project, you must define an alias. An alias
definition has the form: :projects//secrets/. If multiple alias definitions are needed, they must be
separated by commas. The alias definitions must be set on the run.googleapis.com/secrets annotation."
(the placeholders are lost in the discovery document). The project is a number, as gcloud writes
and reads it (``command_lib/run/secrets_mapping.py``, ``ReachableSecret``: ``alias:projects/N/secrets/S``;
a path with a project ID in the annotation makes gcloud's ``ParseAnnotation`` fail).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

ANNOTATION = "run.googleapis.com/secrets"
SECRET_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
ALIAS_TARGET = re.compile(r"^projects/[0-9]{1,19}/secrets/[A-Za-z0-9_-]{1,255}$")
FORM = "ALIAS:projects/PROJECT_NUMBER/secrets/SECRET"


def aliases(annotations: Mapping[str, str]) -> dict[str, str]:
    """The alias definitions of a template's annotations: {alias: projects/N/secrets/S}."""
    found = {}
    for item in (annotations.get(ANNOTATION) or "").split(","):
        alias, sep, path = item.strip().partition(":")
        if sep:
            found[alias] = path
    return found


def check(
    annotations: Mapping[str, str], spec: Mapping[str, Any], meta_where: str, where: str
) -> list[tuple[str, str]]:
    """(field, message) per problem: the annotation's alias definitions, and every secret named in
    ``spec`` (a revision or task spec) is a plain name (an alias or a secret of the same project)."""
    problems = []
    text = annotations.get(ANNOTATION)
    field = f"{meta_where}.annotations[{ANNOTATION}]"
    for item in [] if text is None else text.split(","):
        alias, sep, path = item.strip().partition(":")
        if not (sep and SECRET_NAME.match(alias) and ALIAS_TARGET.match(path)):
            problems.append((field, f"{field}: '{item}' is not an alias definition {FORM}"))
    named = [
        (f"{where}.containers[{i}].env[{j}].valueFrom.secretKeyRef.name", ref.get("name"))
        for i, container in enumerate(spec.get("containers") or [])
        for j, var in enumerate(container.get("env") or [])
        if (ref := (var.get("valueFrom") or {}).get("secretKeyRef") or {})
    ]
    named += [
        (f"{where}.volumes[{i}].secret.secretName", volume["secret"].get("secretName"))
        for i, volume in enumerate(spec.get("volumes") or [])
        if volume.get("secret")
    ]
    for place, name in named:
        if not SECRET_NAME.match(name or ""):
            text = (
                f"{place}: '{name}' is not a secret name; a secret of another project needs an alias, "
                f"defined on the {ANNOTATION} annotation as {FORM}, and the alias here"
            )
            problems.append((place, text))
    return problems


def resolve(name: str, annotations: Mapping[str, str]) -> str:
    """What a secret name stands for: the aliased path, or the name (a secret of the same project)."""
    return aliases(annotations).get(name, name)
