"""The folders runs write: one Experiment per run, one Grid per grid, and resuming an experiment.
Every file and folder name of both layouts is spelt here and nowhere else."""
