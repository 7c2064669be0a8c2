"""Every input of the action, declared once: name, default, parser, where its value goes in ``Config``,
its help section and its description.

``deployer.inputs.load`` parses each input with its row, the command line (``deployer.cli``) makes a
flag of each row and shows its description and default in ``--help``; ``action.yml`` (which GitHub
reads) and the README's input tables are checked against these rows by tests
(tests/repo/test_action_metadata.py, tests/repo/test_readme.py). Rules that tie several inputs together are
code in ``deployer.inputs`` and ``deployer.jobs.inputs``, run after every input is parsed.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from deployer.jobs.inputs import MAX_RETRIES, MAX_TASKS, parse_argv, parse_job_name, parse_task_timeout
from deployer.parsers import (
    Invalid,
    choice,
    float_in,
    free_text,
    int_in,
    optional,
    parse_bool,
    parse_duration,
    parse_regex,
    parse_smoke_path,
    parse_status_ranges,
    parse_steps,
    positive_duration,
)
from deployer.parsers_names import (
    check_revision_name,
    parse_container,
    parse_cpu,
    parse_endpoint,
    parse_image,
    parse_memory,
    parse_project,
    parse_region,
    parse_request_timeout,
    parse_service,
    parse_service_account,
    parse_suffix,
    parse_tag,
    parse_vpc_connector,
    parse_webhook,
)
from deployer.parsers_yaml import parse_env_vars, parse_labels, parse_metadata, parse_secrets
from deployer.settings import MAX_LOAD_RPS, JobFailurePolicy, Mode, SmokeAuth, UpdateStrategy

E = TypeVar("E", bound=enum.StrEnum)

# The README's input tables, one per section, and the groups of ``--help``.
TARGET = "Target"
ROLLOUT = "Rollout"
SMOKE = "Smoke check"
REVISION = "Revision settings"
ANALYSIS = "Canary analysis"
JOBS = "Cloud Run jobs"
ENDPOINTS = "Endpoints and GitHub"


@dataclass(frozen=True)
class InputSpec:
    """One input. ``parser`` turns the text (the default when the input is missing or blank) into the
    value, raising ``Invalid`` with a hint; with ``uses`` it is called as ``parser(text, values)`` with
    the values of the inputs it names, parsed first."""

    name: str
    default: str  # as action.yml declares it; "" for none
    parser: Callable[..., Any]
    field: str  # where the value goes in Config, dotted: "analysis.failure_threshold"
    section: str
    description: str  # action.yml's, on one line; --help shows it
    uses: tuple[str, ...] = ()
    fallback: Any = None  # a bad input's value when its parser `uses` others (else: the default's)
    repeat: bool = False  # command line: the flag may be repeated, one KEY=VALUE line each

    def parse(self, text: str, values: Mapping[str, Any]) -> Any:
        if self.uses:
            return self.parser(text, {name: values[name] for name in self.uses})
        return self.parser(text)

    def bad_value(self) -> Any:
        """The value a bad input takes, so the other inputs are still checked against something."""
        return self.fallback if self.uses else self.parser(self.default)


def enum_of(kind: type[E]) -> Callable[[str], E]:
    """One of an enum's values, case-insensitive."""
    word = choice([member.value for member in kind])
    return lambda text: kind(word(text))


def text_or_none(text: str) -> str | None:
    """Free text passed on as is (a command, a token); empty means none."""
    return text or None


_strategy = enum_of(UpdateStrategy)
_ingress = optional(choice(["all", "internal", "internal-and-cloud-load-balancing"]))
_vpc_egress = optional(choice(["all-traffic", "private-ranges-only"], {"all": "all-traffic"}))
_load_rps = optional(float_in(0, MAX_LOAD_RPS, " (requests per second)", exclusive_low=True))


def _on_inconclusive(text: str) -> str:
    return optional(choice(["pass", "fail", "extend"]))(text) or ""


