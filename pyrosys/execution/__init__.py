"""Running many experiments: grid plans (expanded from folders, grid files and sweeps), the pool of
long-lived worker processes, and the same jobs as Ray tasks."""
