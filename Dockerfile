# Image of the run-canary container action (action.yml: runs.using docker, image Dockerfile).
#
# Base: python:3.11-slim-bookworm pinned by the digest of its multi-platform image index (Python
# 3.11.16, Debian 12 "bookworm"), so a rebuild gets exactly the same base on amd64 and arm64.
# To move to a newer base: `docker buildx imagetools inspect python:3.11-slim-bookworm` and
# replace the digest. A build argument so that a machine without registry access can build on a
# stand-in (scripts/container: Debian's python3 with /usr/local/bin/python); the runner passes no
# build arguments, so a Dockerfile-built action always gets this pinned base.
ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:0bee7276f83efd4a1ee05bbbf4281d95ed28e079220a9457f25a93e3f1e3c31b
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Runtime dependencies only, from the hash-locked closure (no resolver, no unpinned download).
# pip reads its index from these when given (e.g. a loopback wheelhouse, PIP_NO_INDEX=1 with
# PIP_FIND_LINKS=http://127.0.0.1:port/ and `docker build --network host`); the hashes in the lock
# verify every file wherever it comes from. Unset, pip uses PyPI.
ARG PIP_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
COPY requirements.txt /app/
RUN pip install --no-cache-dir --require-hashes --no-deps -r /app/requirements.txt

# The action itself. entrypoint.py and post.py start with `#!/usr/bin/env python3`; chmod makes
# them executable whatever mode the checkout gave them.
COPY deployer/ /app/deployer/
COPY entrypoint.py post.py LICENSE /app/
# Byte-compiled here, once: PYTHONDONTWRITEBYTECODE keeps every fresh action container from writing
# .pyc files nobody reuses, and without these each step would compile deployer/ again (importing
# deployer.main takes ~0.4 s instead of ~0.15 s). unchecked-hash: no timestamp in the .pyc (a
# reproducible layer) and no source check at import; the image's sources never change.
RUN chmod 0755 /app/entrypoint.py /app/post.py \
    && python -m compileall -q --invalidation-mode unchecked-hash /app/deployer

# No USER: GitHub runs container actions as root, and the workspace and file-command mounts
# (/github/workspace, /github/file_commands) belong to the runner's user, so a non-root user
# could not write $GITHUB_OUTPUT.
# No init (tini): the action installs its own SIGTERM/SIGINT handlers as PID 1 (the runner sends
# SIGINT, then SIGTERM 7.5 s later, on cancel), and there are no child processes to reap but the
# ones it waits for; adding an apt package would make the image less reproducible.
# The runner overrides the working directory (/github/workspace), so nothing relies on WORKDIR:
# the entrypoint is called by its absolute path.
ENTRYPOINT ["/app/entrypoint.py"]
