"""Features: the one scikit-learn feature pipeline, fitted on train and shipped inside the model
(``pipeline``), and the derived-feature arithmetic it shares with the serving scorer."""
