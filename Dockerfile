# syntax=docker/dockerfile:1.7
# Multi-stage build from the lock file. Targets:
#   serving  - the API (default): `docker build -t churn-api .`
#   pipeline - training / monitoring flows and the Prefect worker: `docker build --target pipeline .`
# Both run as a non-root user; only the virtual environment and the code reach the final images.

ARG PYTHON_VERSION=3.11
ARG UV_VERSION=0.9.5

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

FROM python:${PYTHON_VERSION}-slim-bookworm AS builder
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /src
# Dependencies first, so code changes do not invalidate this layer.
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project
COPY src ./src
COPY pipelines ./pipelines
COPY serving ./serving
COPY monitoring ./monitoring
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
# The commit the image was built from, recorded with every model trained in it (no .git inside).
ARG CHURN_GIT_COMMIT=unknown
RUN groupadd --system --gid 10001 churn \
    && useradd --system --uid 10001 --gid churn --home-dir /app --shell /usr/sbin/nologin churn \
    && install -d -o churn -g churn /app
WORKDIR /app
COPY --from=builder /opt/venv /opt/venv
COPY --chown=churn:churn params.yaml dvc.yaml ./
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CHURN_ENVIRONMENT=production \
    CHURN_PROJECT_DIR=/app \
    CHURN_GIT_COMMIT=${CHURN_GIT_COMMIT}
USER 10001:10001

FROM runtime AS pipeline
# A DVC project without git (the image has no .git); deploy/pipeline-entrypoint.sh points its
# remote at the object store named in the environment before running the command.
COPY --chown=churn:churn deploy/pipeline-entrypoint.sh /usr/local/bin/pipeline-entrypoint
RUN dvc init --no-scm -q && dvc config core.analytics false
ENTRYPOINT ["pipeline-entrypoint"]
CMD ["churn", "--help"]

FROM runtime AS serving
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]
CMD ["python", "-m", "serving", "--host", "0.0.0.0", "--port", "8000"]