def _service(text: str, used: Mapping[str, Any]) -> str:
    """Required, except in mode job (which touches no service)."""
    return "" if used["mode"] is Mode.JOB and not text else parse_service(text)


def _image(text: str, used: Mapping[str, Any]) -> str | None:
    """Required in mode deploy; in mode job the default of ``job_image``; unused otherwise."""
    mode = used["mode"]
    return parse_image(text) if mode is Mode.DEPLOY or (mode is Mode.JOB and text) else None


def _suffix(text: str, used: Mapping[str, Any]) -> str | None:
    return parse_suffix(text, used["service"] or "x") if text else None


def _rollback_to(text: str, used: Mapping[str, Any]) -> str | None:
    problem = check_revision_name(text, used["service"]) if text and used["service"] else None
    if problem:
        raise Invalid(problem)
    return text or None


def _metadata(text: str, used: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return parse_metadata(text, used["service"]) if text else None


# The order of the command line's --help within each section.
# fmt: off
INPUTS: tuple[InputSpec, ...] = (
    InputSpec("service", "", _service, "service", TARGET,
              "Cloud Run service name (not used in mode job).", uses=("mode",), fallback=""),
    InputSpec("region", "us-central1", parse_region, "region", TARGET,
              "Cloud Run region."),
    InputSpec("project_id", "", optional(parse_project), "project_id", TARGET,
              "Google Cloud project ID. Default: the project of the credentials, or GOOGLE_CLOUD_PROJECT."),
    InputSpec("mode", "deploy", enum_of(Mode), "mode", TARGET,
              "deploy (roll out `image`), promote (finish a paused or interrupted rollout: send 100 % to "
              "its revision), rollback (send 100 % to `rollback_to` or the previous stable revision) or job "
              "(create or update the Cloud Run job `job` and execute it; no service is touched)."),
    InputSpec("image", "", _image, "image", TARGET,
              "Container image reference to deploy (required in mode deploy). Prefer a digest.",
              uses=("mode",)),
    InputSpec("tag", "canary", parse_tag, "tag", TARGET,
              "Traffic tag given to the new revision; its tag URL is smoke-checked."),
    InputSpec("suffix", "", _suffix, "suffix", TARGET,
              "Revision name suffix: the revision is named `<service>-<suffix>`. Default: derived from the "
              "commit SHA and the run attempt.", uses=("service",)),
    InputSpec("steps", "10,50,100", parse_steps, "steps", ROLLOUT,
              "Ascending traffic percentages for the new revision, comma separated. Ending below 100 pauses "
              "there (result `paused`; finish later with mode promote). `0` deploys the tagged revision "
              "with no traffic only."),
    InputSpec("step_interval", "60s", parse_duration, "step_interval", ROLLOUT,
              "Bake time at each step before the next (durations such as 90, 90s, 5m, 1h30m)."),
    InputSpec("wait_timeout", "10m", positive_duration, "wait_timeout", ROLLOUT,
              "How long one change may take to become Ready (duration)."),
    InputSpec("smoke_path", "/", parse_smoke_path, "smoke.path", SMOKE,
              "Path requested on the tag URL before any traffic moves, and again at each step."),
    InputSpec("smoke_status", "200-399", parse_status_ranges, "smoke.statuses", SMOKE,
              "Accepted smoke-check status codes: a list and ranges, e.g. `200,204,300-399`."),
    InputSpec("smoke_body", "", optional(parse_regex), "smoke.body", SMOKE,
              "Regular expression the smoke-check response body must match. Default: not checked."),
    InputSpec("smoke_timeout", "60s", positive_duration, "smoke.timeout", SMOKE,
              "How long the smoke check keeps retrying before it fails (duration)."),
    InputSpec("smoke_auth", "auto", enum_of(SmokeAuth), "smoke.auth", SMOKE,
              "auto (send an ID token when the service answers 401/403), id_token (always send one) or "
              "none."),
    InputSpec("dry_run", "false", parse_bool, "dry_run", ROLLOUT,
              "Validate everything (server-side dryRun) and print the plan; change nothing."),
    InputSpec("env_vars", "", parse_env_vars, "env_vars", REVISION,
              "Environment variables of the revision, as `KEY=VALUE` lines or a YAML mapping.", repeat=True),
    InputSpec("env_vars_update_strategy", "merge", _strategy, "env_vars_update_strategy", REVISION,
              "merge (with the service's current variables) or overwrite."),
    InputSpec("secrets", "", parse_secrets, "secrets", REVISION,
              "Secret Manager secrets exposed as environment variables, as `ENV=secret-name:version` lines "
              "or a YAML mapping. A secret of another project: `ENV=projects/NUMBER/secrets/NAME:VERSION`, "
              "its project by number (an ID is refused); a path in the run's own project is shortened to the "
              "name.", repeat=True),
    InputSpec("secrets_update_strategy", "merge", _strategy, "secrets_update_strategy", REVISION,
              "merge (with the service's current secrets) or overwrite."),
    InputSpec("labels", "", parse_labels, "labels", REVISION,
              "Labels as `KEY=VALUE` lines; `managed-by=github-actions` and `commit-sha` are added unless "
              "`skip_default_labels` is true.", repeat=True),
    InputSpec("skip_default_labels", "false", parse_bool, "skip_default_labels", REVISION,
              "Do not add the default labels `managed-by` and `commit-sha`."),
    InputSpec("cpu", "", optional(parse_cpu), "revision.cpu", REVISION,
              "CPU limit of the revision, e.g. 1 or 2000m. Default: keep what the service has."),
    InputSpec("memory", "", optional(parse_memory), "revision.memory", REVISION,
              "Memory limit of the revision, e.g. 512Mi. Default: keep what the service has."),
    InputSpec("concurrency", "", optional(int_in(1, 1000)), "revision.concurrency", REVISION,
              "Maximum concurrent requests per instance. Default: keep what the service has."),
    InputSpec("min_instances", "", optional(int_in(0)), "revision.min_instances", REVISION,
              "Minimum number of instances. Default: keep what the service has."),
    InputSpec("max_instances", "", optional(int_in(1)), "revision.max_instances", REVISION,
              "Maximum number of instances. Default: keep what the service has."),
    InputSpec("port", "", optional(int_in(1, 65535)), "revision.port", REVISION,
              "Container port that receives requests. Startup and liveness probes that pointed at the old "
              "port move with it (Cloud Run stores a default TCP startup probe on the container port). "
              "Default: keep what the service has."),
    InputSpec("request_timeout", "", optional(parse_request_timeout), "revision.request_timeout", REVISION,
              "Request timeout (duration, at most 60m). Default: keep what the service has."),
    InputSpec("service_account", "", optional(parse_service_account), "revision.service_account", REVISION,
              "Runtime service account email of the revision. Default: keep what the service has."),
    InputSpec("ingress", "",
              _ingress, "revision.ingress", REVISION,
              "Service ingress: all, internal or internal-and-cloud-load-balancing. Default: keep what the "
              "service has."),
    InputSpec("cpu_throttling", "", optional(parse_bool), "revision.cpu_throttling", REVISION,
              "true: CPU only allocated during requests; false: always allocated. Default: keep what the "
              "service has."),
    InputSpec("execution_environment", "",
              optional(choice(["gen1", "gen2"])), "revision.execution_environment", REVISION,
              "gen1 or gen2. Default: keep what the service has."),
    InputSpec("vpc_connector", "", optional(parse_vpc_connector), "revision.vpc_connector", REVISION,
              "Serverless VPC Access connector name or path. Default: keep what the service has."),
    InputSpec("vpc_egress", "",
              _vpc_egress, "revision.vpc_egress", REVISION,
              "all-traffic or private-ranges-only. Default: keep what the service has."),
    InputSpec("allow_unauthenticated", "", optional(parse_bool), "allow_unauthenticated", REVISION,
              "true adds `allUsers` as `roles/run.invoker`, false removes it. Default (empty): IAM is not "
              "touched."),
    InputSpec("metadata", "", _metadata, "metadata", REVISION,
              "Path (in the workspace) to a Knative Service YAML used as the base; the other inputs are "
              "applied on top of it. A `gcloud run services describe` output works: what `--format export` "
              "strips (uid, resourceVersion, generation, status, server annotations) is dropped and the "
              "namespace set to the project.", uses=("service",)),
    InputSpec("rollback_to", "", _rollback_to, "rollback_to", ROLLOUT,
              "For mode rollback, the revision to send 100 % to. Default: the previous stable revision.",
              uses=("service",)),
    InputSpec("api_endpoint", "", optional(parse_endpoint), "api_endpoint", ENDPOINTS,
              "Base URL replacing https://{region}-run.googleapis.com and https://run.googleapis.com (a "
              "Private Service Connect endpoint, or a local emulator)."),
    InputSpec("monitoring_endpoint", "", optional(parse_endpoint), "monitoring_endpoint", ENDPOINTS,
              "Base URL replacing https://monitoring.googleapis.com for Cloud Monitoring."),
    InputSpec("github_token", "", text_or_none, "github_token", ENDPOINTS,
              "GitHub token (e.g. `secrets.GITHUB_TOKEN`). Enables a GitHub Deployment with statuses and a "
              "pull-request comment with the tag URL. The runner does not pass GITHUB_TOKEN to container "
              "actions, so give it here."),
    InputSpec("environment", "", optional(free_text(255)), "environment", ENDPOINTS,
              "GitHub deployment environment name."),
    InputSpec("takeover", "false", parse_bool, "takeover", ROLLOUT,
              "Take over another run's unfinished rollout of this service (undo it and continue) instead of "
              "failing."),
    InputSpec("container", "", optional(parse_container), "container", REVISION,
              "Name of the container that `image`, `env_vars`, `secrets`, `cpu`, `memory` and `port` apply "
              "to, in a service with sidecars (as gcloud's `--container`). Default: the ingress container, "
              "the one that declares `ports`; sidecars are left as they are."),
    InputSpec("production_environment", "", optional(parse_bool), "production_environment", ENDPOINTS,
              "Mark the GitHub deployment as a production deployment (true or false). Default: true only "
              "when `environment` is named production or prod (any case)."),
    InputSpec("max_error_rate", "",
              optional(float_in(0, 100, " (percent)")), "analysis.max_error_rate", ANALYSIS,
              "Canary analysis: maximum percentage of 5xx responses of the new revision at each step (Cloud "
              "Monitoring). Default: not checked."),
    InputSpec("max_latency_p99", "",
              optional(float_in(0, None, " (ms)", exclusive_low=True)), "analysis.max_latency_p99", ANALYSIS,
              "Canary analysis: maximum p99 latency in milliseconds at each step. Default: not checked."),
    InputSpec("max_latency_p95", "",
              optional(float_in(0, None, " (ms)", exclusive_low=True)), "analysis.max_latency_p95", ANALYSIS,
              "Canary analysis: maximum p95 latency in milliseconds at each step. Default: not checked."),
    InputSpec("min_requests", "0", int_in(0), "analysis.min_requests", ANALYSIS,
              "Canary analysis: requests the new revision must have served in a step for its metrics to "
              "count."),
    InputSpec("on_inconclusive", "", _on_inconclusive, "analysis.on_inconclusive", ANALYSIS,
              "What to do when a step's analysis has too little data (fewer than `min_requests` requests, "
              "or Cloud Monitoring had none): pass, fail or extend (bake another interval). Default: fail "
              "when a metric threshold is set, else pass."),
    InputSpec("check_command", "", text_or_none, "analysis.check_command", ANALYSIS,
              "Command run with bash at each step (in the workspace, inside the action's container: no "
              "curl, jq or gcloud; use `run-canary-http GET $TAG_URL/health` or python3); a non-zero exit "
              "fails the step. It gets TAG_URL, SERVICE_URL, STEP, REVISION, PREVIOUS_REVISION and ROUND. "
              "Default: none."),
    InputSpec("check_webhook", "", optional(parse_webhook), "analysis.check_webhook", ANALYSIS,
              "URL POSTed a JSON description of each step; a non-2xx answer fails the step. Treated as a "
              "secret: only its origin is ever printed. Default: none."),
    InputSpec("failure_threshold", "1", int_in(1), "analysis.failure_threshold", ANALYSIS,
              "Number of failed analyses (at one step) that trigger a rollback."),
    InputSpec("baseline", "none", choice(["none", "revision", "stable"]), "analysis.baseline", ANALYSIS,
              "What the comparative checks compare the new revision with: none, revision (a baseline "
              "revision built from the template of the revision that served most, deployed beside the new "
              "one, tagged `baseline`, with the same share at each step; removed by promote and rollback) "
              "or stable (the revisions from before the run over the same window; weaker: warm instances, "
              "other load)."),
    InputSpec("max_latency_increase", "",
              optional(float_in(0, None, " (percent)")), "analysis.max_latency_increase", ANALYSIS,
              "Comparative check: a step fails when the new revision's latencies are higher than the "
              "baseline's with significance (one-sided Mann-Whitney U test) and its median or its p95 is "
              "more than this many percent above the baseline's. Needs `baseline`. Default: not checked."),
    InputSpec("max_error_rate_increase", "",
              optional(float_in(0, 100, " (percentage points)")),
              "analysis.max_error_rate_increase", ANALYSIS,
              "Comparative check: a step fails when the new revision's share of 5xx is higher than the "
              "baseline's with significance (Fisher's exact test) and by more than this many percentage "
              "points. Needs `baseline`. Default: not checked."),
    InputSpec("confidence", "95", float_in(50, 99.9, " (percent)"), "analysis.confidence", ANALYSIS,
              "Comparative checks: the confidence (percent) a difference needs to count; a p-value below 1 "
              "- confidence is significant."),
    InputSpec("load_rps", "",
              _load_rps, "analysis.load_rps", ANALYSIS,
              "Requests per second (at most 100) the action itself sends to `smoke_path` during each bake's "
              "window, split between the new revision's tag URL and the baseline's (`baseline: revision`) "
              "or the service URL (`baseline: stable`: the revisions from before the run get their share of "
              "it, the new revision the rest), with an ID token where the smoke check would send one, so a "
              "quiet service gets data to judge. Default: none."),
    InputSpec("job", "", optional(parse_job_name), "job", JOBS,
              "Mode job: the Cloud Run job to create or update (from the job_* inputs) and execute."),
    InputSpec("pre_job", "", optional(parse_job_name), "pre_job", JOBS,
              "Cloud Run job created or updated and executed once the new revision is Ready and "
              "smoke-checked, before any traffic moves (e.g. a database migration). Its failure stops the "
              "rollout with no traffic change."),
    InputSpec("post_job", "", optional(parse_job_name), "post_job", JOBS,
              "Cloud Run job created or updated and executed once the new revision serves 100 %, before the "
              "rollout is marked finished (e.g. a backfill or end-to-end test). See post_job_failure."),
    InputSpec("post_job_failure", "rollback", enum_of(JobFailurePolicy), "post_job_failure", JOBS,
              "What a failed post_job does: rollback (restore the traffic from before the run), fail (keep "
              "the new revision, fail the step) or warn (keep it, warn only)."),
    InputSpec("job_image", "", optional(parse_image), "jobs.image", JOBS,
              "Image of the job. Default: `image` (in mode promote, the image of the promoted revision)."),
    InputSpec("job_container", "", optional(parse_container), "jobs.container", JOBS,
              "Name of the job's container that job_image, job_command, job_args, job_env_vars, job_secrets "
              "and the overrides apply to, in a job with several containers (required there, as gcloud's "
              "--container). Default: the job's only container."),
    InputSpec("job_command", "", optional(parse_argv), "jobs.command", JOBS,
              "Job container entrypoint, as a YAML list (e.g. [python, migrate.py]) or shell words. "
              "Default: keep the job's (the image's entrypoint for a new job)."),
    InputSpec("job_args", "", optional(parse_argv), "jobs.args", JOBS,
              "Job container arguments, as a YAML list or shell words. Default: keep the job's."),
    InputSpec("job_env_vars", "", parse_env_vars, "jobs.env_vars", JOBS,
              "Env vars of the job as KEY=VALUE lines or a YAML mapping; merged with the job's current "
              "ones."),
    InputSpec("job_secrets", "", parse_secrets, "jobs.secrets", JOBS,
              "Secret Manager secrets exposed to the job as env vars (ENV=secret-name:version lines or a "
              "YAML mapping); merged with the job's current ones. A secret of another project: "
              "ENV=projects/NUMBER/secrets/NAME:VERSION, its project by number (an ID is refused); a path in "
              "the run's own project is shortened to the name."),
    InputSpec("job_tasks", "", optional(int_in(1, MAX_TASKS)), "jobs.tasks", JOBS,
              "Number of tasks of each execution (1 to 10000). Default: keep the job's (1 for a new job)."),
    InputSpec("job_parallelism", "", optional(int_in(0, MAX_TASKS)), "jobs.parallelism", JOBS,
              "Tasks that may run at once (0 = as many as possible). Default: keep the job's."),
    InputSpec("job_task_timeout", "", optional(parse_task_timeout), "jobs.task_timeout", JOBS,
              "Timeout of each task attempt (duration, up to 168h). Default: keep the job's (10m for a new "
              "job)."),
    InputSpec("job_max_retries", "", optional(int_in(0, MAX_RETRIES)), "jobs.max_retries", JOBS,
              "Retries of a failed task (0 to 10). Default: keep the job's (3 for a new job)."),
    InputSpec("job_service_account", "", optional(parse_service_account), "jobs.service_account", JOBS,
              "Service account email the job's tasks run as. Default: keep the job's."),
    InputSpec("job_args_override", "", optional(parse_argv), "jobs.args_override", JOBS,
              "Arguments for this execution only (the job keeps its own), as a YAML list or shell words; [] "
              "clears them."),
    InputSpec("job_env_override", "", parse_env_vars, "jobs.env_override", JOBS,
              "Env vars for this execution only, as KEY=VALUE lines or a YAML mapping."),
    InputSpec("job_wait_timeout", "1h", positive_duration, "jobs.wait_timeout", JOBS,
              "How long to wait for one execution to finish (duration); past it the execution is cancelled "
              "and counts as failed."),
)
# fmt: on

BY_NAME: dict[str, InputSpec] = {spec.name: spec for spec in INPUTS}
# Defaults: action.yml declares exactly these (a test compares them), "" meaning "no default".
DEFAULTS: dict[str, str] = {spec.name: spec.default for spec in INPUTS}


def parse_order(specs: tuple[InputSpec, ...] = INPUTS) -> tuple[InputSpec, ...]:
    """The rows in table order, except that a row comes after the rows it ``uses``."""
    done: dict[str, InputSpec] = {}
    while len(done) < len(specs):
        pending = [s for s in specs if s.name not in done]
        ready = [s for s in pending if all(name in done for name in s.uses)]
        if not ready:
            raise ValueError(f"inputs that use each other or no input: {[s.name for s in pending]}")
        done[ready[0].name] = ready[0]
    return tuple(done.values())


PARSE_ORDER = parse_order()
