# syntax=docker/dockerfile:1
# opex-operator image: the operator, git and a pinned Terraform-compatible CLI, run as non-root
# on a read-only root filesystem (the chart mounts an emptyDir at /var/lib/opex and /tmp).
#
#   docker build -t opex-operator:0.1.0 .
#
# Stages: the OpenTofu CLI built from hack/opentofu (go.sum pins and verifies every module; the
# same files the local stack builds from), the Python package installed into a virtualenv, and
# a slim runtime that gets only the two.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG GO_IMAGE=golang:1.26-bookworm

FROM ${GO_IMAGE} AS tofu
WORKDIR /src
COPY hack/opentofu/ ./
# The version is the one hack/opentofu/go.mod requires. Go's caches (3 GB) are removed in the same
# step, so a build cache keeps little more than the binary of this stage.
RUN version="$(awk '$1 == "require" && $2 == "github.com/opentofu/opentofu" {print $3}' go.mod)" \
 && test -n "$version" \
 && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath \
      -ldflags "-s -w -X github.com/opentofu/opentofu/version.dev=no -X github.com/opentofu/opentofu/version.Version=${version#v}" \
      -o /out/tofu github.com/opentofu/opentofu/cmd/tofu \
 && /out/tofu version \
 && go clean -cache -modcache

FROM ${PYTHON_IMAGE} AS build
# UV_NATIVE_TLS: uv trusts the system's CA store, as pip and go do (a build behind a TLS-inspecting
# proxy mounts its CA bundle there for the build only: hack/images.py).
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=/opt/opex UV_LINK_MODE=copy UV_NO_CACHE=1 UV_NATIVE_TLS=1
WORKDIR /src
# uv, verified against the hashes make and CI use, in a venv of its own (not copied into the image).
COPY hack/uv-requirements.txt ./hack/
RUN python3 -m venv /opt/uv \
 && /opt/uv/bin/pip install --require-hashes --no-deps -r hack/uv-requirements.txt
COPY pyproject.toml uv.lock README.md ./
COPY operator ./operator
# Exactly the locked runtime set (no [test] extra) with the project itself, never resolved
# (--frozen); tests/integration/test_image_install.py runs this line and compares with uv.lock.
RUN /opt/uv/bin/uv sync --frozen --no-editable --compile-bytecode --python "$(command -v python3)" \
 && /opt/opex/bin/python -c "import opex_operator, kopf, boto3"

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
# Set by the build (CI): where the source is and which commit the image was built from.
ARG SOURCE=""
ARG REVISION=""
LABEL org.opencontainers.image.title="opex-operator" \
      org.opencontainers.image.description="The AWS CI/CD operations runbook as reconciled Kubernetes custom resources" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}"
# git: DriftCheck sources. ca-certificates (AWS and git over TLS) comes with the base image at its
# latest security update; pinning it here held it back and failed the build (a downgrade).
RUN apt-get update \
 && apt-get install -y --no-install-recommends git=1:2.39.* \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 opex \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /var/lib/opex --shell /usr/sbin/nologin opex \
 && install -d -o 65532 -g 65532 /var/lib/opex
COPY --from=tofu /out/tofu /usr/local/bin/tofu
COPY --from=build /opt/opex /opt/opex
# Everything the process writes lives under /var/lib/opex and /tmp (emptyDirs in the chart), so
# the root filesystem can be read-only: HOME (git and OpenTofu config), the run and cache dirs
# (the operator creates those two).
ENV PATH=/opt/opex/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/var/lib/opex \
    TMPDIR=/tmp \
    OPEX_WORK_DIR=/var/lib/opex/work \
    OPEX_CACHE_DIR=/var/lib/opex/cache \
    OPEX_TERRAFORM=/usr/local/bin/tofu \
    TF_IN_AUTOMATION=1 \
    CHECKPOINT_DISABLE=1
WORKDIR /var/lib/opex
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["python", "-m", "opex_operator"]
