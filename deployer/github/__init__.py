"""The GitHub side: everything the action tells GitHub, split by channel.

- ``commands``: workflow commands on the log (groups, annotations, masks) and the rollout's Reporter;
- ``files``: file commands (step outputs, post-step state, step summary);
- ``render``: Markdown for people (the step summary with its traffic chart, the PR comment);
- ``api``: the REST API (Deployments and their statuses, the PR comment);
- ``text``: small text helpers the others share.

It renders a :class:`~deployer.result.RolloutResult`; it never talks to Cloud Run. The names below are
the package's interface, used by ``deployer.main``.
"""

from deployer.github.api import DeploymentTracker, upsert_pr_comment
from deployer.github.commands import Console, GitHubReporter, report_failure
from deployer.github.files import append_summary, save_state, write_output_values, write_outputs
from deployer.github.render import render_pr_comment, render_summary

__all__ = [
    "Console",
    "DeploymentTracker",
    "GitHubReporter",
    "append_summary",
    "render_pr_comment",
    "render_summary",
    "report_failure",
    "save_state",
    "upsert_pr_comment",
    "write_output_values",
    "write_outputs",
]
