"""Executors: where a run's command actually runs (this machine, a Docker container, a cluster Job)."""
