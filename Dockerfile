# syntax=docker/dockerfile:1
# The usersecrets operator image: `docker build -t usersecrets:dev .`
#
# The base is pinned by tag. For reproducible production builds pin the digest too, e.g.
#   --build-arg PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:<digest>
# (`docker buildx imagetools inspect python:3.11.13-slim-bookworm` prints it).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# --- build: a wheel of the project ---------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN pip wheel --no-deps --wheel-dir /dist .

# --- runtime: the wheel and its dependencies in a venv, run as non-root -----------------------
FROM ${PYTHON_IMAGE}
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# Byte-compiled at install time, because the root filesystem is read-only at run time.
RUN --mount=type=bind,from=build,source=/dist,target=/dist \
    python -m venv /opt/venv \
    && /opt/venv/bin/pip install /dist/*.whl \
    && /opt/venv/bin/pip uninstall --yes pip

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp

LABEL org.opencontainers.image.title="usersecrets" \
      org.opencontainers.image.description="Personal, shareable secrets for the users of a shared Kubernetes cluster" \
      org.opencontainers.image.licenses="Apache-2.0"

# 8443: the mutating webhook (HTTPS). 8080: /metrics, /healthz, /readyz.
EXPOSE 8443 8080
# The distroless "nonroot" uid/gid; the chart runs with the same (Pod Security "restricted").
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["usersecrets-operator"]
