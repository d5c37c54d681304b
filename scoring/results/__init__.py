"""The stored results and their queries: the tables the nightly batch writes and everything that reads them.

- :mod:`~scoring.results.tables` — the scoring-side tables (runs, scores history, tier changes, overrides, plans);
- :mod:`~scoring.results.batch` — the nightly batch (all or nothing per as-of date);
- :mod:`~scoring.results.lock` — the batch lock (one run at a time per database);
- :mod:`~scoring.results.ranking` — the ranked list and one enterprise explained;
- :mod:`~scoring.results.monitoring_tables` — the monitoring report's stored figures.

The command line and the workbench both call these functions; neither holds query logic of its own.
"""
