# syntax=docker/dockerfile:1
# The usersecrets operator image: `docker build -t usersecrets:dev .`
#
# What goes into it is hack/image/rootfs.sh: Debian's python3 and a venv with the wheel. The
# local node (`make test`, `make run`) builds the same image without Docker by running that
# script in a root filesystem made by mmdebstrap, and takes its config (USER, ENV, ENTRYPOINT,
# WORKDIR, EXPOSE) from this file's final stage. Keep both in these two files.
#
# The base is pinned by tag. For reproducible production builds pin the digest too, e.g.
#   --build-arg BASE_IMAGE=debian:bookworm-slim@sha256:<digest>
# (`docker buildx imagetools inspect debian:bookworm-slim` prints it).
ARG BASE_IMAGE=debian:bookworm-slim

# --- build: a wheel of the project ---------------------------------------------------------
FROM ${BASE_IMAGE} AS build
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 python3-venv \
    && python3 -m venv /build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN /build/bin/pip wheel --no-deps --wheel-dir /dist .

# --- runtime: Debian's python3, the wheel and its dependencies in a venv, run as non-root ----
FROM ${BASE_IMAGE}
COPY hack/image/rootfs.sh /usr/local/lib/usersecrets/rootfs.sh
# The dependencies change seldom: a layer of their own, under the one with the wheel.
RUN --mount=type=bind,from=build,source=/dist,target=/dist \
    sh /usr/local/lib/usersecrets/rootfs.sh base /dist
RUN --mount=type=bind,from=build,source=/dist,target=/dist \
    sh /usr/local/lib/usersecrets/rootfs.sh app /dist \
    && rm -rf /usr/local/lib/usersecrets

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
