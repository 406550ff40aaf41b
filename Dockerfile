# syntax=docker/dockerfile:1
# One image for both programs: `sentryroute forwarder` (the default command) and `sentryroute operator`.
# It is the base install (no extras): `sentryroute emulator` runs too; `kube` and `demo` say they need the
# `demo` extra, which the image does not carry (tests/packaging checks that with the same wheel).
#
#   docker build -t REGISTRY/sentryroute:0.1.0 .
#   docker run --rm -p 4317:4317 -p 4318:4318 -p 8888:8888 -v "$PWD/routes.json:/etc/sentryroute/routes.json:ro" \
#       REGISTRY/sentryroute:0.1.0
#
# The builder turns the source into a wheel (compiling the forwarder's wire check with mypyc, hence gcc) and
# installs it with its dependencies into a virtualenv; the final stage copies only that virtualenv onto the same
# slim base (the venv links to its Python), so no compiler, pip cache or source tree ships.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY sentryroute ./sentryroute
COPY forwarder ./forwarder
COPY operator ./operator
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && python -m venv --without-pip /opt/sentryroute \
    && pip --python /opt/sentryroute/bin/python install --compile /wheels/*.whl \
    && /opt/sentryroute/bin/python -c 'from sentryroute_forwarder.route import wirecheck; assert wirecheck.COMPILED' 

FROM ${PYTHON_IMAGE}
# The same fixed non-root UID/GID 10001 as the Helm chart's podSecurityContext (runAsUser/runAsGroup/fsGroup);
# a numeric USER lets the kubelet verify runAsNonRoot.
RUN groupadd --system --gid 10001 sentryroute \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin sentryroute \
    && mkdir -p /etc/sentryroute /var/lib/sentryroute/queue \
    && chown 10001:10001 /var/lib/sentryroute/queue
COPY --from=builder /opt/sentryroute /opt/sentryroute
ENV PATH=/opt/sentryroute/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# OTLP gRPC, OTLP HTTP, forwarder admin (/metrics, /healthz, /readyz), operator liveness.
EXPOSE 4317 4318 8888 8080
USER 10001:10001
ENTRYPOINT ["sentryroute"]
CMD ["forwarder"]
