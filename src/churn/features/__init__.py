"""Features: the one scikit-learn feature pipeline, fitted on train and shipped inside the model,
its steps found by name (``pipeline``), and the derived-feature kinds' arithmetic it shares with
the serving scorer (``kinds``; what each kind's entry in ``params.yaml`` says is declared in
``churn.config.features``)."""
