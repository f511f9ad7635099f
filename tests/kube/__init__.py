"""The cluster double: nodes, a scheduler, controllers and kubelets (fake or Docker-backed)."""
