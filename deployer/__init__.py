"""Ship a container image to Cloud Run safely: tagged no-traffic revision, readiness, smoke check,
canary steps, and a rollback to exactly where traffic was."""

__version__ = "0.1.0"
