#!/bin/sh
# Pipeline containers (training, monitoring, the Prefect flows): point DVC's default remote at the
# object store from the environment, then run the command. Without CHURN_DVC_REMOTE_URL the
# image's DVC project has no remote and `churn train --no-push` is the way to train.
set -eu
if [ -n "${CHURN_DVC_REMOTE_URL:-}" ]; then
  dvc remote add --local --force -d store "$CHURN_DVC_REMOTE_URL"
  if [ -n "${AWS_ENDPOINT_URL:-}" ]; then
    dvc remote modify --local store endpointurl "$AWS_ENDPOINT_URL"
  fi
fi
exec "$@"
