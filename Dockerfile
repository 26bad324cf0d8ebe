# syntax=docker/dockerfile:1
# slurm-exporter: Prometheus exporter for Slurm (reads slurmrestd with JWT auth).
#
#   docker build -t slurm-exporter .
#   install -D -m 0400 -o 9341 -g 9341 /etc/slurm/jwt_hs256.key /etc/slurm-exporter/jwt_key
#   docker run -p 9341:9341 -v /etc/slurm-exporter/jwt_key:/run/secrets/jwt_key:ro \
#     slurm-exporter --slurmrestd-url http://slurm-head:6820 \
#     --jwt-key-file /run/secrets/jwt_key --jwt-user exporter
#
# The exporter runs as UID 9341 and refuses a key that other users may read: hand it a
# copy owned by UID 9341 (above), not Slurm's own 0600 slurm:slurm file.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the wheel, and a virtual environment with it and its dependencies
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md CHANGELOG.md ./
COPY exporter ./exporter
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/slurm-exporter \
 && /opt/slurm-exporter/bin/pip install /wheels/slurm_exporter-*.whl \
 && /opt/slurm-exporter/bin/slurm-exporter --version

# --- run: the virtual environment only, as a fixed non-root user
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="slurm-exporter" \
      org.opencontainers.image.description="Prometheus exporter for Slurm, reading slurmrestd with JWT auth" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 9341 slurm-exporter \
 && useradd --system --uid 9341 --gid 9341 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin slurm-exporter
COPY --from=build /opt/slurm-exporter /opt/slurm-exporter
ENV PATH=/opt/slurm-exporter/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 9341:9341
EXPOSE 9341
# /-/healthy answers while the HTTP server runs; `healthcheck` finds where it listens (and
# TLS, basic auth) in the flags of the entrypoint (PID 1) and the SLURM_EXPORTER_* variables
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["slurm-exporter", "healthcheck"]
ENTRYPOINT ["slurm-exporter"]
