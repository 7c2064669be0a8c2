"""The gcloud conformance suite: the real Google Cloud CLI drives the emulator as a Cloud Run user
would, and each result is checked against Cloud Run's documented behaviour.

One module per command group: test_deploy.py (`run deploy`), test_services.py (`run services ...`),
test_revisions.py (`run revisions ...`), test_iam.py (IAM policy commands), test_readme_session.py
(the README's gcloud session, command by command). Jobs commands belong in
test_jobs.py beside them, with the jobs API (`run jobs create|update|execute --wait|executions ...`).
"""
