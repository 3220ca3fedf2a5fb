"""The model candidates: one module per candidate, each exposing one ``KIND`` (a
``churn.models.ModelKind``). Adding a module here is enough for the table to find it; its
``params.yaml`` block (``train.<name>``) and ``train.candidates`` entry make it train."""
