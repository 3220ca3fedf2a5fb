"""Release: the MLflow connection and run logging (``tracking``), the registry's aliases and
decisions (``registry``), the run record and the promotion gate (``promotion``), the checks before
a version may serve (``checks``), a registered version evaluated again (``evaluate``), the model
card, the continuous-training summary, and challengers on live traffic (``live``)."""
