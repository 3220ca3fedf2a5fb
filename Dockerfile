# syntax=docker/dockerfile:1.7
# Multi-stage build from the lock file. Targets:
#   serving  - the API (default): `docker build -t <image> .` (the names: `make identity`)
#   pipeline - training / monitoring flows and the Prefect worker: `docker build --target pipeline .`
# Both run as a non-root user; only the virtual environment and the code reach the final images.
# The serving image leaves out the `pipeline` extra (Prefect, DVC, Evidently): the API never
# imports them (tests/serving/test_serving_imports.py), and its environment is ~0.4 GB smaller.

# Base images pinned by digest as well as tag: a rebuild never picks up a moved tag (the Debian
# updates of python:3.11-slim-bookworm, a re-pushed uv). Dependabot proposes new digests weekly
# (.github/dependabot.yml, ecosystem docker); the tag says what the digest is.
FROM ghcr.io/astral-sh/uv:0.9.5@sha256:f459f6f73a8c4ef5d69f4e6fbbdb8af751d6fa40ec34b39a1ab469acd6e289b7 AS uv

# Dependency layers first, so code changes do not invalidate them. The API needs the project's
# dependencies alone; the flows add every extra: `pipeline` (Prefect, DVC, Evidently, pandera)
# and the optional engines' groups (`dask`), so deleting an engine's group needs no edit here.
FROM python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b AS deps-serving
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

FROM deps-serving AS deps-pipeline
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --all-extras --no-install-project

FROM scratch AS code
COPY src /src/src
COPY pipelines /src/pipelines
COPY serving /src/serving
COPY monitoring /src/monitoring

FROM deps-serving AS builder-serving
COPY --from=code /src ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable

FROM deps-pipeline AS builder-pipeline
COPY --from=code /src ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --all-extras --no-editable

FROM python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b AS runtime
# The commit the image was built from, recorded with every model trained in it (no .git inside).
ARG CHURN_GIT_COMMIT=unknown
RUN groupadd --system --gid 10001 churn \
    && useradd --system --uid 10001 --gid churn --home-dir /app --shell /usr/sbin/nologin churn \
    && install -d -o churn -g churn /app
WORKDIR /app
# dvc.lock and data/'s DVC pointer files (.dockerignore lets nothing else of data/ in): what
# `churn pull-data` fetches from the DVC remote, a fork's own data included.
COPY --chown=churn:churn params.yaml dvc.yaml dvc.lock ./
COPY --chown=churn:churn data/ ./data/
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CHURN_ENVIRONMENT=production \
    CHURN_PROJECT_DIR=/app \
    CHURN_GIT_COMMIT=${CHURN_GIT_COMMIT}
USER 10001:10001

FROM runtime AS pipeline
COPY --from=builder-pipeline /opt/venv /opt/venv
# A DVC project without git (the image has no .git); deploy/pipeline-entrypoint.sh points its
# remote at the object store named in the environment before running the command.
COPY --chown=churn:churn deploy/pipeline-entrypoint.sh /usr/local/bin/pipeline-entrypoint
# mlflow-auth: the tracking server's user store, scale: the dask engine's shared parts
# (docker-compose.yml mounts volumes there; made here so that the volumes belong to the image's user).
RUN dvc init --no-scm -q && dvc config core.analytics false && mkdir mlflow-auth scale
ENTRYPOINT ["pipeline-entrypoint"]
CMD ["churn", "--help"]

FROM runtime AS serving
COPY --from=builder-serving /opt/venv /opt/venv
# `serve`: SageMaker AI's start command (`docker run IMAGE serve`): `churn serve` on 8080 with
# its contract on (docs/cloud.md). The default command listens on the port setting: 8000, or
# the platform's (Vertex AI's AIP_HTTP_PORT); CHURN_SERVING_CONTRACTS adds the cloud contracts.
COPY --chmod=0755 deploy/serve /usr/local/bin/serve
EXPOSE 8000 8080
# The port as the port setting reads it (docker's own check: SageMaker, Vertex AI and Kubernetes
# call the service's routes themselves).
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = next((os.environ[v] for v in ('AIP_HTTP_PORT', 'SAGEMAKER_BIND_TO_PORT', 'CHURN_PORT') if os.environ.get(v)), '8000'); urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=2)"]
CMD ["churn", "serve", "--host", "0.0.0.0"]
