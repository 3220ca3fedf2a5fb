"""Training: the candidates and their searches (``train``), the training stages (``stages``:
featurize, train, evaluate), test metrics and plots (``evaluation``), the side-by-side table
(``comparison``), quality per segment (``fairness``), business value (``value``) and the training
fingerprint (``cache``)."""
