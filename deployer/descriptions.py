"""The inputs' descriptions and sections, for the command line's ``--help``.

The action's inputs are described in action.yml, which is not part of the package (the image and a
``pip install`` carry only ``deployer/``); this is the same text, kept equal to action.yml by
tests/test_cli.py. The flags themselves come from ``deployer.inputs.DEFAULTS``: an input missing here
still gets its flag and default, under "Other inputs".
"""

from __future__ import annotations

# name -> (section, description), in the order of action.yml.
HELP: dict[str, tuple[str, str]] = {
    "service": (
        "Target",
        "Cloud Run service name.",
    ),
    "region": (
        "Target",
        "Cloud Run region.",
    ),
    "project_id": (
        "Target",
        "Google Cloud project ID. Default: the project of the credentials, or GOOGLE_CLOUD_PROJECT.",
    ),
    "mode": (
        "Target",
        "deploy (roll out `image`), promote (finish a paused or interrupted rollout: send 100 % to "
        "its revision) or rollback (send 100 % to `rollback_to` or the previous stable revision).",
    ),
    "image": (
        "Target",
        "Container image reference to deploy (required in mode deploy). Prefer a digest.",
    ),
    "tag": (
        "Target",
        "Traffic tag given to the new revision; its tag URL is smoke-checked.",
    ),
    "suffix": (
        "Target",
        "Revision name suffix: the revision is named `<service>-<suffix>`. Default: derived from "
        "the commit SHA and the run attempt.",
    ),
    "steps": (
        "Rollout",
        "Ascending traffic percentages for the new revision, comma separated. Ending below 100 "
        "pauses there (result `paused`; finish later with mode promote). `0` deploys the tagged "
        "revision with no traffic only.",
    ),
    "step_interval": (
        "Rollout",
        "Bake time at each step before the next (durations such as 90, 90s, 5m, 1h30m).",
    ),
    "wait_timeout": (
        "Rollout",
        "How long one change may take to become Ready (duration).",
    ),
    "smoke_path": (
        "Smoke check",
        "Path requested on the tag URL before any traffic moves, and again at each step.",
    ),
    "smoke_status": (
        "Smoke check",
        "Accepted smoke-check status codes: a list and ranges, e.g. `200,204,300-399`.",
    ),
    "smoke_body": (
        "Smoke check",
        "Regular expression the smoke-check response body must match. Default: not checked.",
    ),
    "smoke_timeout": (
        "Smoke check",
        "How long the smoke check keeps retrying before it fails (duration).",
    ),
    "smoke_auth": (
        "Smoke check",
        "auto (send an ID token when the service answers 401/403), id_token (always send one) or none.",
    ),
    "dry_run": (
        "Rollout",
        "Validate everything (server-side dryRun) and print the plan; change nothing.",
    ),
    "env_vars": (
        "Revision settings",
        "Environment variables of the revision, as `KEY=VALUE` lines or a YAML mapping.",
    ),
    "env_vars_update_strategy": (
        "Revision settings",
        "merge (with the service's current variables) or overwrite.",
    ),
    "secrets": (
        "Revision settings",
        "Secret Manager secrets exposed as environment variables, as `ENV=secret-name:version` "
        "lines or a YAML mapping.",
    ),
    "secrets_update_strategy": (
        "Revision settings",
        "merge (with the service's current secrets) or overwrite.",
    ),
    "labels": (
        "Revision settings",
        "Labels as `KEY=VALUE` lines; `managed-by=github-actions` and `commit-sha` are added unless"
        " `skip_default_labels` is true.",
    ),
    "skip_default_labels": (
        "Revision settings",
        "Do not add the default labels `managed-by` and `commit-sha`.",
    ),
    "cpu": (
        "Revision settings",
        "CPU limit of the revision, e.g. 1 or 2000m. Default: keep what the service has.",
    ),
    "memory": (
        "Revision settings",
        "Memory limit of the revision, e.g. 512Mi. Default: keep what the service has.",
    ),
    "concurrency": (
        "Revision settings",
        "Maximum concurrent requests per instance. Default: keep what the service has.",
    ),
    "min_instances": (
        "Revision settings",
        "Minimum number of instances. Default: keep what the service has.",
    ),
    "max_instances": (
        "Revision settings",
        "Maximum number of instances. Default: keep what the service has.",
    ),
    "port": (
        "Revision settings",
        "Container port that receives requests. Default: keep what the service has.",
    ),
    "request_timeout": (
        "Revision settings",
        "Request timeout (duration, at most 60m). Default: keep what the service has.",
    ),
    "service_account": (
        "Revision settings",
        "Runtime service account email of the revision. Default: keep what the service has.",
    ),
    "ingress": (
        "Revision settings",
        "Service ingress: all, internal or internal-and-cloud-load-balancing. Default: keep what "
        "the service has.",
    ),
    "cpu_throttling": (
        "Revision settings",
        "true: CPU only allocated during requests; false: always allocated. Default: keep what the "
        "service has.",
    ),
    "execution_environment": (
        "Revision settings",
        "gen1 or gen2. Default: keep what the service has.",
    ),
    "vpc_connector": (
        "Revision settings",
        "Serverless VPC Access connector name or path. Default: keep what the service has.",
    ),
    "vpc_egress": (
        "Revision settings",
        "all-traffic or private-ranges-only. Default: keep what the service has.",
    ),
    "allow_unauthenticated": (
        "Revision settings",
        "true adds `allUsers` as `roles/run.invoker`, false removes it. Default (empty): IAM is not touched.",
    ),
    "metadata": (
        "Endpoints and GitHub",
        "Path (in the workspace) to a Knative Service YAML used as the base; the other inputs are "
        "applied on top of it.",
    ),
    "rollback_to": (
        "Rollout",
        "For mode rollback, the revision to send 100 % to. Default: the previous stable revision.",
    ),
    "api_endpoint": (
        "Endpoints and GitHub",
        "Base URL replacing https://{region}-run.googleapis.com and https://run.googleapis.com (a "
        "Private Service Connect endpoint, or a local emulator).",
    ),
    "monitoring_endpoint": (
        "Endpoints and GitHub",
        "Base URL replacing https://monitoring.googleapis.com for Cloud Monitoring.",
    ),
    "github_token": (
        "Endpoints and GitHub",
        "GitHub token (e.g. `secrets.GITHUB_TOKEN`). Enables a GitHub Deployment with statuses and "
        "a pull-request comment with the tag URL. The runner does not pass GITHUB_TOKEN to "
        "container actions, so give it here.",
    ),
    "environment": (
        "Endpoints and GitHub",
        "GitHub deployment environment name.",
    ),
    "takeover": (
        "Rollout",
        "Take over another run's unfinished rollout of this service (undo it and continue) instead "
        "of failing.",
    ),
    "max_error_rate": (
        "Canary analysis",
        "Canary analysis: maximum percentage of 5xx responses of the new revision at each step "
        "(Cloud Monitoring). Default: not checked.",
    ),
    "max_latency_p99": (
        "Canary analysis",
        "Canary analysis: maximum p99 latency in milliseconds at each step. Default: not checked.",
    ),
    "max_latency_p95": (
        "Canary analysis",
        "Canary analysis: maximum p95 latency in milliseconds at each step. Default: not checked.",
    ),
    "min_requests": (
        "Canary analysis",
        "Canary analysis: requests the new revision must have served in a step for its metrics to count.",
    ),
    "on_inconclusive": (
        "Canary analysis",
        "What to do when a step has fewer than `min_requests` requests: pass, fail or extend (bake "
        "another interval).",
    ),
    "check_command": (
        "Canary analysis",
        "Command run at each step (in the workspace); a non-zero exit fails the step. Default: none.",
    ),
    "check_webhook": (
        "Canary analysis",
        "URL POSTed a JSON description of each step; a non-2xx answer fails the step. Default: none.",
    ),
    "failure_threshold": (
        "Canary analysis",
        "Number of failed analyses (at one step) that trigger a rollback.",
    ),
}
