"""Configuration: safe YAML files merged with overrides (loading), the run's parameter tree
(param_registry), project config groups (project) and seeds. Light: no torch, no Lightning."""
