# syntax=docker/dockerfile:1
# slurm-exporter: Prometheus exporter for Slurm (reads slurmrestd with JWT auth).
#
#   docker build -t slurm-exporter .
#   docker run -p 9341:9341 -v /etc/slurm/jwt_hs256.key:/run/secrets/jwt_key:ro \
#     slurm-exporter --slurmrestd-url http://slurm-head:6820 \
#     --jwt-key-file /run/secrets/jwt_key --jwt-user exporter
#
# The key must not be readable by other users (the exporter refuses it otherwise):
# mount it owned by UID 9341, or mode 0640 with a group the container runs with.

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
# /-/healthy answers while the HTTP server runs (plain HTTP: with --web-config-file
# serving TLS or basic auth, override or disable this check)
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:9341/-/healthy', timeout=4).status != 200)"]
ENTRYPOINT ["slurm-exporter"]
