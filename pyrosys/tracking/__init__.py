"""Where a run's record goes beyond its CSVs: MLflow, the statistics tables' names and rows, plots,
provenance (versions, git state)."""
