"""Projects and regions: how a path's project (ID or number) and region address a stored object.

In Cloud Run a name is unique per project and region; the store keys every object by its scope,
``<project number>/<region>``, and answers name the project by its number.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

# Cloud Run labels every service, configuration, route and revision with its region
# (https://cloud.google.com/run/docs/reference/rest/v1/ObjectMeta: "cloud.googleapis.com/location");
# gcloud's REGION column reads it.
LOCATION_LABEL = "cloud.googleapis.com/location"


DEFAULT_REGION = "us-central1"


LOCATIONS = {
    "us-central1": "Iowa",
    "us-east1": "South Carolina",
    "europe-west1": "Belgium",
    "europe-west4": "Netherlands",
    "asia-northeast1": "Tokyo",
}


ANY_REGION = "-"  # gcloud lists every region of a project at ``locations/-``


_IDS: dict[str, str] = {}  # project number -> ID, for every project named by its ID so far


def project_key(ns: str) -> str:
    """A project as the store keys it: its number. Cloud Run paths name a project by ID or number alike
    (run.v1.json: "namespace ID or number"), and answers carry the number."""
    if ns.isdigit():
        return ns
    number = project_number(ns)
    _IDS[number] = ns
    return number


def project_id(project: str) -> str:
    """A project's ID (Cloud Monitoring labels series with it), given its ID or its number; a number
    never named by its ID here stays a number."""
    return _IDS.get(project, project) if project.isdigit() else project


def scope(ns: str, region: str) -> str:
    """Where a service, revision or job lives: a project AND a region (``<number>/<region>``).

    In Cloud Run a name is unique per project and region: ``web`` in europe-west1 and ``web`` in
    us-central1 are two services, each with its own revisions, URLs and IAM policy.
    """
    return f"{project_key(ns)}/{region}"


def scope_project(key: str) -> str:
    """The project number of a scope (what ``metadata.namespace`` shows)."""
    return key.split("/", 1)[0]


def in_scope(namespace: str, key: str) -> bool:
    """Does an object's scope fall under ``key`` (a region, or ``-``: every region of the project)?"""
    project, _, region = key.partition("/")
    return namespace == key or (region == ANY_REGION and scope_project(namespace) == project)


def same_project(given: str, ns: str) -> bool:
    """Does ``metadata.namespace`` (ID or number) name the project of the scope or URL ``ns``?"""
    return project_key(given) == project_key(scope_project(ns))


def locations(project: str) -> dict[str, Any]:
    """locations.list: a handful of regions (any region is accepted elsewhere)."""
    return {
        "locations": [
            {
                "name": f"projects/{project}/locations/{region}",
                "locationId": region,
                "displayName": display,
                "labels": {"cloud.googleapis.com/region": region},
            }
            for region, display in LOCATIONS.items()
        ]
    }


@functools.cache
def project_number(project: str) -> str:
    """A stable 12-digit project number for a project ID (Google assigns one to every project);
    cached, as every Monitoring query asks it again."""
    return str(10**11 + int(hashlib.sha256(project.encode()).hexdigest(), 16) % (9 * 10**11))


def project_resource(project: str) -> dict[str, Any]:
    """Cloud Resource Manager v1 ``projects.get``: every project exists and is active.

    https://cloud.google.com/resource-manager/reference/rest/v1/projects/get. ``gcloud run services
    replace`` looks the project number up here when the file names a ``metadata.namespace``.
    """
    return {
        "projectNumber": project_number(project),
        "projectId": project,
        "lifecycleState": "ACTIVE",
        "name": project,
        "createTime": "2024-01-01T00:00:00.000Z",
    }
