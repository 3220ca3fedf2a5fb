"""The data stages: the default generator, sources (``ingest``, ``parts``), the contract and
validation, the split, the stages with their file I/O (``stages``), DVC data versions
(``versioning``) and what ``churn init-dataset`` infers and writes (``profiling``,
``params_file``)."""
